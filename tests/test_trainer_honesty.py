"""The test split cannot influence training: perturbing every test record leaves the
normalisation stats, the bags, the trained weights and the RF hyper-parameter choice identical.
Also: the same seed gives the same weights (repeatable runs)."""
import json
import os

import numpy as np
import pytest

import trainer_fixtures as fx
from trainer.baselines import RFGrid
from trainer.train import TrainConfig, train


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


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("honesty")
    base = fx.write_dataset(str(root / "a"), n_calibration=36, n_test=10, seed=3)
    fx.write_dataset(str(root / "b"), n_calibration=36, n_test=10, seed=3,
                     test_records=_perturbed(base["test"], np.random.default_rng(9)))
    grid = RFGrid(mtry=(3, 6), min_node_size=(2, 8), trees=(10, 20))
    out = []
    for name, data_dir in (("a", "a"), ("a2", "a"), ("b", "b")):
        cfg = TrainConfig(data=str(root / data_dir), model_dir=str(root / f"model_{name}"), epochs=2, bags=1,
                          models="cnn,rf", rf_grid=grid, cv_folds=3, seed=11, verbose=0, rf_jobs=1)
        train(cfg)
        out.append(cfg.model_dir)
    return out


def test_test_split_cannot_influence_training(runs):
    a, _, b = runs
    for rel in ("stats.json", "bags.json", "ensemble/s2mos_model.json", "models/rf/rf_cv.json"):
        assert json.load(open(os.path.join(a, rel))) == json.load(open(os.path.join(b, rel))), rel
    for wa, wb in zip(_weights(a, "bags/bag_0.keras"), _weights(b, "bags/bag_0.keras")):
        np.testing.assert_array_equal(wa, wb)
    ha = json.load(open(os.path.join(a, "history/cnn/bag_0.json")))
    hb = json.load(open(os.path.join(b, "history/cnn/bag_0.json")))
    assert ha == hb
    # …while the test predictions did change (the test split was really different)
    pa = np.load(os.path.join(a, "predictions/cnn.npz"))["observed"]
    pb = np.load(os.path.join(b, "predictions/cnn.npz"))["observed"]
    assert pa.shape != pb.shape or not np.allclose(pa, pb)


def test_same_seed_same_weights(runs):
    a, a2, _ = runs
    for wa, wb in zip(_weights(a, "bags/bag_0.keras"), _weights(a2, "bags/bag_0.keras")):
        np.testing.assert_array_equal(wa, wb)
