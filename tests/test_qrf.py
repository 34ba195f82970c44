"""Quantile regression forest (`trainer.qrf`) and R randomForest's nodesize rule
(`trainer.baselines.node_params`), then `s2mos train --models rf_strong,qrf_strong` end to end."""
import json
import os

import joblib
import numpy as np
import pytest

import trainer_fixtures as fx
from trainer import baselines, qrf


def _hetero(n, rng):
    """y = 2·x0 + (0.1 + x1)·ε: the median is 2·x0, the spread grows with x1."""
    x = rng.uniform(0, 1, (n, 3))
    return x, 2 * x[:, 0] + (0.1 + x[:, 1]) * rng.normal(size=n)


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    x, y = _hetero(1000, rng)
    xt, yt = _hetero(1000, rng)
    model = qrf.fit_qrf(x, y, {"trees": 60, "mtry": 3, "min_node_size": 10}, seed=0, n_jobs=1)
    return model, x, xt, yt, model.quantiles(xt)


def test_90_percent_interval_covers_about_90_percent(fitted):
    _, _, xt, yt, (q05, q50, q95) = fitted
    inside = (yt >= q05) & (yt <= q95)
    assert 0.85 <= inside.mean() <= 0.95
    assert 0.02 <= np.mean(yt < q05) <= 0.09 and 0.02 <= np.mean(yt > q95) <= 0.09
    assert np.all(q05 <= q50) and np.all(q50 <= q95)
    width = q95 - q05
    assert width[xt[:, 1] > 0.7].mean() > 2 * width[xt[:, 1] < 0.3].mean()     # heteroscedastic


def test_median_tracks_the_conditional_median(fitted):
    model, _, xt, yt, (_, q50, _) = fitted
    np.testing.assert_array_equal(model.predict(xt), q50)
    truth = 2 * xt[:, 0]
    assert np.sqrt(np.mean((q50 - truth) ** 2)) < 0.5 * np.sqrt(np.mean((yt - truth) ** 2))


def test_weights_are_leaf_co_membership(fitted):
    model, x, xt, _, _ = fitted
    w = model.weights(xt[:6])
    np.testing.assert_allclose(w.sum(1), 1.0)
    lt, lr = model.forest.apply(xt[:6]), model.forest.apply(x)
    brute = np.zeros_like(w)
    for t in range(lt.shape[1]):
        same = lt[:, t][:, None] == lr[:, t][None, :]
        brute += same / same.sum(1, keepdims=True)
    np.testing.assert_allclose(w, brute / lt.shape[1], atol=1e-12)


def test_weighted_quantile_is_the_smallest_y_reaching_alpha():
    y = np.array([1.0, 2.0, 3.0, 4.0])
    w = np.array([[0.25, 0.25, 0.25, 0.25], [0.0, 0.0, 0.9, 0.1]])
    got = qrf.weighted_quantile_index(np.cumsum(w, 1), np.array([0.05, 0.5, 0.95]), y)
    np.testing.assert_array_equal(got, [[1.0, 3.0], [2.0, 3.0], [4.0, 4.0]])


def test_saved_forest_predicts_the_same(fitted, tmp_path):
    model, _, xt, _, (_, q50, _) = fitted
    joblib.dump(model, tmp_path / "q.joblib", compress=3)
    again = joblib.load(tmp_path / "q.joblib")
    np.testing.assert_array_equal(again.predict(xt), q50)


def test_nodesize_is_r_randomforest_split_threshold():
    """R regTree.c: a node with <= nodesize samples is terminal; a larger one is split whenever a
    split lowers the squared error, whatever the daughters' sizes."""
    rng = np.random.default_rng(2)
    x = rng.uniform(size=(400, 4))
    y = x[:, 0] + 0.3 * rng.normal(size=400)
    nodesize = 5
    assert baselines.node_params(nodesize) == {"min_samples_split": 6, "min_samples_leaf": 1}
    forest = baselines.make_forest(20, 4, nodesize, seed=0, n_jobs=1).fit(x, y)
    small_leaves = 0
    for est in forest.estimators_:
        t = est.tree_
        leaf = t.children_left == -1
        assert np.all(t.n_node_samples[~leaf] > nodesize)                # no node of ≤ nodesize is split
        assert np.all((t.n_node_samples[leaf] <= nodesize) | (t.impurity[leaf] < 1e-12))  # the rest are
        small_leaves += int(np.sum(t.n_node_samples[leaf] < nodesize))
    assert small_leaves > 0             # leaves below nodesize exist: it does not bound leaf size


def test_select_rf_records_r_nodesize():
    rng = np.random.default_rng(0)
    x, y = _hetero(120, rng)
    best, table = baselines.select_rf(x, y, baselines.RFGrid((2,), (5, 50), (10,)), folds=3, seed=0, n_jobs=1)
    assert {r["min_node_size"] for r in table} == {5, 50} and best["min_node_size"] in (5, 50)


@pytest.mark.slow
def test_train_strong_tree_baselines_end_to_end(tmp_path):
    """`s2mos train --models rf_strong,qrf_strong` then `evaluate`: median predictions, native quantiles
    per bag, one CV (reused by the QRF), and the native PICP in the report."""
    from pipelines.cli import main
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "model")
    fx.write_dataset(data_dir, n_calibration=60, n_test=20, seed=5)
    assert main(["train", "--data", data_dir, "--model-dir", model_dir, "--models", "rf_strong,qrf_strong",
                 "--bags", "2", "--quick-grid", "--cv-folds", "2", "--seed", "3", "--save-rf", "--quiet"]) == 0
    p = np.load(os.path.join(model_dir, "predictions", "qrf_strong.npz"))
    assert p["bags"].shape == p["q05"].shape == p["q95"].shape == (2, 20)
    assert p["cal_q05"].shape == p["cal_bags"].shape == (2, 60)
    assert np.all(p["q05"] <= p["bags"] + 1e-4) and np.all(p["bags"] <= p["q95"] + 1e-4)
    assert "q05" not in np.load(os.path.join(model_dir, "predictions", "rf_strong.npz"))
    cv_rf = json.load(open(os.path.join(model_dir, "models", "rf_strong", "rf_cv.json")))
    cv_q = json.load(open(os.path.join(model_dir, "models", "qrf_strong", "rf_cv.json")))
    assert cv_q["reused_from"] == "rf_strong" and cv_q["selected"] == cv_rf["selected"]
    assert main(["evaluate", "--data", data_dir, "--model-dir", model_dir, "--quiet"]) == 0
    report = json.load(open(os.path.join(model_dir, "evaluation", "report.json")))
    assert set(report["models"]) >= {"rf_strong", "qrf_strong"}
    assert 0.0 <= report["models"]["qrf_strong"]["native_interval"]["picp"] <= 1.0
