"""The model carries its extraction settings: `s2mos train` reads the dataset's summary.json
"thresholds" and writes them into ensemble/s2mos_model.json ("extraction"), where
`model_dir.read_meta(...).extract_config()` gives them back to the map; a dataset that does not
record them gets the paper's defaults, and the run says so."""
import json
import os

import pytest

import trainer_fixtures as fx
from pipelines.cli import main
from s2mos_transforms.errors import UserError
from s2mos_transforms.masks import MaskThresholds
from s2mos_transforms.sequences import ExtractConfig
from trainer import extraction, model_dir

CUSTOM = ExtractConfig(thresholds=MaskThresholds(scene_cloud_max=40.0, ndvi_max=0.3, nbr2_max=0.1,
                                                 outlier_sigma=2.5, band_order=False),
                       s1_pair_max_days=2.0, max_dates=120)


def _summary(tmp_path, doc) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    with open(tmp_path / "summary.json", "w") as fh:
        json.dump(doc, fh)
    return str(tmp_path)


def test_custom_settings_differ_from_the_paper_in_every_field():
    custom, paper = CUSTOM.as_dict(), ExtractConfig().as_dict()
    assert set(custom) == set(paper) and all(custom[k] != paper[k] for k in paper)


def test_read_settings_of_a_dataset(tmp_path):
    got = extraction.read(_summary(tmp_path / "new", {"thresholds": CUSTOM.as_dict()}))
    assert got.settings == CUSTOM.as_dict() and got.source == extraction.FROM_SUMMARY
    # a dataset written before band_order was recorded: the paper's rule, every other value kept
    old = {k: v for k, v in CUSTOM.as_dict().items() if k != "band_order"}
    got = extraction.read(_summary(tmp_path / "old", {"thresholds": old}))
    assert got.settings == {**old, "band_order": True}
    got = extraction.read(_summary(tmp_path / "none", {"calibration": 3}))
    assert got.settings == ExtractConfig().as_dict() and got.source == extraction.DEFAULTS_NOT_RECORDED
    os.makedirs(tmp_path / "bare")
    got = extraction.read(str(tmp_path / "bare"))
    assert got.settings == ExtractConfig().as_dict() and got.source == extraction.DEFAULTS_NO_SUMMARY


@pytest.mark.parametrize("thresholds, needle", [
    ({"ndvi_maxx": 0.3}, "unknown extraction setting(s): ndvi_maxx"),
    ({"ndvi_max": "0.3"}, "ndvi_max must be a number"),
    ({"band_order": 1}, "band_order must be true or false"),
    ([0.3], "must be an object"),
])
def test_bad_settings_are_one_clear_error(tmp_path, thresholds, needle):
    d = _summary(tmp_path, {"thresholds": thresholds})
    with pytest.raises(UserError, match="summary.json") as err:
        extraction.read(d)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_train_refuses_a_dataset_with_unknown_settings(tmp_path, capsys):
    data_dir = str(tmp_path / "data")
    fx.write_dataset(data_dir, n_calibration=8, n_test=4, seed=5, thresholds={"ndvi_max": 0.3, "cloud": 5})
    assert main(["train", "--data", data_dir, "--model-dir", str(tmp_path / "m"), "--models", "cnn",
                 "--epochs", "1", "--bags", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("s2mos: error: ") and "unknown extraction setting(s): cloud" in err[0]
    assert not os.path.exists(tmp_path / "m" / "ensemble")


def test_trained_model_carries_the_dataset_settings(tmp_path):
    data_dir, m = str(tmp_path / "data"), str(tmp_path / "model")
    fx.write_dataset(data_dir, n_calibration=16, n_test=6, seed=5, max_dates=30, thresholds=CUSTOM.as_dict())
    assert main(["train", "--data", data_dir, "--model-dir", m, "--models", "cnn", "--epochs", "1",
                 "--bags", "1", "--quiet"]) == 0
    meta = model_dir.read_meta(m)
    assert meta.extract_config() == CUSTOM
    assert meta.extraction == CUSTOM.as_dict()
    raw = json.load(open(os.path.join(m, model_dir.ENSEMBLE_DIR, model_dir.MODEL_META)))
    assert raw["extraction_source"] == extraction.FROM_SUMMARY
    manifest = json.load(open(os.path.join(m, "manifest.json")))
    config = json.load(open(os.path.join(m, "train_config.json")))
    for doc in (manifest, manifest["config"], config):
        assert doc["extraction"] == CUSTOM.as_dict() and doc["extraction_source"] == extraction.FROM_SUMMARY
