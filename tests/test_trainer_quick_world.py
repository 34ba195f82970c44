"""End to end on the real chain: embedded world (quick) → `s2mos build-dataset` → train → evaluate."""
import json
import os

import numpy as np
import pytest

from pipelines.cli import main


@pytest.mark.slow
def test_train_and_evaluate_on_the_quick_world_dataset(quick_world, tmp_path):
    data_dir, model_dir = str(tmp_path / "ds"), str(tmp_path / "model")
    assert main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", data_dir, "--quiet"]) == 0
    assert main(["train", "--data", data_dir, "--model-dir", model_dir, "--models", "cnn,rf", "--epochs", "2",
                 "--bags", "2", "--quick-grid", "--cv-folds", "2", "--quiet"]) == 0
    assert main(["evaluate", "--data", data_dir, "--model-dir", model_dir, "--quiet"]) == 0
    report = json.load(open(os.path.join(model_dir, "evaluation", "report.json")))
    n_test = json.load(open(os.path.join(data_dir, "summary.json")))["test"]
    assert set(report["models"]) == {"cnn", "rf"}
    for m in report["models"].values():
        assert m["n"] == n_test and np.isfinite(m["r2"]) and m["rmse"] > 0
    assert report["ensemble_check"]["max_abs_diff_mean"] < 2e-3
    # the dataset's stats.json (calibration only) is the one the ensemble carries
    ds_stats = json.load(open(os.path.join(data_dir, "stats.json")))
    meta = json.load(open(os.path.join(model_dir, "ensemble", "s2mos_model.json")))
    assert meta["stats"]["s2s1"] == ds_stats["s2s1"] and meta["stats"]["clay"] == ds_stats["clay"]
    # …and the extraction settings build-dataset recorded are the ones the model carries to the map
    from s2mos_transforms.sequences import ExtractConfig
    from trainer.model_dir import read_meta
    thresholds = json.load(open(os.path.join(data_dir, "summary.json")))["thresholds"]
    assert meta["extraction"] == ExtractConfig.from_dict(thresholds).as_dict() == thresholds
    assert read_meta(model_dir).extract_config() == ExtractConfig.from_dict(thresholds)
