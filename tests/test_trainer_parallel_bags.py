"""--parallel-bags: K bags trained side by side in one stacked Keras model get exactly the updates
they would get one after another, and `s2mos train --parallel-bags` writes the sequential path's
artefacts (which `s2mos evaluate` reads unchanged)."""
import json
import os
import zipfile

import numpy as np
import pytest

import trainer_fixtures as fx
from trainer import bagging, cli, data, fit, models, specs, task
from trainer.config import TrainConfig


def _no_dropout(model):
    import keras
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


def _random_bags(rng, n_bags, n, spec_family):
    out = []
    for _ in range(n_bags):
        if spec_family == "cnn":
            x = {"sequence": rng.uniform(-1, 1, (n, 150, 12)).astype(np.float32),
                 "coords": rng.uniform(-1, 1, (n, 2)).astype(np.float32)}
        else:
            x = {"features": rng.uniform(-1, 1, (n, 12)).astype(np.float32)}
        out.append((x, rng.uniform(-1, 1, n).astype(np.float32)))
    return out


@pytest.mark.slow
def test_one_parallel_epoch_equals_each_bag_alone():
    """Dropout off, identical initial weights, the same data order: the stacked epoch (2 bags, batch 8,
    a partial last batch, 3 steps per call) ends on the weights and Adam state of two separate fits."""
    import keras

    rng = np.random.default_rng(3)
    bags = _random_bags(rng, 2, 21, "cnn")
    orders = [rng.permutation(21) for _ in bags]          # each bag's data order, fixed

    def dataset(k):
        x, y = bags[k]
        return data.make_tf_dataset({n: v[orders[k]] for n, v in x.items()}, y[orders[k]], 8)

    keras.utils.set_random_seed(11)
    members = [_no_dropout(models.compile_model(models.build_cnn(12), steps_per_execution=3)) for _ in bags]
    alone = []
    for m in members:
        twin = _no_dropout(models.compile_model(models.build_cnn(12), steps_per_execution=3))
        twin.set_weights(m.get_weights())
        alone.append(twin)
    assert not np.allclose(members[0].get_weights()[0], members[1].get_weights()[0])   # different bags

    stacked = models.stack_bags(members, steps_per_execution=3)
    hist = stacked.fit(data.zip_bags([dataset(k) for k in range(2)]), epochs=1, verbose=0, shuffle=False)
    for k, twin in enumerate(alone):
        h = twin.fit(dataset(k), epochs=1, verbose=0, shuffle=False)
        for got, want in zip(members[k].get_weights(), twin.get_weights(), strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        assert hist.history[models.bag_key(k, "loss")][0] == pytest.approx(h.history["loss"][0], rel=1e-5)
        assert hist.history[models.bag_key(k, "rmse")][0] == pytest.approx(h.history["rmse"][0], rel=1e-5)
    assert int(stacked.optimizer.iterations) == 3 == int(alone[0].optimizer.iterations)   # ceil(21 / 8) steps
    models.unstack_optimizer_state(stacked)
    for k, twin in enumerate(alone):
        for got, want in zip(members[k].optimizer.variables, twin.optimizer.variables, strict=True):
            np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=0, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ann", "cnn"])
def test_fit_keras_parallel_reproduces_sequential_bags(name):
    """The trainer's own paths, dropout on, seeds from --seed: same weights, histories (incl. the
    out-of-bag metrics each epoch) and optimiser state as `fit_keras` bag after bag."""
    import keras

    spec = specs.all_specs()[name]
    rng = np.random.default_rng(5)
    n = 30
    (x, y), = _random_bags(rng, 1, n, spec.family)
    cfg = TrainConfig(data="-", model_dir="-", epochs=2, steps_per_execution=4)
    bag_data = []
    for bag in bagging.draw_bags(n, 2, seed=5):
        oob = bagging.out_of_bag(n, bag)
        bag_data.append(({k: v[bag] for k, v in x.items()}, y[bag], {k: v[oob] for k, v in x.items()}, y[oob]))
    seeds = [bagging.bag_seed(5, k) for k in range(2)]
    sequential = []
    for (xt, yt, xv, yv), seed in zip(bag_data, seeds):
        m, h = fit.fit_keras(spec, xt, yt, xv, yv, cfg, seed, 8, [])
        sequential.append(([np.array(w) for w in m.get_weights()], h,
                           [v.numpy() for v in m.optimizer.variables]))
        keras.backend.clear_session(free_memory=False)
    seen = [[], []]

    class Seen(keras.callbacks.Callback):
        def __init__(self, k):
            super().__init__()
            self.k = k

        def on_epoch_end(self, epoch, logs=None):
            seen[self.k].append(dict(logs))

    parallel = fit.fit_keras_parallel(spec, bag_data, cfg, seeds, 8, [[Seen(0)], [Seen(1)]])
    for k, (model, history) in enumerate(parallel):
        weights, want_hist, opt_state = sequential[k]
        for got, want in zip(model.get_weights(), weights, strict=True):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
        assert list(history) == list(want_hist) == ["loss", "rmse", "val_loss", "val_rmse"]
        for key in want_hist:
            np.testing.assert_allclose(history[key], want_hist[key], rtol=1e-6)
        for got, want in zip(model.optimizer.variables, opt_state, strict=True):
            np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-6)
        assert [set(s) for s in seen[k]] == [set(want_hist)] * 2        # bag callbacks see bag logs
        np.testing.assert_allclose([s["val_rmse"] for s in seen[k]], want_hist["val_rmse"], rtol=1e-6)
    keras.backend.clear_session(free_memory=False)


def test_bags_must_take_the_same_steps():
    assert bagging.parallel_mismatch([32, 32], [8, 8], [8, 8]) is None
    assert "training rows" in bagging.parallel_mismatch([100, 97], [16, 16], [20, 23])
    assert "batch sizes" in bagging.parallel_mismatch([100, 100], [16, 15], [20, 20])
    assert "out-of-bag rows" in bagging.parallel_mismatch([100, 100], [16, 16], [20, 0])


def test_optimisers_coupling_the_bags_are_refused():
    import keras

    models.check_separable(keras.optimizers.Adam(1e-3, clipnorm=1.0))      # per variable: fine
    with pytest.raises(ValueError, match="global_clipnorm"):
        models.check_separable(keras.optimizers.Adam(1e-3, global_clipnorm=1.0))
    members = []
    for _ in range(2):
        m = models.build_ann(4)
        m.compile(optimizer=keras.optimizers.Adam(1e-3, global_clipnorm=1.0), loss="mse")
        members.append(m)
    with pytest.raises(ValueError, match="global_clipnorm"):
        models.stack_bags(members)


def test_flag_reaches_the_config_of_both_entry_points():
    import argparse
    p = argparse.ArgumentParser()
    cli.add_train_flags(p)
    args = p.parse_args(["--data", "d", "--model-dir", "m", "--parallel-bags"])
    assert cli.train_config(args).parallel_bags is True
    assert cli.train_config(p.parse_args(["--data", "d", "--model-dir", "m"])).parallel_bags is False
    targs = task.build_parser().parse_args(["--data", "d", "--parallel-bags"])
    assert cli.train_config(targs, model_dir="m").parallel_bags is True


# ---------------------------------------------------------------- end to end

MODELS = "cnn,ann,ann_ts"   # both Keras families; ann_ts (per-date rows) exercises the fallback
N_BAGS = 2


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from pipelines.cli import main

    root = tmp_path_factory.mktemp("parallel_bags")
    data_dir = str(root / "data")
    fx.write_dataset(data_dir, n_calibration=40, n_test=14, seed=1, max_dates=170)
    out = {}
    for mode in ("sequential", "parallel"):
        model_dir = str(root / mode)
        flags = ["--parallel-bags"] if mode == "parallel" else []
        assert main(["train", "--data", data_dir, "--model-dir", model_dir, "--epochs", "2", "--bags", str(N_BAGS),
                     "--models", MODELS, "--seed", "7", "--quiet"] + flags) == 0
        out[mode] = model_dir
    assert main(["evaluate", "--data", data_dir, "--model-dir", out["parallel"], "--quiet"]) == 0
    return data_dir, out["sequential"], out["parallel"]


def _files(root):
    out = set()
    for d, _, files in os.walk(root):
        rel = os.path.relpath(d, root)
        if rel.split(os.sep)[0] in ("logs", "evaluation"):
            out.add(rel)                 # event file names hold a timestamp and the host
            continue
        out.update(os.path.normpath(os.path.join(rel, f)) for f in files)
    return out


def _config(keras_zip):
    """A saved model's config without `shared_object_id` (a Python id(), different in every process)."""
    def strip(o):
        if isinstance(o, dict):
            return {k: strip(v) for k, v in o.items() if k != "shared_object_id"}
        return [strip(v) for v in o] if isinstance(o, list) else o
    return strip(json.loads(keras_zip.read("config.json")))


@pytest.mark.slow
def test_parallel_run_writes_the_sequential_artefacts(runs):
    import keras

    _, seq, par = runs
    assert {f for f in _files(par) if not f.startswith("evaluation")} == _files(seq)
    manifest = {m: json.load(open(os.path.join(d, "manifest.json"))) for m, d in (("s", seq), ("p", par))}
    records = {m: {r["name"]: r for r in manifest[m]["models"]} for m in manifest}
    assert list(records["p"]) == list(records["s"]) == MODELS.split(",")
    assert records["p"]["cnn"]["parallel_bags"] is True and records["p"]["ann"]["parallel_bags"] is True
    ts_rows = [b["n_rows"] for b in records["p"]["ann_ts"]["bags"]]
    assert records["p"]["ann_ts"]["parallel_bags"] is (len(set(ts_rows)) == 1)
    for name, rec in records["p"].items():
        for got, want in zip(rec["bags"], records["s"][name]["bags"], strict=True):
            for key in ("bag", "n_points", "n_rows", "batch_size", "fill"):
                assert got[key] == want[key], (name, key)
            assert got["path"].replace(par, seq) == want["path"]
            assert got["final_loss"] == pytest.approx(want["final_loss"], rel=1e-5)
        for k in range(N_BAGS):
            rel = os.path.join("bags" if name == "cnn" else os.path.join("models", name), f"bag_{k}.keras")
            a, b = (keras.saving.load_model(os.path.join(d, rel), compile=False) for d in (par, seq))
            for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
                np.testing.assert_allclose(wa, wb, rtol=0, atol=1e-5)
            za, zb = (zipfile.ZipFile(os.path.join(d, rel)) for d in (par, seq))
            assert za.namelist() == zb.namelist()
            assert _config(za) == _config(zb)
            ha, hb = (json.load(open(os.path.join(d, "history", name, f"bag_{k}.json"))) for d in (par, seq))
            assert list(ha) == list(hb) == ["loss", "rmse", "val_loss", "val_rmse"]
            for key in hb:
                assert len(ha[key]) == 2
                np.testing.assert_allclose(ha[key], hb[key], rtol=1e-5)
            assert os.listdir(os.path.join(par, "logs", name, f"bag_{k}", "train"))
            assert os.listdir(os.path.join(par, "logs", name, f"bag_{k}", "validation"))
        pa, pb = (np.load(os.path.join(d, "predictions", f"{name}.npz")) for d in (par, seq))
        assert pa["bags"].shape == (N_BAGS, 14)
        np.testing.assert_allclose(pa["bags"], pb["bags"], rtol=0, atol=1e-3)     # % clay
    assert json.load(open(os.path.join(par, "bags.json"))) == json.load(open(os.path.join(seq, "bags.json")))
    assert json.load(open(os.path.join(par, "train_config.json")))["parallel_bags"] is True


@pytest.mark.slow
def test_evaluate_reads_the_parallel_run(runs):
    _, _, par = runs
    report = json.load(open(os.path.join(par, "evaluation", "report.json")))
    assert set(report["models"]) == set(MODELS.split(","))
    assert report["models"]["cnn"]["source"].startswith("serving ensemble")
    assert report["ensemble_check"]["max_abs_diff_mean"] < 2e-3
    assert all(np.isfinite(r["rmse"]) and r["n"] == 14 for r in report["models"].values())


@pytest.mark.slow
def test_task_entry_point_with_vertex_checkpoints(tmp_path):
    """`python -m trainer.task --parallel-bags` with AIP_CHECKPOINT_DIR (BackupAndRestore of the stacked model)."""
    data_dir = str(tmp_path / "data")
    fx.write_dataset(data_dir, n_calibration=20, n_test=6, seed=2, max_dates=40)
    env = {"AIP_MODEL_DIR": str(tmp_path / "model"), "AIP_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
           "AIP_TENSORBOARD_LOG_DIR": str(tmp_path / "tb")}
    assert task.main(["--data", data_dir, "--models", "cnn", "--epochs", "2", "--bags", "2", "--parallel-bags",
                      "--no-evaluate", "--quiet"], environ=env) == 0
    m = env["AIP_MODEL_DIR"]
    assert json.load(open(os.path.join(m, "manifest.json")))["models"][0]["parallel_bags"] is True
    assert all(os.path.isfile(os.path.join(m, "bags", f"bag_{k}.keras")) for k in range(2))
    assert json.load(open(os.path.join(m, "ensemble", "s2mos_model.json")))["bags"] == 2
    assert os.listdir(os.path.join(env["AIP_TENSORBOARD_LOG_DIR"], "cnn", "bag_1", "train"))
