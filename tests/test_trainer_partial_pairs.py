"""Datasets where some points (or all) have no S1-paired date: each model trains and is scored on
the points it can use, the report says how many, and every model is also scored on the common
subset so comparisons stay like for like."""
import csv
import json
import os

import numpy as np
import pytest

import trainer_fixtures as fx
from pipelines.cli import main
from trainer import data

pytestmark = pytest.mark.slow      # trains three small models (≈ 20 s on 2 cores)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("partial_pairs")
    data_dir, model_dir = str(root / "data"), str(root / "model")
    fx.write_dataset(data_dir, n_calibration=40, n_test=16, seed=3, unpaired_fraction=0.25)
    assert main(["train", "--data", data_dir, "--model-dir", model_dir, "--models", "cnn,rf,ann_ts",
                 "--epochs", "1", "--bags", "2", "--quick-grid", "--cv-folds", "2", "--quiet"]) == 0
    assert main(["evaluate", "--data", data_dir, "--model-dir", model_dir, "--quiet"]) == 0
    return data_dir, model_dir


def test_models_of_paired_dates_train_on_paired_points(run):
    data_dir, model_dir = run
    cal = data.read_split(data_dir, "calibration")
    n_paired = int((cal.paired_lengths() > 0).sum())
    assert 0 < n_paired < len(cal)                       # the fixture really mixes both kinds
    manifest = json.load(open(os.path.join(model_dir, "manifest.json")))
    assert manifest["n_calibration_s1_paired"] == n_paired
    by_name = {r["name"]: r for r in manifest["models"]}
    assert by_name["cnn"]["n_calibration"] == by_name["ann_ts"]["n_calibration"] == n_paired
    assert by_name["cnn"]["points"] == "s1_paired"
    assert by_name["rf"]["n_calibration"] == len(cal) and by_name["rf"]["points"] == "all"
    # bags are drawn on the subset: every bagged point of the CNN has paired dates
    saved = np.load(os.path.join(model_dir, "predictions", "cnn.npz"))
    paired_ids = set(cal.point_id[cal.paired_lengths() > 0])
    assert set(saved["cal_point_id"]) == paired_ids


def test_report_scores_own_points_and_common_subset(run):
    data_dir, model_dir = run
    test = data.read_split(data_dir, "test")
    paired = test.paired_lengths() > 0
    report = json.load(open(os.path.join(model_dir, "evaluation", "report.json")))
    models = report["models"]
    assert models["cnn"]["n"] == models["ann_ts"]["n"] == int(paired.sum())
    assert models["rf"]["n"] == len(test)
    assert report["n_common"] == int(paired.sum())
    for m in models.values():
        assert m["common"]["n"] == int(paired.sum())
    # the RF's common-subset score is its score on the paired points, recomputed here
    rows = list(csv.DictReader(open(os.path.join(model_dir, "evaluation", "predictions.csv"))))
    obs = np.array([float(r["observed"]) for r in rows])
    rf = np.array([float(r["rf_mean"]) for r in rows])
    cnn_missing = np.array([r["cnn_mean"] == "" for r in rows])
    assert np.array_equal(cnn_missing, ~paired)
    sse = np.sum((obs[paired] - rf[paired]) ** 2)
    sst = np.sum((obs[paired] - obs[paired].mean()) ** 2)
    assert models["rf"]["common"]["r2"] == pytest.approx(1 - sse / sst, abs=1e-3)
    assert "Like for like" in open(os.path.join(model_dir, "evaluation", "report.md")).read()


def test_s2_only_dataset_refuses_cnn_but_trains_s2_models(tmp_path):
    data_dir, model_dir = str(tmp_path / "data"), str(tmp_path / "model")
    fx.write_dataset(data_dir, n_calibration=24, n_test=8, seed=5, with_radar=False)
    assert main(["train", "--data", data_dir, "--model-dir", model_dir, "--models", "cnn", "--epochs", "1",
                 "--bags", "2", "--quiet"]) == 2          # one-line error: no paired dates for the CNN
    assert main(["train", "--data", data_dir, "--model-dir", model_dir, "--models", "cnn_nosar,rf,rf_ts",
                 "--epochs", "1", "--bags", "2", "--quick-grid", "--cv-folds", "2", "--quiet"]) == 0
    manifest = json.load(open(os.path.join(model_dir, "manifest.json")))
    assert [r["name"] for r in manifest["models"]] == ["cnn_nosar", "rf"]     # rf_ts skipped: no pairs
    assert manifest["ensemble"] is None
