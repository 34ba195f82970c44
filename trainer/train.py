"""`s2mos train`: every bag of every selected model, test predictions, the serving ensemble.

Honesty: the normalisation stats, the bags, the RF hyper-parameter CV and everything a model
sees while fitting come from the calibration split only (there is no early stopping; the
out-of-bag 20 % of calibration is evaluated each epoch for the history/TensorBoard only).
The test split is read once, after fitting, to write predictions/<name>.npz for `evaluate`.

Model directory layout (local or gs://):
  train_config.json  manifest.json  stats.json  bags.json
  bags/bag_K.keras                      main CNN bags (the serving ensemble's members)
  ensemble/                             SavedModel + s2mos_model.json + stats.json
  models/<name>/bag_K.keras             other Keras models (ablations, ANN baselines)
  models/<name>/rf_cv.json              RF grid-search table and the selected parameters
  history/<name>/bag_K.json             per-epoch loss/RMSE (train and out-of-bag)
  predictions/<name>.npz                test predictions of every bag (% clay)
  logs/<name>/bag_K/                    TensorBoard (or $AIP_TENSORBOARD_LOG_DIR)

--parallel-bags trains the bags of a Keras model side by side in one stacked model (one
batch per bag per step, the sum of the bags' losses), then saves each bag as above: the same
updates as one after another, in K times fewer (K bags wide) steps (`fit_keras_parallel`).
"""
from __future__ import annotations

import dataclasses
import platform
import time
from typing import Callable

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms import fileio
from trainer import bagging
from trainer.specs import ModelSpec

Log = Callable[[str], None]


@dataclasses.dataclass
class TrainConfig:
    data: str
    model_dir: str
    channels: str = "s2s1"
    use_coords: bool = True
    epochs: int = 100
    bags: int = bagging.N_BAGS
    batch_size: int = 8
    models: str = "all"
    quick_grid: bool = False
    seed: int = 0
    cv_folds: int = 5
    jit_compile: bool = False         # XLA: slower than oneDNN for this CNN on CPU (bench_train.py)
    steps_per_execution: int = 32
    deterministic: bool = True
    save_rf: bool = False
    rf_jobs: int = -1
    checkpoint_dir: str | None = None
    tensorboard_dir: str | None = None
    verbose: int = 1
    rf_grid: object | None = None        # a baselines.RFGrid overriding the paper/quick grid
    parallel_bags: bool = False          # train a Keras model's bags side by side in one model (same maths)


def printer(verbose: int) -> Log:
    def log(msg: str) -> None:
        if verbose:
            print(msg, flush=True)
    return log


def set_determinism(seed: int, deterministic: bool = True) -> None:
    """Same seed + same machine ⇒ same weights (Keras seeds, deterministic TF kernels)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()


def device_summary() -> str:
    import tensorflow as tf
    gpus = tf.config.list_physical_devices("GPU")
    return f"GPU: {', '.join(g.name for g in gpus)}" if gpus else "CPU (no GPU visible to TensorFlow)"


# ---------------------------------------------------------------- inputs per model

@dataclasses.dataclass
class Prepared:
    """Model inputs for one split: (inputs for Keras/RF, point index of rows or None)."""
    x: dict[str, np.ndarray]
    owner: np.ndarray | None   # per_date rows → point index; None when one row per point


def prepare(spec: ModelSpec, split, stats) -> Prepared:
    from trainer import data

    if spec.input == "sequence":
        seq, _ = data.sequence_input(split, stats, spec.channels)
        x = {"sequence": seq}
        if spec.use_coords:
            x["coords"] = data.coords_input(split, stats)
        return Prepared(x, None)
    if spec.input == "composite":
        return Prepared({"features": data.composite_features(split, stats, spec.use_coords)}, None)
    rows, owner = data.per_date_rows(split, stats, spec.use_coords, spec.channels)
    return Prepared({"features": rows}, owner)


def select_rows(prep: Prepared, points: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rows of the given points: the points themselves, or their dates for per_date inputs."""
    if prep.owner is None:
        return {k: v[points] for k, v in prep.x.items()}, np.asarray(points)
    mask = np.isin(prep.owner, points)
    return {k: v[mask] for k, v in prep.x.items()}, prep.owner[mask]


def per_point(pred_rows: np.ndarray, prep: Prepared, n_points: int, fill: float) -> np.ndarray:
    from trainer import data
    if prep.owner is None:
        return pred_rows
    return data.mean_per_point(pred_rows, prep.owner, n_points, fill)


# ---------------------------------------------------------------- Keras fitting

class EpochLog:
    """Compact progress: one line every `every` epochs (Keras' own bar is too chatty in logs)."""

    def __new__(cls, log: Log, prefix: str, epochs: int):
        import keras

        every = max(1, epochs // 10)

        class _CB(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                if (epoch + 1) % every == 0 or epoch + 1 == epochs:
                    logs = logs or {}
                    val = f" oob_rmse {logs['val_rmse']:.4f}" if "val_rmse" in logs else ""
                    log(f"{prefix} epoch {epoch + 1}/{epochs}: rmse {logs.get('rmse', float('nan')):.4f}{val} "
                        f"({time.perf_counter() - self.t0:.1f}s)")
        return _CB()


def tensorboard_callback(log_dir: str):
    """Keras' TensorBoard callback when the tensorboard package is installed (Vertex images);
    otherwise an equivalent epoch-scalar writer on TF's core summary ops, same layout
    (train/ and validation/ runs, `epoch_<metric>` tags), so logs exist either way."""
    import keras
    try:
        import tensorboard  # noqa: F401
        return keras.callbacks.TensorBoard(log_dir, write_graph=False)
    except ImportError:
        pass
    import tensorflow as tf
    from tensorflow.core.framework import summary_pb2

    meta = summary_pb2.SummaryMetadata()
    meta.plugin_data.plugin_name = "scalars"

    class _Scalars(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.writers = {run: tf.summary.create_file_writer(fileio.join(log_dir, run))
                            for run in ("train", "validation")}

        def on_epoch_end(self, epoch, logs=None):
            for key, value in (logs or {}).items():
                run, tag = ("validation", key[4:]) if key.startswith("val_") else ("train", key)
                with self.writers[run].as_default():
                    tf.summary.write(f"epoch_{tag}", tf.constant(float(value), tf.float32), step=epoch,
                                     metadata=meta)

        def on_train_end(self, logs=None):
            for w in self.writers.values():
                w.close()

    return _Scalars()


def build_keras(spec: ModelSpec, n_in: int):
    from trainer import models
    if spec.family == "cnn":
        return models.build_cnn(n_in, bands.MAX_DATES, spec.use_coords, name=spec.name)
    return models.build_ann(n_in, name=spec.name)


def seeded_bag(spec: ModelSpec, x_tr: dict, y_tr: np.ndarray, x_val: dict | None, y_val: np.ndarray | None,
               cfg: TrainConfig, seed: int, batch_size: int):
    """One bag's compiled model and (train, out-of-bag or None) datasets, built right after
    `set_random_seed(seed)`: the weights, dropout seeds and shuffling of bag `seed`, whether it
    is then fitted alone (`fit_keras`) or beside the others (`fit_keras_parallel`)."""
    import keras
    from trainer import data, models

    keras.utils.set_random_seed(seed)
    n_in = x_tr["sequence"].shape[-1] if spec.family == "cnn" else x_tr["features"].shape[-1]
    model = models.compile_model(build_keras(spec, n_in), cfg.jit_compile, cfg.steps_per_execution)
    train_ds = data.make_tf_dataset(x_tr, y_tr, batch_size, shuffle=True, seed=seed)
    val_ds = (data.make_tf_dataset(x_val, y_val, 512) if x_val is not None and len(y_val) else None)
    return model, train_ds, val_ds


def fit_keras(spec: ModelSpec, x_tr: dict, y_tr: np.ndarray, x_val: dict | None, y_val: np.ndarray | None,
              cfg: TrainConfig, seed: int, batch_size: int, callbacks: list):
    """Build (seeded), compile and fit one bag; returns (model, history dict)."""
    model, train_ds, val_ds = seeded_bag(spec, x_tr, y_tr, x_val, y_val, cfg, seed, batch_size)
    hist = model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, verbose=0, callbacks=callbacks,
                     shuffle=False)   # the tf.data pipeline reshuffles each epoch, seeded
    return model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def predict_keras(model, x: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
    """Inference-mode outputs (normalised clay), shape (N,)."""
    n = len(next(iter(x.values())))
    if n == 0:
        return np.zeros(0, np.float32)
    import keras
    outs = [keras.ops.convert_to_numpy(model({k: v[s:s + batch_size] for k, v in x.items()}, training=False))
            .reshape(-1) for s in range(0, n, batch_size)]
    return np.concatenate(outs)


def bag_logs(logs: dict | None, k: int) -> dict | None:
    """Bag k's entries of the stacked model's logs, under the names a lone bag logs them."""
    from trainer.models import bag_key
    if logs is None:
        return None
    prefix = bag_key(k, "")
    out = {}
    for key, value in logs.items():
        if key.startswith(prefix):
            out[key[len(prefix):]] = value
        elif key.startswith("val_" + prefix):
            out["val_" + key[len("val_" + prefix):]] = value
    return out


def per_bag_callbacks(bag_callbacks: list[list]):
    """One Keras callback running each bag's own callbacks with that bag's logs.

    Batch-level hooks are forwarded only when some bag callback uses them (a forwarding batch
    hook would make Keras synchronise the logs every call).
    """
    import keras

    base = keras.callbacks.Callback
    hooks = ["on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_test_begin",
             "on_test_end"]
    for hook in ("on_train_batch_begin", "on_train_batch_end", "on_test_batch_begin", "on_test_batch_end"):
        if any(not getattr(getattr(cb, hook), "_is_default", False) for cbs in bag_callbacks for cb in cbs):
            hooks.append(hook)

    def forward(hook):
        indexed = "epoch" in hook or "batch" in hook       # (epoch|batch, logs) vs (logs)

        def method(self, *args, logs=None):
            if len(args) > int(indexed):          # Keras passes logs positionally
                *args, logs = args
            for k, cbs in enumerate(bag_callbacks):
                for cb in cbs:
                    getattr(cb, hook)(*args, logs=bag_logs(logs, k))
        method.__name__ = hook
        return method

    def set_model(self, model):
        base.set_model(self, model)
        for cbs in bag_callbacks:
            for cb in cbs:
                cb.set_model(model)

    def set_params(self, params):
        base.set_params(self, params)
        for cbs in bag_callbacks:
            for cb in cbs:
                cb.set_params(params)

    ns = {hook: forward(hook) for hook in hooks}
    ns.update(set_model=set_model, set_params=set_params)
    return type("PerBagCallbacks", (base,), ns)()


def fit_keras_parallel(spec: ModelSpec, bag_data: list[tuple], cfg: TrainConfig, seeds: list[int],
                       batch_size: int, bag_callbacks: list[list], callbacks: list = ()):
    """Fit K bags side by side in one stacked Keras model; returns [(model, history dict)] per bag.

    `bag_data[k]` = (x_tr, y_tr, x_val, y_val). Bag k is built, compiled and given its data
    pipeline right after `set_random_seed(seeds[k])`, exactly as `fit_keras` does, so it starts
    from the same weights, dropout seeds and shuffling. Each step takes one batch of every bag
    (`data.zip_bags`) and minimises the sum of the bags' losses (each its MSE + its own L2
    terms): bag k's gradient is its own loss's gradient and Adam acts element-wise, so each
    bag gets exactly the updates it would get alone (`models.check_separable` refuses global
    gradient clipping). The bags must take the same steps (`bagging.parallel_mismatch`).
    `bag_callbacks[k]` see bag k's logs under the usual names; `callbacks` see the stacked model.
    """
    from trainer import data, models

    n_val = [0 if x_val is None else len(y_val) for _, _, x_val, y_val in bag_data]
    why = bagging.parallel_mismatch([len(y) for _, y, _, _ in bag_data], [batch_size] * len(bag_data), n_val)
    if why:
        raise ValueError(f"--parallel-bags: {why}")
    members, train_sets, val_sets = zip(*(seeded_bag(spec, *bag, cfg, seed, batch_size)
                                          for bag, seed in zip(bag_data, seeds)))
    stacked = models.stack_bags(members, cfg.jit_compile, cfg.steps_per_execution)
    hist = stacked.fit(data.zip_bags(train_sets), validation_data=data.zip_bags(val_sets) if n_val[0] else None,
                       epochs=cfg.epochs, verbose=0, shuffle=False,
                       callbacks=[per_bag_callbacks(bag_callbacks), *callbacks])
    models.unstack_optimizer_state(stacked)
    out = []
    for k, model in enumerate(members):
        history = bag_logs(hist.history, k)
        out.append((model, {key: [float(v) for v in vals] for key, vals in history.items()}))
    return out


def keras_bag_path(model_dir: str, spec: ModelSpec, k: int) -> str:
    if spec.name == "cnn":
        return fileio.join(model_dir, "bags", f"bag_{k}.keras")
    return fileio.join(model_dir, "models", spec.name, f"bag_{k}.keras")


def keras_bag_inputs(spec: ModelSpec, p_cal: Prepared, y_cal: np.ndarray, bag: np.ndarray, cfg: TrainConfig):
    """(x_tr, y_tr, x_val, y_val, batch size) of one bag: its rows, and its out-of-bag rows."""
    from trainer import baselines

    x_tr, own_tr = select_rows(p_cal, bag)
    x_val, own_val = select_rows(p_cal, bagging.out_of_bag(len(y_cal), bag))
    y_tr = y_cal[own_tr]
    batch = cfg.batch_size
    if spec.input == "per_date":
        batch = baselines.per_date_batch_size(cfg.batch_size, len(y_tr), len(bag))
    return x_tr, y_tr, x_val, y_cal[own_val], batch


def bag_callbacks(spec: ModelSpec, k: int, n_bags: int, cfg: TrainConfig, log: Log) -> list:
    """TensorBoard logs and progress lines of bag k."""
    tb_dir = fileio.join(cfg.tensorboard_dir or fileio.join(cfg.model_dir, "logs"), spec.name, f"bag_{k}")
    return [tensorboard_callback(tb_dir), EpochLog(log, f"[{spec.name}] bag {k + 1}/{n_bags}", cfg.epochs)]


def fit_bags_parallel(spec: ModelSpec, p_cal: Prepared, y_cal: np.ndarray, bags: list[np.ndarray],
                      cfg: TrainConfig, log: Log) -> list[tuple] | None:
    """--parallel-bags: every bag of a Keras model in one stacked fit → [(model, history, batch, rows)].

    None (logged) when the bags do not take the same steps (`bagging.parallel_mismatch`: per-date
    inputs whose bags hold different numbers of dates); they are then trained one after another.
    """
    import keras

    inputs = [keras_bag_inputs(spec, p_cal, y_cal, bag, cfg) for bag in bags]
    why = bagging.parallel_mismatch([len(i[1]) for i in inputs], [i[4] for i in inputs],
                                    [len(i[3]) for i in inputs])
    if why:
        log(f"[{spec.name}] --parallel-bags: {why}; training them one after another")
        return None
    batch = inputs[0][4]
    callbacks = []
    if cfg.checkpoint_dir:
        callbacks.append(keras.callbacks.BackupAndRestore(
            fileio.join(cfg.checkpoint_dir, spec.name, "parallel_bags")))
    log(f"[{spec.name}] --parallel-bags: {len(bags)} bags side by side, batch {batch} each")
    fitted = fit_keras_parallel(
        spec, [(x_tr, y_tr, x_val if len(y_val) else None, y_val) for x_tr, y_tr, x_val, y_val, _ in inputs],
        cfg, [bagging.bag_seed(cfg.seed, k) for k in range(len(bags))], batch,
        [bag_callbacks(spec, k, len(bags), cfg, log) for k in range(len(bags))], callbacks)
    return [(model, history, batch, len(i[1])) for (model, history), i in zip(fitted, inputs)]


# ---------------------------------------------------------------- one model, every bag

def train_model(spec: ModelSpec, cal, test, stats, bags: list[np.ndarray], cfg: TrainConfig, log: Log) -> dict:
    """Fit every bag of `spec`, save models/histories and the test predictions (% clay)."""
    import keras
    from trainer import baselines, data

    t0 = time.perf_counter()
    y_cal = data.target(cal, stats)
    p_cal, p_test = prepare(spec, cal, stats), prepare(spec, test, stats)
    record: dict = {"name": spec.name, "family": spec.family, "input": spec.input, "channels": spec.channels,
                    "use_coords": spec.use_coords, "description": spec.description, "bags": []}
    test_preds = []
    log(f"[{spec.name}] {spec.description}: {len(cal)} calibration points, {len(bags)} bags")

    rf_params = None
    if spec.family == "rf":
        grid = cfg.rf_grid or (baselines.QUICK_GRID if cfg.quick_grid else baselines.PAPER_GRID)
        x_all = p_cal.x["features"]
        y_rows = y_cal if p_cal.owner is None else y_cal[p_cal.owner]
        log(f"[{spec.name}] {cfg.cv_folds}-fold CV grid on calibration ({len(x_all)} rows, {x_all.shape[1]} features)")
        rf_params, table = baselines.select_rf(x_all, y_rows, grid, cfg.cv_folds, cfg.seed, p_cal.owner,
                                               cfg.rf_jobs, log)
        log(f"[{spec.name}] selected {rf_params}")
        record["rf_params"] = rf_params
        fileio.write_json(fileio.join(cfg.model_dir, "models", spec.name, "rf_cv.json"),
                          {"grid": dataclasses.asdict(grid), "folds": cfg.cv_folds, "selected": rf_params,
                           "table": table})

    stacked, stacked_seconds = None, 0.0
    if spec.keras and cfg.parallel_bags:
        ts = time.perf_counter()
        stacked = fit_bags_parallel(spec, p_cal, y_cal, bags, cfg, log)
        stacked_seconds = time.perf_counter() - ts
        record["parallel_bags"] = stacked is not None

    for k, bag in enumerate(bags):
        seed = bagging.bag_seed(cfg.seed, k)
        fill = float(np.mean(y_cal[bag]))
        tb = time.perf_counter()
        if spec.family == "rf":
            x_tr, own_tr = select_rows(p_cal, bag)
            y_tr = y_cal[own_tr]
            rf = baselines.fit_rf(x_tr["features"], y_tr, rf_params, seed, cfg.rf_jobs)
            rows = rf.predict(p_test.x["features"]) if len(p_test.x["features"]) else np.zeros(0)
            if cfg.save_rf:
                import io
                import joblib
                buf = io.BytesIO()
                joblib.dump(rf, buf, compress=3)
                fileio.write_bytes(fileio.join(cfg.model_dir, "models", spec.name, f"bag_{k}.joblib"), buf.getvalue())
            bag_rec = {"bag": k, "n_points": int(len(bag)), "n_rows": int(len(y_tr))}
        else:
            if stacked is not None:
                model, history, batch, n_rows = stacked[k]
            else:
                x_tr, y_tr, x_val, y_val, batch = keras_bag_inputs(spec, p_cal, y_cal, bag, cfg)
                callbacks = bag_callbacks(spec, k, len(bags), cfg, log)
                if cfg.checkpoint_dir:
                    callbacks.append(keras.callbacks.BackupAndRestore(
                        fileio.join(cfg.checkpoint_dir, spec.name, f"bag_{k}")))
                model, history = fit_keras(spec, x_tr, y_tr, x_val, y_val, cfg, seed, batch, callbacks)
                n_rows = len(y_tr)
            path = keras_bag_path(cfg.model_dir, spec, k)
            fileio.save_keras(model, path)
            fileio.write_json(fileio.join(cfg.model_dir, "history", spec.name, f"bag_{k}.json"), history)
            rows = predict_keras(model, p_test.x)
            bag_rec = {"bag": k, "n_points": int(len(bag)), "n_rows": int(n_rows), "batch_size": batch,
                       "path": path, "final_loss": history["loss"][-1] if history.get("loss") else None}
            if stacked is None:
                keras.backend.clear_session(free_memory=False)
            else:
                bag_rec["parallel_fit_seconds"] = round(stacked_seconds, 2)   # the joint fit of every bag
                tb -= stacked_seconds / len(bags)                     # this bag's share of it
        z = per_point(np.asarray(rows, np.float64), p_test, len(test), fill)
        test_preds.append(data.clay_from_target(z, stats))
        bag_rec["fill"] = fill   # normalised prediction of a test point without any row (per_date inputs)
        bag_rec["seconds"] = round(time.perf_counter() - tb, 2)
        record["bags"].append(bag_rec)
        log(f"[{spec.name}] bag {k + 1}/{len(bags)} done in {bag_rec['seconds']:.1f}s")

    if stacked is not None:
        keras.backend.clear_session(free_memory=False)
    preds = np.stack(test_preds).astype(np.float32)
    mean, std = bagging.combine(preds)
    fileio.save_npz(fileio.join(cfg.model_dir, "predictions", f"{spec.name}.npz"),
                    point_id=test.point_id.astype(str), observed=test.clay.astype(np.float32),
                    bags=preds, mean=mean.astype(np.float32), std=std.astype(np.float32))
    record["seconds"] = round(time.perf_counter() - t0, 2)
    return record


# ---------------------------------------------------------------- the run

def has_paired_dates(split) -> bool:
    return any(len(s) for s in split.sequences.get("s2s1", []))


def train(cfg: TrainConfig, log: Log | None = None) -> dict:
    """The whole `s2mos train` run; returns the manifest (also written to manifest.json)."""
    import keras
    import tensorflow as tf
    from trainer import data, ensemble, specs

    log = log or printer(cfg.verbose)
    t_run = time.perf_counter()
    if cfg.channels not in data.CHANNEL_SETS:
        from s2mos_transforms.errors import UserError
        raise UserError(f"--channels must be one of {sorted(data.CHANNEL_SETS)}, got {cfg.channels!r}")
    set_determinism(cfg.seed, cfg.deterministic)
    log(f"trainer: {device_summary()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    chosen = specs.select(cfg.models, cfg.channels, cfg.use_coords, log)

    cal = data.read_split(cfg.data, "calibration")
    stats = data.load_stats(cfg.data, cal, log)       # calibration only
    test = data.read_split(cfg.data, "test")          # predicted after fitting, never fitted on
    log(f"data: {len(cal)} calibration, {len(test)} test points from {cfg.data}")
    if not has_paired_dates(cal):
        needs_s1 = [s.name for s in chosen if s.channels == "s2s1" and s.input != "composite"]
        if any(s.name == "cnn" for s in chosen if s.name in needs_s1):
            from s2mos_transforms.errors import UserError
            raise UserError("the dataset has no S1-paired dates: train with --channels s2")
        if needs_s1:
            log(f"no S1-paired dates in the dataset: skipping {', '.join(needs_s1)}")
        chosen = [s for s in chosen if s.name not in needs_s1]

    fileio.makedirs(cfg.model_dir)
    stats.save(cfg.model_dir)
    bags = bagging.draw_bags(len(cal), cfg.bags, bagging.BAG_FRACTION, cfg.seed)
    fileio.write_json(fileio.join(cfg.model_dir, "bags.json"),
                      {"seed": cfg.seed, "fraction": bagging.BAG_FRACTION,
                       "bags": [cal.point_id[b].tolist() for b in bags]})
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "rf_grid"}
    if cfg.rf_grid is not None:
        config["rf_grid"] = dataclasses.asdict(cfg.rf_grid)
    config.update(models_trained=[s.name for s in chosen], python=platform.python_version(),
                  tensorflow=tf.__version__, keras=keras.__version__, device=device_summary())
    fileio.write_json(fileio.join(cfg.model_dir, "train_config.json"), config)

    records = []
    for spec in chosen:
        records.append(train_model(spec, cal, test, stats, bags, cfg, log))
        if spec.name == "cnn":
            t0 = time.perf_counter()
            feature, names = data.CHANNEL_SETS[spec.channels]
            members = [fileio.load_keras(keras_bag_path(cfg.model_dir, spec, k)) for k in range(len(bags))]
            path = fileio.join(cfg.model_dir, "ensemble")
            ensemble.export(path, members, stats, names, feature, spec.use_coords)
            log(f"[cnn] serving ensemble exported to {path} ({time.perf_counter() - t0:.1f}s)")

    manifest = {"models": records, "n_calibration": len(cal), "n_test": len(test), "bags": len(bags),
                "ensemble": "ensemble" if any(s.name == "cnn" for s in chosen) else None,
                "seconds": round(time.perf_counter() - t_run, 2), "config": config}
    fileio.write_json(fileio.join(cfg.model_dir, "manifest.json"), manifest)
    log(f"trained {len(records)} models in {manifest['seconds']:.1f}s → {cfg.model_dir}")
    return manifest


# ---------------------------------------------------------------- CLI (s2mos train)

def configure(parser) -> None:
    from trainer import cli
    cli.add_train_flags(parser)


def run(args, extra) -> int:
    from trainer import cli
    train(cli.train_config(args))
    return 0
