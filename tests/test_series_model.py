"""The whole-series model (`trainer.series`, `trainer.series_serving`): its inputs from a Split,
its independence of the pad width, its serving SavedModel, and `s2mos train --models series
--serve series` end to end on a small dataset."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import trainer_fixtures as fx
from s2mos_transforms import bands, masks
from trainer import data, series

T0 = 1_500_000_000


def _split(records: list[dict]) -> data.Split:
    """A Split from fixture records, as `data.read_split` gives it."""
    return data.Split(np.array([r["point_id"] for r in records]),
                      np.array([[r["lat"], r["lon"]] for r in records], np.float32),
                      np.array([r["clay"] for r in records], np.float32),
                      {"s2s1": [np.asarray(r["s2s1"], np.float32).reshape(-1, 12) for r in records],
                       "s2": [np.asarray(r["s2"], np.float32).reshape(-1, 10) for r in records]},
                      {"s2s1": [np.asarray(r["s2s1_dates"], np.int64) for r in records],
                       "s2": [np.asarray(r["s2_dates"], np.int64) for r in records]})


def test_raw_rows_are_the_bare_dates_joined_with_their_pairs_by_hand():
    s2 = np.arange(40, dtype=np.float32).reshape(4, 10) / 100.0 + 0.01
    dates = np.array([T0, T0 + 86400 * 5, T0 + 86400 * 17, T0 + 86400 * 400], np.int64)
    s2s1 = np.concatenate([s2[[1, 3]], np.array([[-10.0, -17.0], [-8.5, -15.25]], np.float32)], 1)
    rec = {"point_id": "A", "lat": 45.0, "lon": 5.0, "clay": 20.0, "s2": s2, "s2_dates": dates,
           "s2s1": s2s1, "s2s1_dates": dates[[1, 3]]}
    none = dict(rec, point_id="B", s2s1=np.zeros((0, 12), np.float32), s2s1_dates=np.zeros(0, np.int64))
    rows_a, rows_b = series.raw_sequences(_split([rec, none]))
    assert rows_a.shape == (4, len(bands.CHANNELS_SERIES)) and rows_a.dtype == np.float32
    np.testing.assert_array_equal(rows_a[:, :10], s2)
    expected_radar = np.array([[np.nan, np.nan], [-10.0, -17.0], [np.nan, np.nan], [-8.5, -15.25]], np.float32)
    np.testing.assert_array_equal(rows_a[:, 10:12], expected_radar)
    np.testing.assert_array_equal(rows_a[:, 12], np.float32(dates / 86400.0))
    assert np.isnan(rows_b[:, 10:12]).all() and np.array_equal(rows_b[:, :10], s2)


def test_features_hand_computed_and_zero_on_padding():
    rng = np.random.default_rng(0)
    raw = np.full((2, 6, 13), np.nan, np.float32)
    raw[:, :, :10] = rng.uniform(0.02, 0.5, (2, 6, 10))
    raw[:, :, 10:12] = [-12.0, -19.0]
    raw[0, 2, 10:12] = np.nan                                  # an unpaired date
    raw[:, :, 12] = 17_000.0 + np.array([0.0, 3.0, 10.0, 40.0, 41.0, 300.0])
    lengths = np.array([6, 3], np.int32)
    stats = fx.fit_stats(fx.make_records(20, seed=3))
    mm = series.series_minmax(stats)
    f = series.date_features(raw, lengths, mm.lo, np.where(mm.hi > mm.lo, mm.hi - mm.lo, 1.0)).numpy()
    assert f.shape == (2, 6, series.N_FEATURES)
    assert np.all(f[1, 3:] == 0.0) and np.isfinite(f).all()
    col = {n: i for i, n in enumerate(series.FEATURE_NAMES)}
    s2 = raw[0, :, :10]
    np.testing.assert_allclose(f[0, :, col["NDVI"]], masks.ndvi(s2), atol=1e-6)
    np.testing.assert_allclose(f[0, :, col["NBR2"]], masks.nbr2(s2), atol=1e-6)
    np.testing.assert_allclose(f[0, :, col["ln_B12_B11"]], np.log(s2[:, 9] / s2[:, 8]), atol=1e-5)
    np.testing.assert_array_equal(f[0, :, col["paired"]], [1, 1, 0, 1, 1, 1])
    assert f[0, 2, col["VV_scaled"]] == 0.0
    np.testing.assert_allclose(f[0, :, col["log_gap"]], np.log1p([0, 3, 7, 30, 1, 259]) / np.log(366.0), atol=1e-6)
    phase = 2 * np.pi * np.mod(raw[0, :, 12].astype(np.float64), 365.2425) / 365.2425
    np.testing.assert_allclose(f[0, :, col["doy_sin"]], np.sin(phase), atol=1e-4)
    np.testing.assert_array_equal(f[:, :, col["valid"]], [[1] * 6, [1, 1, 1, 0, 0, 0]])


def test_model_output_does_not_depend_on_the_pad_width():
    import keras

    split = _split(fx.make_records(24, seed=5, max_dates=40, unpaired_fraction=0.25))
    stats = fx.fit_stats(fx.make_records(24, seed=5, max_dates=40))
    x = series.model_inputs(split, stats, use_coords=True)
    w = x["series"].shape[1]
    assert w == max(len(s) for s in split.sequences["s2"])
    keras.utils.set_random_seed(3)
    model = series.build_series(use_coords=True)
    base = model(x, training=False).numpy()
    for extra in (1, 37, 150 - w):
        wide = dict(x, series=np.pad(x["series"], [(0, 0), (0, extra), (0, 0)]))
        np.testing.assert_allclose(model(wide, training=False).numpy(), base, atol=1e-5)
    # A batch cut to its own longest sequence (`trim_batch`) and each point alone at its own length.
    short = np.argsort([len(s) for s in split.sequences["s2"]])[:5]
    sub = {k: v[short] for k, v in x.items()}
    np.testing.assert_allclose(model(series.trim_batch(sub), training=False).numpy(), base[short], atol=1e-5)
    for i in short[:2]:
        n = len(split.sequences["s2"][i])
        one = {"series": x["series"][i:i + 1, :n], "coords": x["coords"][i:i + 1]}
        np.testing.assert_allclose(model(one, training=False).numpy(), base[i:i + 1], atol=1e-5)
    assert 5_000 < model.count_params() < 50_000


@pytest.mark.slow
def test_served_ensemble_equals_the_bags_mean_on_raw_rows(tmp_path):
    import keras
    from trainer import ensemble

    records = fx.make_records(30, seed=8, max_dates=50, unpaired_fraction=0.3)
    stats = fx.fit_stats(records)
    split = _split(records)
    members = []
    for k in range(2):
        keras.utils.set_random_seed(10 + k)
        members.append(series.build_series(use_coords=True, name=f"bag{k}"))
    path = str(tmp_path / "ensemble")
    ensemble.export(path, members, stats, bands.CHANNELS_SERIES, "series", True, family="series")
    meta = json.load(open(os.path.join(path, "s2mos_model.json")))
    assert meta["family"] == "series" and meta["channels"] == list(bands.CHANNELS_SERIES)
    assert len(meta["stats"]["series"]["min"]) == 13

    x = series.model_inputs(split, stats, use_coords=True)
    z = np.stack([m(x, training=False).numpy().ravel() for m in members])
    clay = np.asarray(data.clay_from_target(z.ravel(), stats)).reshape(z.shape)
    raw, lengths = series.pad_raw(series.raw_sequences(split))
    loaded = ensemble.load(path)
    past = np.arange(raw.shape[1])[None, :] >= lengths[:, None]
    for fill in (0.0, np.nan):                     # what lies past length never matters
        wide = raw.copy()
        wide[past] = fill
        wide = np.pad(wide, [(0, 0), (0, 9), (0, 0)], constant_values=fill)
        mean, std = loaded.predict(wide, lengths, split.coords)
        np.testing.assert_allclose(mean, clay.mean(0), atol=1e-3)
        np.testing.assert_allclose(std, clay.std(0), atol=1e-3)
    # More than 150 dates: thinned by the project's rule, as the map's and the dataset's.
    n = int(lengths[0])
    rows = np.concatenate([raw[0, :n]] * (160 // n + 1))[:160]
    rows[:, 12] = 17_000 + np.arange(160) * 3.0
    from s2mos_transforms.sequences import thin_index
    m_long, _ = loaded.predict(rows[None], np.array([160], np.int32), split.coords[:1])
    m_thin, _ = loaded.predict(rows[thin_index(160)][None], np.array([150], np.int32), split.coords[:1])
    np.testing.assert_allclose(m_long, m_thin, atol=1e-4)


@pytest.mark.slow
def test_train_serve_series_end_to_end(tmp_path):
    """`s2mos train --models series --serve series`: bags, predictions, the SavedModel (= the bags'
    mean on the test split's raw rows), trust layer; then `s2mos evaluate`."""
    from pipelines.cli import main
    from trainer import ensemble, model_dir

    data_dir, mdir = str(tmp_path / "data"), str(tmp_path / "model")
    fx.write_dataset(data_dir, n_calibration=40, n_test=14, seed=2, max_dates=60, unpaired_fraction=0.25)
    assert main(["train", "--data", data_dir, "--model-dir", mdir, "--models", "series", "--serve", "series",
                 "--epochs", "2", "--bags", "2", "--seed", "3", "--quiet"]) == 0
    manifest = json.load(open(os.path.join(mdir, "manifest.json")))
    assert manifest["served"] == "series" and manifest["models"][0]["n_calibration"] == 40
    meta = json.load(open(os.path.join(mdir, "ensemble", "s2mos_model.json")))
    assert meta["family"] == "series" and meta["sequence_feature"] == "series"
    assert meta["channels"] == list(bands.CHANNELS_SERIES) and meta["bag_models"][0].startswith("../models/series/")
    assert meta.get("aoa") and meta.get("intervals")          # the trust layer of the served model

    test = data.read_split(data_dir, "test")
    stats = data.load_stats(data_dir, data.read_split(data_dir, "calibration"), log=lambda *_: None)
    saved = np.load(os.path.join(mdir, "predictions", "series.npz"))
    raw, lengths = series.pad_raw(series.raw_sequences(test))
    mean, std = ensemble.load(model_dir.ensemble_dir(mdir)).predict(raw, lengths, test.coords)
    np.testing.assert_allclose(mean, saved["mean"], atol=1e-3)
    np.testing.assert_allclose(std, saved["std"], atol=1e-3)
    assert np.isfinite(mean).all() and (lengths > 0).all()
    assert (test.paired_lengths() == 0).any()                  # points the CNN cannot score have values
    assert stats["clay"].lo[0] <= mean.min() and mean.max() <= stats["clay"].hi[0]
    assert main(["evaluate", "--data", data_dir, "--model-dir", mdir, "--quiet"]) == 0
