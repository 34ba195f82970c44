"""Local recalibration: the correction (pure), and `s2mos recalibrate` end to end on quick-world
samples (the dataset's chain, the SavedModel, a full model copy that predict-map then applies)."""
import json
import os

import numpy as np
import pytest

import test_map_fixtures as fx
from pipelines.cli import main
from s2mos_transforms.maps import model_handler, pixels
from trainer import model_dir, recalibrate


def test_bias_below_five_samples_and_shrunk_line_from_five():
    p = np.array([20.0, 22.0, 24.0])
    c = recalibrate.fit(p + 7.0, p)
    assert c["kind"] == "bias" and c["b"] == 1.0 and c["a"] == pytest.approx(7.0)
    rng = np.random.default_rng(0)
    pred = rng.uniform(10, 50, 8)
    y = 3.0 + 1.5 * pred
    lin = recalibrate.fit(y, pred)
    assert lin["kind"] == "linear" and 1.0 < lin["b"] < 1.5          # shrunk towards 1, not past the truth
    assert lin["after_in_sample"]["rmse"] < lin["before"]["rmse"]
    flat = recalibrate.fit(np.array([30.0, 31, 29, 30, 30]), np.array([24.0, 24.2, 23.9, 24.1, 24.0]))
    assert flat["b"] == pytest.approx(1.0, abs=0.01)                   # predictions that barely vary: a bias
    with pytest.raises(ValueError):
        recalibrate.fit(np.array([np.nan]), np.array([1.0]))


def test_interval_scale_widens_only_when_the_site_needs_it():
    rng = np.random.default_rng(2)
    pred = rng.uniform(20, 40, 12)
    half = np.full(12, 5.0)
    noisy = pred + 10 + rng.normal(0, 12, 12)           # site errors far beyond ±5 after the offset
    calm = pred + 10 + rng.normal(0, 1, 12)
    assert recalibrate.interval_scale(noisy, pred, half, "bias") > 1.5
    assert recalibrate.interval_scale(calm, pred, half, "bias") == 1.0
    assert recalibrate.interval_scale(calm[:1], pred[:1], half[:1], "bias") == 1.0


def test_interval_scale_of_many_samples_refits_per_fold_not_per_sample(monkeypatch):
    y, p, xy = _site(3 * recalibrate.LOO_MAX)
    half = np.full(y.size, 2.0)
    fits = []
    real_fit = recalibrate.fit
    monkeypatch.setattr(recalibrate, "fit", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    wide = recalibrate.interval_scale(y, p, half, "linear", coords=xy)
    assert len(fits) == recalibrate.CV_FOLDS
    # the 10-fold factor covers 90 % of the held-out residuals, as leave-one-out does
    loo = recalibrate.interval_scale(y[:recalibrate.LOO_MAX], p[:recalibrate.LOO_MAX], half[:recalibrate.LOO_MAX],
                                     "linear", coords=xy[:recalibrate.LOO_MAX])
    assert wide > 1 and loo > 1 and 0.6 < wide / loo < 1.6


def test_curve_shrinks_a_site_offset():
    rng = np.random.default_rng(1)
    truth = rng.uniform(35, 55, 52)
    pred = truth - 10 + rng.normal(0, 3, 52)
    rows = {r["n"]: r for r in recalibrate.curve(truth, pred, repeats=50)}
    assert rows[0]["rmse"] > 9 and abs(rows[0]["bias"]) > 9
    assert rows[5]["rmse"] < 5 and abs(rows[10]["bias"]) < 1.5
    assert rows[20]["rmse"] <= rows[3]["rmse"]


def test_offset_uncertainty_states_the_bias_a_draw_is_left_with():
    """What recalibrate tells a user with n samples (the mean |bias| left, σ·√(2/(πn)) from the samples'
    leave-one-out residuals) matches the |bias| that random draws of n samples really leave on the rest
    of the site; it errs large, not small, and says how many samples reach the target."""
    rng = np.random.default_rng(4)
    truth = rng.uniform(30, 60, 300)
    pred = 0.8 * truth - 5 + rng.normal(0, 8, 300)                   # a shifted, flattened site, σ ≈ 8 %
    rows = {r["n"]: r for r in recalibrate.curve(truth, pred, repeats=300)}
    assert rows[1]["stated_abs_bias"] is None                         # one sample says nothing of its scatter
    for n in (5, 10, 20):
        assert 0.95 <= rows[n]["stated_abs_bias"] / rows[n]["abs_bias"] <= 1.35, rows[n]
    assert recalibrate.offset_uncertainty(truth[:2], pred[:2], "bias") is None
    u = recalibrate.offset_uncertainty(truth[:10], pred[:10], "linear")
    assert u["offset_se"] == pytest.approx(u["residual_sd"] / np.sqrt(10))
    assert u["expected_abs_bias"] == pytest.approx(u["offset_se"] * np.sqrt(2 / np.pi))
    again = recalibrate.offset_uncertainty(truth[:10], pred[:10], "linear", target=u["expected_abs_bias"] * 1.0001)
    assert again["samples_for_target"] == 10                           # the target it meets is met with its n
    assert u["samples_for_target"] > 10 and u["target_abs_bias"] == recalibrate.BIAS_TARGET


def _site(n: int, seed: int = 3):
    """A 10 km site whose model errors are spatially smooth (under-predicting its east), plus noise."""
    rng = np.random.default_rng(seed)
    lat, lon = 40.6 + rng.uniform(0, 0.09, n), 22.5 + rng.uniform(0, 0.12, n)
    pred = rng.uniform(20, 40, n)
    east_km = (lon - 22.5) * recalibrate.EARTH_KM_PER_DEG * np.cos(np.radians(40.6))
    truth = pred + 8.0 + 12.0 * np.sin(east_km / 3.0) + rng.normal(0, 1.0, n)
    return truth, pred, np.stack([lat, lon], axis=1)


def test_kriging_takes_up_spatially_correlated_residuals():
    y, p, xy = _site(60)
    fit_on, rest = np.arange(15), np.arange(15, 60)
    line = recalibrate.fit(y[fit_on], p[fit_on], coords=xy[fit_on], kriging=False)
    kriged = recalibrate.fit(y[fit_on], p[fit_on], coords=xy[fit_on])
    assert line["kriging"] is None and kriged["kriging"]["range_km"] > 0
    rmse = lambda c: np.sqrt(np.mean((recalibrate.apply(p[rest], c, xy[rest]) - y[rest]) ** 2))  # noqa: E731
    assert rmse(kriged) < 0.75 * rmse(line)                            # held-out samples, not in-sample
    assert kriged["after_in_sample"]["rmse"] < line["after_in_sample"]["rmse"]
    # far from every sample the kriged shift fades to the line alone
    far = np.array([[41.6, 23.8]])
    assert recalibrate.apply(p[:1], kriged, far)[0] == pytest.approx(recalibrate.apply(p[:1], line)[0], abs=1e-6)
    # at a sample the shift is the share (1 − nugget) of the residual the covariance model says
    term = recalibrate.kriging_term(xy[fit_on], kriged["kriging"])
    res = y[fit_on] - (kriged["a"] + kriged["b"] * p[fit_on])
    assert np.corrcoef(term, res)[0, 1] > 0.8 and np.all(np.abs(term) <= np.abs(res).max())
    with pytest.raises(ValueError, match="coordinates are needed"):
        recalibrate.apply(p[rest], kriged)


def test_kriging_term_in_chunks_equals_the_whole_distance_matrix(monkeypatch):
    y, p, xy = _site(60)
    kriged = recalibrate.fit(y[:40], p[:40], coords=xy[:40])["kriging"]
    whole = recalibrate.kriging_term(xy, kriged)
    monkeypatch.setattr(recalibrate, "KRIGING_CHUNK", 7 * 40)          # 7 pixels per chunk, a ragged last one
    np.testing.assert_allclose(recalibrate.kriging_term(xy, kriged), whole, rtol=1e-12, atol=1e-12)
    assert np.abs(whole).max() > 0


def test_no_kriging_below_three_samples_or_without_coordinates():
    y, p, xy = _site(5)
    assert recalibrate.fit(y[:2], p[:2], coords=xy[:2])["kriging"] is None
    assert recalibrate.fit(y, p)["kriging"] is None
    assert recalibrate.fit(y[:3], p[:3], coords=xy[:3])["kriging"]["nugget"] == recalibrate.KRIGING_NUGGET
    same = np.repeat(xy[:1], 4, axis=0)                   # coincident samples: still solvable
    assert np.isfinite(recalibrate.fit(y[:4], p[:4], coords=same)["kriging"]["alpha"]).all()


def test_curve_with_coordinates_reports_the_line_alone_too():
    y, p, xy = _site(50)
    rows = {r["n"]: r for r in recalibrate.curve(y, p, sizes=(1, 5, 20), repeats=40, coords=xy)}
    assert not rows[1]["kriged"] and rows[1]["rmse"] == pytest.approx(rows[1]["rmse_line"])
    assert rows[20]["kriged"] and rows[20]["rmse"] < rows[20]["rmse_line"]


@pytest.mark.slow
def test_recalibrate_writes_a_model_that_the_map_applies(tmp_path, capsys):
    src = fx.quick_source()
    pts = src.sample_points(8, within_aoi=True)
    pts = pts[["point_id", "lat", "lon", "clay"]].copy()
    pts["clay"] = pts["clay"] + 9.0                       # a site the model under-predicts
    csv = tmp_path / "site.csv"
    pts.to_csv(csv, index=False)
    out = str(tmp_path / "m2")
    base = fx.trusted_dir()
    assert main(["recalibrate", "--model-dir", base, "--samples", str(csv), "--out", out, "--preset", "quick",
                 "--no-kriging"]) == 0
    text = capsys.readouterr().out
    assert "recalibrate:" in text and "linear" in text and "kriged" not in text
    meta = model_dir.read_meta(out)
    rec = meta.recalibration
    assert rec["kind"] == "linear" and 5 <= rec["n"] <= 8 and rec["from_model_dir"] == base
    assert rec["after_in_sample"]["rmse"] < rec["before"]["rmse"]
    unc = rec["offset_uncertainty"]                                   # how far to trust the offset itself
    assert unc["offset_se"] > 0 and unc["samples_for_target"] >= 1 and "site offset ±" in text
    assert meta.aoa == model_dir.read_meta(base).aoa and meta.intervals == model_dir.read_meta(base).intervals
    detail = json.load(open(os.path.join(out, "recalibration.json")))
    assert len(detail["samples"]) == rec["n"]
    assert rec["point_ids"] == [s["point_id"] for s in detail["samples"]]     # the map report leaves them out
    for s in detail["samples"]:
        assert s["corrected"] == pytest.approx(rec["a"] + rec["b"] * s["predicted"], rel=1e-9)
    # the map of the recalibrated model is the corrected map of the original one
    stack = fx.quick_stack(32)
    seqs = pixels.pixel_sequences(stack)
    seqs = seqs.subset(seqs.lengths >= 1)
    coords = pixels.coords_of(stack.tile, seqs.pixels)
    res = {}
    for d in (base, out):
        h = model_handler.ClayEnsembleHandler(d, mode="fast")
        (res[d],) = h.run_inference([model_handler.TileInputs(None, seqs, coords, np.zeros((32, 32), np.int16))],
                                    h.load_model())
    np.testing.assert_allclose(res[out].clay_mean, rec["a"] + rec["b"] * res[base].clay_mean, rtol=1e-5, atol=1e-4)
    s = rec["interval_scale"]
    assert s >= 1.0
    b0, b1 = res[base].bands, res[out].bands
    half = (b0["clay_p95"] - b0["clay_p05"]) / 2
    np.testing.assert_allclose(b1["clay_p95"], rec["a"] + rec["b"] * (b0["clay_mean"] + s * half), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(b1["clay_p05"], rec["a"] + rec["b"] * (b0["clay_mean"] - s * half), rtol=1e-4, atol=1e-3)

    # by default the residuals are kriged too: the map moves by the kriged shift at each pixel,
    # in both inference paths alike, and the samples' corrected values include it
    kriged = str(tmp_path / "m3")
    assert main(["recalibrate", "--model-dir", base, "--samples", str(csv), "--out", kriged, "--preset", "quick"]) == 0
    assert "residuals kriged: exponential covariance" in capsys.readouterr().out
    rk = model_dir.read_meta(kriged).recalibration
    assert rk["kriging"]["range_km"] > 0 and len(rk["kriging"]["alpha"]) == rk["n"]
    shift = recalibrate.kriging_term(coords, rk["kriging"])
    assert np.abs(shift).max() > 0.01
    maps = {}
    for mode in ("fast", "padded"):
        h = model_handler.ClayEnsembleHandler(kriged, mode=mode)
        (maps[mode],) = h.run_inference([model_handler.TileInputs(None, seqs, coords, np.zeros((32, 32), np.int16))],
                                        h.load_model())
    np.testing.assert_allclose(maps["fast"].clay_mean, rk["a"] + rk["b"] * res[base].clay_mean + shift,
                               rtol=1e-5, atol=1e-3)
    for band in ("clay_mean", "clay_p05", "clay_p95"):
        np.testing.assert_allclose(maps["fast"].bands[band], maps["padded"].bands[band], rtol=1e-5, atol=1e-3)
    samples = json.load(open(os.path.join(kriged, "recalibration.json")))["samples"]
    assert any(abs(x["corrected"] - (rk["a"] + rk["b"] * x["predicted"])) > 1e-3 for x in samples)


def test_bad_inputs_fail_in_one_line(tmp_path, capsys):
    csv = tmp_path / "s.csv"
    csv.write_text("point_id,lat,lon,clay\na,48.5,9.0,20\n")
    base = fx.ensemble_dir()
    assert main(["recalibrate", "--model-dir", str(tmp_path / "none"), "--samples", str(csv),
                 "--out", str(tmp_path / "o")]) == 2
    assert main(["recalibrate", "--model-dir", base, "--samples", str(csv), "--out", base]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("s2mos: error:") for e in err)


@pytest.mark.slow
def test_fine_tune_refits_only_the_head_and_keeps_the_model_consistent(tmp_path, capsys):
    import keras
    import trainer_fixtures as tfx
    from s2mos_transforms.maps import engines

    data_dir = str(tmp_path / "data")
    tfx.write_dataset(data_dir, n_calibration=40, n_test=10, seed=4, max_dates=30)
    pts = fx.quick_source().sample_points(8, within_aoi=True)[["point_id", "lat", "lon", "clay"]]
    pts.to_csv(tmp_path / "site.csv", index=False)
    base, out = fx.trusted_dir(), str(tmp_path / "ft")
    assert main(["recalibrate", "--model-dir", base, "--samples", str(tmp_path / "site.csv"), "--out", out,
                 "--preset", "quick", "--fine-tune", "--data", data_dir, "--fine-tune-epochs", "2"]) == 0
    assert "spiked" in capsys.readouterr().out
    meta, before = model_dir.read_meta(out), model_dir.read_meta(base)
    rec = meta.recalibration
    assert rec["kind"] == "fine-tune" and rec["a"] == 0.0 and rec["b"] == 1.0 and rec["spike_repeats"] >= 1
    assert meta.intervals == before.intervals and meta.aoa == before.aoa
    for k in range(meta.bags):
        m0 = keras.models.load_model(os.path.join(base, "bags", f"bag_{k}.keras"), compile=False)
        m1 = keras.models.load_model(os.path.join(out, "bags", f"bag_{k}.keras"), compile=False)
        for layer in m0.layers:
            same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), m1.get_layer(layer.name).get_weights()))
            assert same == (layer.name not in rec["trained_layers"]), layer.name
    assert engines.load_engine(out).name == "fast"     # the re-exported SavedModel equals the refitted bags
    with pytest.raises(SystemExit):
        main(["recalibrate", "--model-dir", base, "--samples", str(tmp_path / "site.csv"), "--out", out + "2",
              "--fine-tune", "--fine-tune-epochs", "x"])
    assert main(["recalibrate", "--model-dir", base, "--samples", str(tmp_path / "site.csv"), "--out",
                 out + "3", "--fine-tune"]) == 2


@pytest.mark.slow
def test_recalibrate_a_whole_series_model(tmp_path, capsys):
    """The bias/linear correction works for the served whole-series model too (its samples' rows are
    the bare dates joined with their S1 pairs, as in training), and so does --fine-tune: only the
    dense head after the MaskedPool changes, and the re-exported ensemble equals the refitted bags."""
    import trainer_fixtures as tfx
    from s2mos_transforms.maps import engines
    from trainer import aoa as aoa_mod
    from pipelines.recalibrate import local_sequences

    data_dir, base, out = str(tmp_path / "data"), str(tmp_path / "m"), str(tmp_path / "m2")
    tfx.write_dataset(data_dir, n_calibration=40, n_test=10, seed=6, max_dates=30)
    assert main(["train", "--data", data_dir, "--model-dir", base, "--models", "series", "--serve", "series",
                 "--epochs", "1", "--bags", "2", "--quiet"]) == 0
    src = fx.quick_source()
    pts = src.sample_points(8, within_aoi=True)[["point_id", "lat", "lon", "clay"]].copy()
    pts["clay"] = pts["clay"] + 9.0
    pts.to_csv(tmp_path / "site.csv", index=False)
    assert main(["recalibrate", "--model-dir", base, "--samples", str(tmp_path / "site.csv"), "--out", out,
                 "--preset", "quick"]) == 0
    rec = model_dir.read_meta(out).recalibration
    assert rec["kind"] == "linear" and rec["n"] >= 5
    meta = model_dir.read_meta(base)
    kept, seqs, _ = local_sequences(pts.to_dict("records"), src, meta.extract_config(), "series")
    assert len(kept) == rec["n"] and all(s.shape[1] == 13 for s in seqs)
    values, lengths = aoa_mod.ragged(seqs, 13)
    coords = np.array([[p["lat"], p["lon"]] for p in kept], np.float32)
    before, _ = engines.PaddedEnsemble(base).predict(values, lengths.astype(np.int32), coords)
    detail = json.load(open(os.path.join(out, "recalibration.json")))
    np.testing.assert_allclose([s["predicted"] for s in detail["samples"]], before, rtol=1e-5, atol=1e-4)
    capsys.readouterr()
    ft = str(tmp_path / "ft")
    assert main(["recalibrate", "--model-dir", base, "--samples", str(tmp_path / "site.csv"), "--out",
                 ft, "--preset", "quick", "--fine-tune", "--data", data_dir, "--fine-tune-epochs", "3"]) == 0
    assert "spiked" in capsys.readouterr().out
    import keras
    m_ft, m_base = model_dir.read_meta(ft), model_dir.read_meta(base)
    rec = m_ft.recalibration
    assert rec["kind"] == "fine-tune" and rec["n"] == len(kept) and rec["spike_repeats"] >= 1
    assert "masked_pool" not in rec["trained_layers"] and "tconv1" not in rec["trained_layers"]
    assert m_ft.aoa == m_base.aoa and m_ft.intervals == m_base.intervals and m_ft.sequence_feature == "series"
    for p0, p1 in zip(model_dir.bag_paths(base, m_base), model_dir.bag_paths(ft, m_ft)):
        b0, b1 = keras.models.load_model(p0, compile=False), keras.models.load_model(p1, compile=False)
        for layer in b0.layers:
            same = all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), b1.get_layer(layer.name).get_weights()))
            assert same == (layer.name not in rec["trained_layers"]), layer.name
    after, _ = engines.PaddedEnsemble(ft).predict(values, lengths.astype(np.int32), coords)
    # the re-exported SavedModel equals the refitted bags
    from s2mos_transforms.normalize import NormStats
    from trainer import data, series
    st = NormStats.from_json(open(os.path.join(ft, "stats.json")).read())
    x = series.rows_inputs(seqs, coords, st, m_ft.use_coords)
    bag_clay = [data.clay_from_target(keras.models.load_model(p, compile=False).predict(x, verbose=0).ravel(), st)
                for p in model_dir.bag_paths(ft, m_ft)]
    np.testing.assert_allclose(np.mean(bag_clay, 0), after, atol=1e-3)
    assert not np.allclose(after, before)                # the head moved
    detail = json.load(open(os.path.join(ft, "recalibration.json")))
    np.testing.assert_allclose([s["corrected"] for s in detail["samples"]], after, rtol=1e-5, atol=1e-4)


@pytest.mark.slow
def test_recal_score_scores_only_the_samples_not_used(tmp_path):
    """`trust_experiments.recal-score`: a recalibrated copy is scored with its correction applied,
    on the site samples that were not given to recalibrate."""
    from trainer import trust_experiments
    pts = fx.quick_source().sample_points(14, within_aoi=True)[["point_id", "lat", "lon", "clay"]].copy()
    pts["clay"] = pts["clay"] + 12.0
    pts.to_csv(tmp_path / "site.csv", index=False)
    pts.head(6).to_csv(tmp_path / "used.csv", index=False)
    base, out = fx.trusted_dir(), str(tmp_path / "m2")
    assert main(["recalibrate", "--model-dir", base, "--samples", str(tmp_path / "used.csv"), "--out", out,
                 "--preset", "quick", "--kind", "bias", "--no-kriging"]) == 0   # a pure shift: exact below
    rows = trust_experiments.recal_score([base, out], str(tmp_path / "site.csv"), str(tmp_path / "used.csv"), "quick")
    assert [r["recalibration"] for r in rows] == ["none", "bias"] and rows[0]["n"] == rows[1]["n"] <= 8
    shift = model_dir.read_meta(out).recalibration["a"]
    assert rows[1]["bias"] == pytest.approx(rows[0]["bias"] + shift, abs=1e-3)   # the correction is applied
    assert 0.0 <= rows[1]["picp"] <= 1.0 and rows[1]["width"] >= rows[0]["width"] - 1e-6
