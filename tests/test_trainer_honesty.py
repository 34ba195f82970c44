"""The test split cannot influence training: perturbing every test record (targets, coordinates,
spectra, one extra point) leaves the normalisation stats, the bags, the trained weights, the
histories and the RF hyper-parameter choice identical, and the only thing that changes, the
test predictions, are exactly what the unchanged models predict for the new test inputs.
Also: the same seed gives the same weights and the same predictions (repeatable runs)."""
import json
import os

import numpy as np
import pytest

import trainer_fixtures as fx
from trainer import data, predictions
from trainer.baselines import RFGrid
from trainer.config import TrainConfig
from trainer.train import train

pytestmark = pytest.mark.slow      # three training runs (≈ 20 s on 2 cores)

N_TEST = 10


def _perturbed(records, rng):
    out = []
    for r in records:
        r = dict(r)
        r["clay"] = float(rng.uniform(1, 79))
        r["lat"], r["lon"] = r["lat"] + 3.0, r["lon"] - 4.0
        r["s2s1"] = np.asarray(r["s2s1"]) * 1.7 + 0.3
        r["s2"] = np.asarray(r["s2"]) * 1.7
        out.append(r)
    return out + [fx.make_point(rng, 999, 30)]          # and one extra test point


def _weights(model_dir, rel):
    import keras
    m = keras.saving.load_model(os.path.join(model_dir, rel), compile=False)
    return [np.asarray(w) for w in m.get_weights()]


def _predictions(model_dir, name):
    return np.load(os.path.join(model_dir, "predictions", f"{name}.npz"))


def _record(model_dir, name):
    manifest = json.load(open(os.path.join(model_dir, "manifest.json")))
    return next(r for r in manifest["models"] if r["name"] == name)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("honesty")
    base = fx.write_dataset(str(root / "a"), n_calibration=36, n_test=N_TEST, seed=3)
    fx.write_dataset(str(root / "b"), n_calibration=36, n_test=N_TEST, seed=3,
                     test_records=_perturbed(base["test"], np.random.default_rng(9)))
    grid = RFGrid(mtry=(3, 6), min_node_size=(2, 8), trees=(10, 20))
    out = []
    for name, data_dir in (("a", "a"), ("a2", "a"), ("b", "b")):
        cfg = TrainConfig(data=str(root / data_dir), model_dir=str(root / f"model_{name}"), epochs=2, bags=1,
                          models="cnn,rf", rf_grid=grid, cv_folds=3, seed=11, verbose=0, rf_jobs=1,
                          save_rf=True)   # keep the forests, so run a's RF can predict run b's test split
        train(cfg)
        out.append(cfg.model_dir)
    return out, str(root / "b")


def test_test_split_cannot_influence_training(runs):
    (a, _, b), _ = runs
    for rel in ("stats.json", "bags.json", "ensemble/s2mos_model.json", "models/rf/rf_cv.json"):
        assert json.load(open(os.path.join(a, rel))) == json.load(open(os.path.join(b, rel))), rel
    for wa, wb in zip(_weights(a, "bags/bag_0.keras"), _weights(b, "bags/bag_0.keras"), strict=True):
        np.testing.assert_array_equal(wa, wb)
    ha = json.load(open(os.path.join(a, "history/cnn/bag_0.json")))
    hb = json.load(open(os.path.join(b, "history/cnn/bag_0.json")))
    assert ha == hb


@pytest.mark.parametrize("name", ["cnn", "rf"])
def test_test_predictions_change_only_through_the_test_inputs(runs, name):
    """Run b's test predictions are run a's models applied to b's test split: the perturbed test
    split changed what was predicted, never how (and it really changed the predictions)."""
    from s2mos_transforms.normalize import NormStats

    (a, _, b), data_b = runs
    pa, pb = _predictions(a, name), _predictions(b, name)
    assert pb["bags"].shape == (1, N_TEST + 1) and pa["bags"].shape == (1, N_TEST)
    same = [list(pb["point_id"]).index(pid) for pid in pa["point_id"]]    # a's points in b's order
    # the same points, perturbed inputs: the predictions differ
    assert np.max(np.abs(pb["mean"][same] - pa["mean"])) > 0.5        # % clay
    # …and are exactly what run a's saved models predict for run b's test inputs
    test_b = data.read_split(data_b, "test")
    spec = predictions.spec_from_record(_record(a, name))
    stats_a = NormStats.load(a)
    if name == "cnn":
        again = predictions.keras_predictions(spec, _record(a, name), a, test_b, stats_a)
    else:
        again, source = predictions.rf_predictions(spec, _record(a, name), a, test_b, stats_a)
        assert source == "re-predicted from saved forests"
    np.testing.assert_allclose(again, pb["bags"], rtol=0, atol=1e-4)


def test_same_seed_same_weights_and_predictions(runs):
    (a, a2, _), _ = runs
    for wa, wb in zip(_weights(a, "bags/bag_0.keras"), _weights(a2, "bags/bag_0.keras"), strict=True):
        np.testing.assert_array_equal(wa, wb)
    for name in ("cnn", "rf"):
        np.testing.assert_array_equal(_predictions(a, name)["bags"], _predictions(a2, name)["bags"])
