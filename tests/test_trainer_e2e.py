"""End to end on a small dataset: `s2mos train` + `s2mos evaluate` produce every artefact, and
the exported ensemble, loaded fresh from disk, equals the bag models averaged on raw inputs."""
import json
import os

import numpy as np
import pytest

import trainer_fixtures as fx
from pipelines.cli import main
from s2mos_transforms.sequences import ExtractConfig
from trainer import extraction, model_dir
from trainer.specs import ALL_MODELS

pytestmark = pytest.mark.slow      # trains every model family (≈ 1 min on 2 cores)

N_BAGS = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer_e2e")
    data_dir, model_dir = str(root / "data"), str(root / "model")
    fx.write_dataset(data_dir, n_calibration=40, n_test=14, seed=1, max_dates=170)
    assert main(["train", "--data", data_dir, "--model-dir", model_dir, "--epochs", "1", "--bags", str(N_BAGS),
                 "--quick-grid", "--cv-folds", "2", "--seed", "7", "--quiet"]) == 0
    assert main(["evaluate", "--data", data_dir, "--model-dir", model_dir, "--quiet"]) == 0
    return data_dir, model_dir


def test_model_directory_artefacts(run):
    _, m = run
    for rel in ("train_config.json", "manifest.json", "stats.json", "bags.json",
                "ensemble/saved_model.pb", "ensemble/s2mos_model.json", "ensemble/stats.json"):
        assert os.path.isfile(os.path.join(m, rel)), rel
    for k in range(N_BAGS):
        assert os.path.isfile(os.path.join(m, "bags", f"bag_{k}.keras"))
    manifest = json.load(open(os.path.join(m, "manifest.json")))
    assert [r["name"] for r in manifest["models"]] == list(ALL_MODELS)
    for rec in manifest["models"]:
        assert len(rec["bags"]) == N_BAGS
        assert os.path.isfile(os.path.join(m, "predictions", f"{rec['name']}.npz"))
        if rec["family"] in ("cnn", "ann", "series"):
            assert os.path.isfile(os.path.join(m, "history", rec["name"], "bag_0.json"))
            assert os.listdir(os.path.join(m, "logs", rec["name"], "bag_0", "train"))   # TensorBoard events
        elif rec["family"] in ("rf", "qrf"):
            cv = json.load(open(os.path.join(m, "models", rec["name"], "rf_cv.json")))
            assert cv["selected"] == rec["rf_params"] and cv["table"]
    bags = json.load(open(os.path.join(m, "bags.json")))["bags"]
    assert len(bags) == N_BAGS and all(len(b) == 32 for b in bags) and bags[0] != bags[1]


def test_ensemble_metadata_contract(run):
    _, m = run
    meta = json.load(open(os.path.join(m, "ensemble", "s2mos_model.json")))
    assert meta["channels"] == ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12", "VV", "VH"]
    assert meta["use_coords"] is True and meta["max_dates"] == 150 and meta["bags"] == N_BAGS
    assert meta["family"] == "cnn" and meta["sequence_feature"] == "s2s1"
    assert set(meta["stats"]) == {"s2s1", "coords", "clay"}
    assert len(meta["stats"]["s2s1"]["min"]) == 12
    assert meta["bag_models"] == [f"../bags/bag_{k}.keras" for k in range(N_BAGS)]
    # the fixture's summary.json records no extraction settings: the paper's, and said so
    assert meta["extraction"] == ExtractConfig().as_dict()
    assert meta["extraction_source"] == extraction.DEFAULTS_NOT_RECORDED
    assert model_dir.read_meta(m).extract_config() == ExtractConfig()
    manifest = json.load(open(os.path.join(m, "manifest.json")))
    assert manifest["extraction"] == ExtractConfig().as_dict()
    assert manifest["extraction_source"] == extraction.DEFAULTS_NOT_RECORDED


def test_fresh_ensemble_equals_bag_average_from_raw_inputs(run):
    import keras
    from s2mos_transforms.normalize import NormStats
    from trainer import data, ensemble

    d, m = run
    test = data.read_split(d, "test")
    stats = NormStats.load(m)
    # in-memory path: the bag models, our NumPy normalisation/padding, average in % clay
    seq, lengths = data.sequence_input(test, stats, "s2s1")
    x = {"sequence": seq, "coords": data.coords_input(test, stats)}
    bag_clay = []
    for k in range(N_BAGS):
        model = keras.saving.load_model(os.path.join(m, "bags", f"bag_{k}.keras"), compile=False)
        bag_clay.append(data.clay_from_target(np.asarray(model(x, training=False)).ravel(), stats))
    bag_clay = np.stack(bag_clay)
    # serving path: SavedModel loaded fresh, raw unpadded-to-150 inputs (some > 150 dates: thinned inside)
    raw, raw_len = data.pad_sequences(test.sequences["s2s1"], 12, max_dates=max(len(s) for s in test.sequences["s2s1"]))
    mean, std = ensemble.load(os.path.join(m, "ensemble")).predict(raw, raw_len, test.coords)
    np.testing.assert_allclose(mean, bag_clay.mean(0), atol=2e-3)
    np.testing.assert_allclose(std, bag_clay.std(0), atol=2e-3)
    # anything past `length` is ignored by the served model
    junk = raw.copy()
    for i, n in enumerate(raw_len):
        junk[i, n:] = 123.0
    mean2, _ = ensemble.load(os.path.join(m, "ensemble")).predict(junk, raw_len, test.coords)
    np.testing.assert_allclose(mean2, mean, atol=1e-5)


def test_serving_signature_is_the_contract(run):
    import tensorflow as tf
    _, m = run
    fn = tf.saved_model.load(os.path.join(m, "ensemble")).signatures["serving_default"]
    spec = fn.structured_input_signature[1]
    assert spec["sequence"].dtype == tf.float32 and spec["sequence"].shape.as_list() == [None, None, 12]
    assert spec["length"].dtype == tf.int32 and spec["coords"].shape.as_list() == [None, 2]
    out = fn(sequence=tf.zeros([2, 5, 12]), length=tf.constant([5, 0]), coords=tf.constant([[45.0, 5.0]] * 2))
    assert set(out) == {"clay_mean", "clay_std"} and out["clay_mean"].shape == (2,)


def test_evaluation_report(run):
    _, m = run
    ev = os.path.join(m, "evaluation")
    report = json.load(open(os.path.join(ev, "report.json")))
    assert list(report["models"]) == list(ALL_MODELS)
    for name, r in report["models"].items():
        assert {"r2", "rmse", "rpiq", "ccc", "bias", "n"} <= set(r)
        assert r["n"] == 14 and np.isfinite(r["rmse"])
        assert os.path.isfile(os.path.join(ev, "figures", f"scatter_{name}.png"))
    assert report["models"]["cnn"]["paper_r2"] == 0.60 and report["models"]["rf"]["paper_rpiq"] == 1.91
    assert report["models"]["cnn"]["source"].startswith("serving ensemble")
    assert report["ensemble_check"]["max_abs_diff_mean"] < 2e-3
    assert os.path.isfile(os.path.join(ev, "figures", "scatter_all.png"))
    assert os.path.isfile(os.path.join(ev, "figures", "interpretability.png"))
    interp = json.load(open(os.path.join(ev, "interpretability.json")))
    assert len(interp["filters"]) == 16 and interp["layer"] == "conv3"
    live = [f["mean_clay"] for f in interp["filters"] if not f["dead"]]
    assert live == sorted(live)
    for other in ("rf", "ann"):
        c = report["comparisons"][other]
        assert c["delta_r2"] == pytest.approx(report["models"]["cnn"]["r2"] - report["models"][other]["r2"])
        assert c["ci95_low"] <= c["delta_r2"] <= c["ci95_high"] and 0.0 <= c["p_not_better"] <= 1.0
    md = open(os.path.join(ev, "report.md")).read()
    assert report["extraction"] == ExtractConfig().as_dict()
    for needle in ("| cnn |", "| rf_ts |", "Ablations", "Figure 9", "Figures 10–11", "paper R²",
                   "paired bootstrap 95 % interval", "extraction settings (paper defaults", "ndvi_max 0.25"):
        assert needle in md
    csv = open(os.path.join(ev, "predictions.csv")).read().splitlines()
    assert len(csv) == 15 and csv[0].startswith("point_id,observed,cnn_mean,cnn_std")
