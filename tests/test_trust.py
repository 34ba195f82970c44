"""The trust layer: conformal intervals, the area of applicability, and what `train`/`evaluate`
store and report (real training on a small dataset)."""
import json
import os

import numpy as np
import pytest

import trainer_fixtures as fx
from trainer import aoa, intervals, model_dir, trust


def test_ragged_median_equals_numpy_median():
    rng = np.random.default_rng(0)
    lengths = np.array([1, 2, 5, 0, 8, 3])
    values = rng.normal(size=(lengths.sum(), 3)).astype(np.float32)
    got = aoa.median_features(values, lengths)
    o = np.concatenate([[0], np.cumsum(lengths)])
    for i, n in enumerate(lengths):
        if n == 0:
            assert np.isnan(got[i]).all()
        else:
            np.testing.assert_allclose(got[i], np.median(values[o[i]:o[i + 1]], axis=0), rtol=1e-6)


def test_series_aoa_space_is_the_strong_composites_of_the_series_rows(tmp_path):
    """The whole-series model's AOA features, computed from its rows (what predict-map has), equal
    the S2 columns of the rf_strong composites computed from the dataset (one definition)."""
    from s2mos_transforms import bands
    from trainer import composites, data, series
    fx.write_dataset(str(tmp_path), n_calibration=30, n_test=6, seed=2, max_dates=30, unpaired_fraction=0.3)
    split = data.read_split(str(tmp_path), "calibration")
    values, lengths = aoa.ragged(series.raw_sequences(split), len(bands.CHANNELS_SERIES))
    assert trust.aoa_space(bands.CHANNELS_SERIES) == "composites" and trust.aoa_space(bands.CHANNELS_S2S1) == "medians"
    got = trust.aoa_features(values, lengths, split.coords, True, bands.CHANNELS_SERIES, "composites")
    names = composites.feature_names(True)
    keep = [i for i, n in enumerate(names) if not n.startswith(("VV", "VH")) and n != "n_s1_paired"]
    want = composites.strong_features(split, None, True)[:, keep]
    np.testing.assert_array_equal(got, want)
    assert trust.feature_names(bands.CHANNELS_SERIES, True, "composites") == [names[i] for i in keep]
    assert np.isfinite(got).all()          # every point has bare dates, paired or not


def test_conformal_covers_at_the_level_on_exchangeable_data():
    rng = np.random.default_rng(1)
    n, k = 4000, 5
    truth = rng.uniform(5, 60, n)
    noise_sd = 2 + 0.2 * truth                                  # heteroscedastic
    bags = [np.sort(rng.choice(n, int(0.8 * n), replace=False)) for _ in range(k)]
    y = truth + rng.normal(0, noise_sd)
    preds = truth[None, :] + rng.normal(0, 0.1 * noise_sd, (k, n))
    params = intervals.fit(y, preds, bags)
    assert params["n"] == pytest.approx(n * (1 - 0.8 ** k), rel=0.1)
    # new points from the same process
    truth2 = rng.uniform(5, 60, n)
    sd2 = 2 + 0.2 * truth2
    y2 = truth2 + rng.normal(0, sd2)
    p2 = truth2[None, :] + rng.normal(0, 0.1 * sd2, (k, n))
    lo, hi = intervals.bounds(p2.mean(0), p2.std(0), params)
    cov = intervals.coverage(y2, lo, hi)
    assert 0.87 <= cov["picp"] <= 0.94
    assert cov["mean_width"] > 0


def test_conformal_quantile_is_the_finite_sample_rank():
    scores = np.arange(1, 20, dtype=float)       # n = 19 → ceil(20 · 0.9) = 18th smallest
    assert intervals.conformal_quantile(scores, 0.9) == 18.0
    assert intervals.conformal_quantile(scores[:5], 0.9) == np.inf


def test_aoa_marks_points_far_from_the_training_data():
    rng = np.random.default_rng(2)
    n = 600
    coords = np.stack([rng.uniform(44, 52, n), rng.uniform(2, 14, n)], 1)
    x = rng.normal(0, 1, (n, 3))
    y = 20 + 5 * x[:, 0] + rng.normal(0, 1, n)
    meta, train = aoa.fit(x, y, coords, ["a", "b", "c"], seed=0)
    assert train.dtype == np.float32 and train.shape == (n, 3)
    assert meta["weights"][0] > meta["weights"][1]          # the informative feature weighs most
    area = aoa.AOA(meta, train)
    near = rng.normal(0, 1, (200, 3))
    far = near.copy()
    far[:, 0] += 8.0
    di_near, di_far = area.di(near), area.di(far)
    assert area.inside(di_near).mean() > 0.9
    assert not area.inside(di_far).any()
    assert np.isnan(area.di(np.array([[np.nan, 0, 0]])))[0]


def test_spatial_folds_take_the_block_grid_asked_for():
    rng = np.random.default_rng(0)
    xy = np.stack([rng.uniform(35, 60, 2000), rng.uniform(-10, 30, 2000)], axis=1)
    assert len(np.unique(aoa.spatial_blocks(xy, 5))) == 25                 # default: ⌈√20⌉² blocks
    assert len(np.unique(aoa.spatial_blocks(xy, 5, per_side=3))) == 9
    folds = aoa.spatial_folds(xy, 5, per_side=3)
    blocks = aoa.spatial_blocks(xy, 5, per_side=3)
    assert sorted(np.unique(folds)) == list(range(5))
    assert all(len(np.unique(folds[blocks == b])) == 1 for b in np.unique(blocks))   # a block is never split
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        aoa.spatial_folds(xy, 5, per_side=2)


def test_upper_whisker_drops_outliers():
    v = np.concatenate([np.linspace(0, 1, 99), [50.0]])
    assert aoa.upper_whisker(v) == pytest.approx(1.0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from pipelines.cli import main
    root = tmp_path_factory.mktemp("trust")
    data_dir, mdir = str(root / "data"), str(root / "model")
    fx.write_dataset(data_dir, n_calibration=60, n_test=20, seed=3, max_dates=40)
    assert main(["train", "--data", data_dir, "--model-dir", mdir, "--epochs", "2", "--bags", "3",
                 "--models", "cnn,rf", "--quick-grid", "--cv-folds", "2", "--seed", "5", "--quiet"]) == 0
    assert main(["evaluate", "--data", data_dir, "--model-dir", mdir, "--quiet"]) == 0
    return data_dir, mdir


@pytest.mark.slow
def test_train_stores_the_trust_layer_and_evaluate_reports_it(trained):
    data_dir, mdir = trained
    meta = model_dir.read_meta(mdir)
    assert meta.intervals["level"] == 0.9 and np.isfinite(meta.intervals["q"]) and meta.intervals["eps"] > 0
    assert meta.aoa["threshold"] > 0 and len(meta.aoa["weights"]) == len(meta.channels) + 2
    assert os.path.exists(os.path.join(mdir, "ensemble", model_dir.AOA_FILE))
    assert 0 < meta.calibration_clay_mean < 80
    report = json.load(open(os.path.join(mdir, "evaluation", "report.json")))
    for name in ("cnn", "rf"):
        iv = report["models"][name]["interval"]
        assert 0.0 <= iv["picp"] <= 1.0 and iv["mean_width"] > 0 and iv["n"] == 20
    a = report["aoa"]
    assert a["n_inside"] + a["n_outside"] == 20
    md = open(os.path.join(mdir, "evaluation", "report.md")).read()
    assert "90 % prediction intervals" in md and "Area of applicability" in md
    # the trust layer on the test sequences: same bounds as evaluate's
    t = trust.Trust.load(mdir)
    assert t.aoa is not None and t.aoa.tree.n == meta.aoa["n_stored"]


@pytest.mark.slow
def test_spatial_block_cross_validation_of_the_aoa(trained, tmp_path):
    from trainer import trust_experiments
    data_dir, mdir = trained
    res = trust_experiments.aoa_cv(data_dir, str(tmp_path), epochs=1, bags=2, folds=3, parallel=False, n_boot=200)
    assert len(res["folds"]) == 3 and res["n_inside"] + res["n_outside"] + res["n_unusable"] == res["n_points"] == 80
    assert sum(f["n_test"] + f["n_unusable"] for f in res["folds"]) == 80 and 0 <= res["picp"] <= 1
    assert json.load(open(tmp_path / "aoa_cv.json"))["n_points"] == 80
    points = np.load(tmp_path / "aoa_cv_points.npz")
    assert len(points["err"]) == res["n_inside"] + res["n_outside"]
    # resumed: the folds' predictions exist, nothing is trained again and the result is the same
    again = trust_experiments.aoa_cv(data_dir, str(tmp_path), epochs=1, bags=2, folds=3, parallel=False, n_boot=200)
    assert again["mae_inside"] == res["mae_inside"] and again["ratio_ci95"] == res["ratio_ci95"]
    # the same errors split by a DI in another feature space: the medians reproduce aoa-cv's split
    same = trust_experiments.aoa_space(data_dir, str(tmp_path), "medians", folds=3, n_boot=200)
    assert (same["n_inside"], same["mae_outside"]) == (res["n_inside"], res["mae_outside"])
    other = trust_experiments.aoa_space(data_dir, str(tmp_path), "composites", folds=3, n_boot=200)
    assert other["n_inside"] + other["n_outside"] + other["n_without_di"] == res["n_inside"] + res["n_outside"]
    # the model's own learnt space: each fold's bags' last hidden layer (2 bags × 16 units)
    latent = trust_experiments.aoa_space(data_dir, str(tmp_path), "latent", folds=3, n_boot=200,
                                         site_dir=data_dir, model_dir=mdir)
    assert latent["n_features"] == 32 and latent["n_without_di"] == 0
    assert latent["n_inside"] + latent["n_outside"] == res["n_inside"] + res["n_outside"]
    assert latent["site"]["n_with_di"] == latent["site"]["n"] and 0 <= latent["site"]["share_outside"] <= 1
    with pytest.raises(ValueError, match="--model-dir"):
        trust_experiments.aoa_space(data_dir, str(tmp_path), "latent", folds=3, n_boot=200, site_dir=data_dir)


def test_aoa_error_ratio_interval_resamples_blocks_and_skips_points_without_a_di():
    from trainer import trust_experiments
    rng = np.random.default_rng(3)
    n = 4000
    inside = rng.random(n) < 0.8
    err = np.abs(rng.normal(0, 1, n)) * np.where(inside, 1.0, 2.0)
    di = np.where(inside, 0.1, 0.5)
    di[:50] = np.nan                      # points the model could not use: neither inside nor outside
    err[:50] = 100.0
    block = rng.integers(0, 40, n)
    r = trust_experiments.ratio_with_interval(err, di, di <= 0.3, block, n_boot=500)
    assert r["n_inside"] + r["n_outside"] == n - 50 and r["n_blocks"] == 40
    assert 1.8 < r["ratio"] < 2.2 and r["ratio_ci95"][0] < r["ratio"] < r["ratio_ci95"][1]
    assert r["ratio_ci95"][0] > 1.5 and r["spearman_di_abs_error"] > 0.2


def test_forest_intervals_use_unscaled_out_of_bag_residuals():
    """A memorising model (a forest): in-bag predictions equal the target, so the bag spread at a
    calibration point is inflated and scaled scores would give too narrow test intervals; the
    constant-width interval from plain out-of-bag residuals covers 90 % of new points."""
    rng = np.random.default_rng(4)
    n, k = 4000, 5
    y = rng.normal(30, 10, n)
    noise = rng.normal(0, 5, (k, n))
    bags = [rng.choice(n, int(0.8 * n), replace=False) for _ in range(k)]
    preds = y + noise                                 # out of bag: error sd 5
    for b, idx in enumerate(bags):
        preds[b, idx] = y[idx]                        # in bag: memorised
    params = intervals.fit(y, preds, bags, scale_by_spread=False)
    assert params["scale_by_spread"] is False and 1.645 * 5 / 2 ** 0.5 < params["q"] < 1.645 * 5 * 1.05
    y_new = rng.normal(30, 10, n)
    new_preds = y_new + rng.normal(0, 5, (k, n)) * 0.3 + rng.normal(0, 5 * 0.95, n)   # small spread at new points
    mean, sd = new_preds.mean(0), new_preds.std(0)
    lo, hi = intervals.bounds(mean, sd, params)
    assert 0.85 < intervals.coverage(y_new, lo, hi)["picp"] < 0.95
    scaled = intervals.fit(y, preds, bags)            # the spread-scaled score under-covers here
    lo_s, hi_s = intervals.bounds(mean, sd, scaled)
    assert intervals.coverage(y_new, lo_s, hi_s)["picp"] < 0.8


def test_recal_plot_draws_every_curve(tmp_path):
    from PIL import Image
    from trainer import recalibrate, trust_experiments
    rng = np.random.default_rng(0)
    y = rng.uniform(30, 60, 40)
    paths = {}
    for label, shift in (("a", -20.0), ("b", -10.0)):
        rows = recalibrate.curve(y, y + shift + rng.normal(0, 5, y.size), repeats=50)
        paths[label] = str(tmp_path / f"{label}.json")
        json.dump({"curve": rows}, open(paths[label], "w"))
    png = tmp_path / "curve.png"
    trust_experiments.recal_plot(paths, str(png))
    with Image.open(png) as im:
        assert im.size[0] > 800 and im.size[1] > 300


def test_latent_unit_weights_make_the_distance_that_of_the_weighted_activations():
    """`unit_weights`: with them `aoa.fit` measures ‖w ⊙ (h − h')‖ (over the mean pairwise distance)."""
    from scipy.spatial.distance import pdist
    from trainer import aoa, trust_experiments
    rng = np.random.default_rng(4)
    h = rng.gamma(2.0, 1.0, (60, 5)) * np.array([1.0, 3.0, 0.1, 2.0, 1.0])
    w = np.array([0.5, 0.0, 2.0, 1.0, 0.1])
    meta, train = aoa.fit(h, rng.normal(30, 5, 60), rng.uniform(0, 1, (60, 2)), [], 0,
                          weights=trust_experiments.unit_weights(h, w))
    q = h[:3] + np.array([0.3, 9.0, 0.2, 0.0, 1.0])     # the second unit carries no weight
    expect = [np.min(np.linalg.norm((h - row) * w, axis=1)) for row in q] / pdist(h * w).mean()
    np.testing.assert_allclose(aoa.AOA(meta, train).di(q), expect, rtol=1e-5)
