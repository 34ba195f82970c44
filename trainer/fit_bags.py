"""One model, every bag: fit (RF with its CV grid, or Keras alone / side by side), save the bag
models and histories, and predict the test split once, after fitting (predictions/<name>.npz).

Each bag also predicts the calibration split (``cal_bags`` in the same file): the points it
did not train on give the out-of-bag residuals the conformal intervals are calibrated on
(`trainer.intervals`); the record carries the fitted interval parameters.

Quantile forests (family ``qrf``, `trainer.qrf`) train like the RF: the same CV grid picks
mtry / nodesize / trees by the RMSE of the forest's mean (the forest is the same; only the
read-out differs), and when an RF on identical inputs (same features, targets, grid, folds and
seed) was selected earlier in the same run its CV table is reused rather than recomputed
(rf_cv.json says ``reused_from``). A bag predicts the conditional median, and its native 5 %
and 95 % quantiles are saved beside the bags (``q05``/``q95``, ``cal_q05``/``cal_q95``)."""
from __future__ import annotations

import dataclasses
import hashlib
import time

import numpy as np

from s2mos_transforms import fileio
from trainer import bagging, intervals, model_dir
from trainer.callbacks import (EpochLedger, EpochLog, backup_epochs, bag_logs, ledger_before, resumed_history,
                               tensorboard_callback)
from trainer.config import Log, TrainConfig
from trainer.fit import fit_keras, fit_keras_parallel, predict_keras
from trainer.inputs import Prepared, per_point, prepare, select_rows
from trainer.specs import ModelSpec


def keras_bag_path(root: str, spec: ModelSpec, k: int) -> str:
    """Bag k of a Keras model (`model_dir.keras_bag_path`: bags/ for the main CNN, else models/NAME/)."""
    return model_dir.keras_bag_path(root, spec.name, k)


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
    callbacks, ledger = [], None
    if cfg.checkpoint_dir:
        backup = fileio.join(cfg.checkpoint_dir, spec.name, "parallel_bags")
        ledger = EpochLedger(backup)
        callbacks += [keras.callbacks.BackupAndRestore(backup), ledger]
    log(f"[{spec.name}] --parallel-bags: {len(bags)} bags side by side, batch {batch} each")
    fitted = fit_keras_parallel(
        spec, [(x_tr, y_tr, x_val if len(y_val) else None, y_val) for x_tr, y_tr, x_val, y_val, _ in inputs],
        cfg, [bagging.bag_seed(cfg.seed, k) for k in range(len(bags))], batch,
        [bag_callbacks(spec, k, len(bags), cfg, log) for k in range(len(bags))], callbacks)
    out = []
    for k, ((model, history), i) in enumerate(zip(fitted, inputs)):
        if ledger is not None:
            history = resumed_history({"history": bag_logs(ledger.before["history"], k)}, history)
        out.append((model, history, batch, len(i[1])))
    return out


def checkpoint_epochs(spec: ModelSpec, n_bags: int, cfg: TrainConfig) -> dict[str, int]:
    """Epochs an interrupted fit of `spec` already finished, per backup ({"parallel_bags": 37} or
    {"bag_2": 12}): read from the metadata Keras' BackupAndRestore keeps in cfg.checkpoint_dir
    until a fit ends. The fit resumes there with the saved weights and optimizer state; its data
    order from then on is not the uninterrupted run's (the seeded tf.data shuffle starts again at
    its first epoch order), so a resumed model is trained as long but is not bit-identical."""
    if not (spec.keras and cfg.checkpoint_dir):
        return {}
    done = {}
    for backup in ("parallel_bags", *(f"bag_{k}" for k in range(n_bags))):
        epochs = backup_epochs(fileio.join(cfg.checkpoint_dir, spec.name, backup))
        if epochs:
            done[backup] = epochs
    return done


def resume_bookkeeping(spec: ModelSpec, resumed: dict[str, int], cfg: TrainConfig) -> dict:
    """What the record says of a resumed fit: the seconds its earlier sessions trained
    (`callbacks.EpochLedger`, beside each backup) and whether the ledgers cover every epoch before
    the resume — when not (a backup taken before the ledger existed), the history holds only
    the last epochs and the seconds only this session's, and the record says so."""
    ledgers = [ledger_before(fileio.join(cfg.checkpoint_dir, spec.name, backup)) for backup in resumed]
    return {"seconds_before_resume": round(sum(float(x["seconds"]) for x in ledgers if x), 2),
            "history_complete": all(ledgers)}


TREE_FAMILIES: tuple[str, ...] = ("rf", "qrf")
# CV selections of this process: (model dir, hash of inputs, targets, grid, folds, seed) → (params, table, name)
_CV_DONE: dict[str, tuple[dict, list, str]] = {}


def _cv_key(x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, grid, folds: int, seed: int) -> str:
    h = hashlib.sha256()
    for a in (x, y) + ((groups,) if groups is not None else ()):
        a = np.ascontiguousarray(a)
        h.update(str((a.dtype, a.shape)).encode())
        h.update(a.tobytes())
    h.update(repr((dataclasses.asdict(grid), folds, seed)).encode())
    return h.hexdigest()


def select_rf_params(spec: ModelSpec, p_cal: Prepared, y_cal: np.ndarray, cfg: TrainConfig, log: Log) -> dict:
    """The RF grid search by CV on calibration (points never straddle folds); writes rf_cv.json.

    ``min_node_size`` in the table is R randomForest's ``nodesize`` (`baselines.node_params`)."""
    from trainer import baselines

    grid = cfg.rf_grid or (baselines.QUICK_GRID if cfg.quick_grid else baselines.PAPER_GRID)
    x_all = p_cal.x["features"]
    y_rows = y_cal if p_cal.owner is None else y_cal[p_cal.owner]
    inputs = _cv_key(x_all, y_rows, p_cal.owner, grid, cfg.cv_folds, cfg.seed)
    key = cfg.model_dir + ":" + inputs                                                  # one run
    doc: dict = {"grid": dataclasses.asdict(grid), "folds": cfg.cv_folds,
                 "min_node_size": "R randomForest nodesize: a node with <= nodesize samples is not split "
                                  "(sklearn min_samples_split = nodesize + 1, min_samples_leaf = 1)"}
    if key in _CV_DONE:
        rf_params, table, source = _CV_DONE[key]
        log(f"[{spec.name}] same inputs and grid as {source}: its CV selection {rf_params} is reused")
        doc["reused_from"] = source
    else:
        log(f"[{spec.name}] {cfg.cv_folds}-fold CV grid on calibration ({len(x_all)} rows, "
            f"{x_all.shape[1]} features)")
        partial, done = _partial_cv(cfg, spec, inputs)
        if done:
            log(f"[{spec.name}] resuming the CV grid: {len(done)} cell(s) scored before ({partial})")

        def keep(cell: str, scores: dict) -> None:
            done[cell] = scores
            fileio.write_json(partial, {"key": inputs, "cells": {c: {str(t): v for t, v in s.items()}
                                                              for c, s in done.items()}})
        rf_params, table = baselines.select_rf(x_all, y_rows, grid, cfg.cv_folds, cfg.seed, p_cal.owner,
                                               cfg.rf_jobs, log, done=dict(done), on_cell=keep)
        if fileio.exists(partial):
            fileio.remove(partial)
        _CV_DONE[key] = (rf_params, table, spec.name)
        log(f"[{spec.name}] selected {rf_params}")
    fileio.write_json(fileio.join(cfg.model_dir, model_dir.MODELS_DIR, spec.name, "rf_cv.json"),
                      {**doc, "selected": rf_params, "table": table})
    return dict(rf_params)


def _partial_cv(cfg: TrainConfig, spec: ModelSpec, key: str) -> tuple[str, dict]:
    """(path, cells scored) of an interrupted CV grid of the same inputs, grid, folds and seed
    (`key`): each cell's fold RMSEs are written as soon as it is scored, so a killed run loses at
    most one cell; the selection is the same as an uninterrupted search's."""
    path = fileio.join(cfg.model_dir, model_dir.MODELS_DIR, spec.name, "rf_cv.partial.json")
    if not fileio.exists(path):
        return path, {}
    doc = fileio.read_json(path)
    if doc.get("key") != key:
        return path, {}
    return path, {c: {int(t): v for t, v in s.items()} for c, s in doc["cells"].items()}


def _tree_rows(model, x: np.ndarray, quantile: bool) -> np.ndarray:
    """Row predictions of a fitted forest: (1, R) for an RF; (3, R) = q05, median, q95 for a QRF."""
    from trainer import qrf

    if not len(x):
        return np.zeros((3 if quantile else 1, 0))
    return model.quantiles(x, qrf.QUANTILES) if quantile else model.predict(x)[None]


def fit_rf_bag(spec: ModelSpec, p_cal: Prepared, p_test: Prepared, y_cal: np.ndarray, bag: np.ndarray,
               k: int, rf_params: dict, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Fit RF (or quantile RF) bag k; its test-row and calibration-row predictions and its manifest
    record (saved with --save-rf). Rows are (1, R) for an RF and (3, R) — q05, median, q95 — for
    a quantile forest (`trainer.qrf.QUANTILES`)."""
    from trainer import baselines, qrf

    x_tr, own_tr = select_rows(p_cal, bag)
    y_tr = y_cal[own_tr]
    fit = qrf.fit_qrf if spec.family == "qrf" else baselines.fit_rf
    rf = fit(x_tr["features"], y_tr, rf_params, bagging.bag_seed(cfg.seed, k), cfg.rf_jobs)
    rows = _tree_rows(rf, p_test.x["features"], spec.family == "qrf")
    cal_rows = _tree_rows(rf, p_cal.x["features"], spec.family == "qrf")
    if cfg.save_rf:
        import io
        import joblib
        buf = io.BytesIO()
        joblib.dump(rf, buf, compress=3)
        fileio.write_bytes(model_dir.rf_bag_path(cfg.model_dir, spec.name, k), buf.getvalue())
    return rows, cal_rows, {"bag": k, "n_points": int(len(bag)), "n_rows": int(len(y_tr))}


def train_model(spec: ModelSpec, cal, test, stats, bags: list[np.ndarray], cfg: TrainConfig, log: Log) -> dict:
    """Fit every bag of `spec`, save models/histories and the test predictions (% clay)."""
    import keras
    from trainer import data

    t0 = time.perf_counter()
    y_cal = data.target(cal, stats)
    p_cal, p_test = prepare(spec, cal, stats), prepare(spec, test, stats)
    record: dict = {"name": spec.name, "family": spec.family, "input": spec.input, "channels": spec.channels,
                    "use_coords": spec.use_coords, "description": spec.description, "bags": []}
    test_preds, cal_preds = [], []
    log(f"[{spec.name}] {spec.description}: {len(cal)} calibration points, {len(bags)} bags")
    resumed = checkpoint_epochs(spec, len(bags), cfg)
    if resumed:
        record["resumed_from_epoch"] = resumed
        record.update(resume_bookkeeping(spec, resumed, cfg))
        log(f"[{spec.name}] resuming an interrupted fit from its checkpoint: "
            + ", ".join(f"{k} after epoch {e}" for k, e in resumed.items()))

    rf_params = None
    quantiles: dict[str, list] = {"q05": [], "q95": [], "cal_q05": [], "cal_q95": []}
    if spec.family in TREE_FAMILIES:
        rf_params = record["rf_params"] = select_rf_params(spec, p_cal, y_cal, cfg, log)

    stacked, stacked_seconds = None, 0.0
    if spec.keras and cfg.parallel_bags:
        ts = time.perf_counter()
        stacked = fit_bags_parallel(spec, p_cal, y_cal, bags, cfg, log)
        stacked_seconds = time.perf_counter() - ts
        record["parallel_bags"] = stacked is not None

    for k, bag in enumerate(bags):
        fill = float(np.mean(y_cal[bag]))
        tb = time.perf_counter()
        if spec.family in TREE_FAMILIES:
            rows, cal_rows, bag_rec = fit_rf_bag(spec, p_cal, p_test, y_cal, bag, k, rf_params, cfg)
            if spec.family == "qrf":        # native quantiles, in % clay (the target scaling is monotone)
                for name, r, p, n in (("q05", rows[0], p_test, len(test)), ("q95", rows[2], p_test, len(test)),
                                      ("cal_q05", cal_rows[0], p_cal, len(cal)),
                                      ("cal_q95", cal_rows[2], p_cal, len(cal))):
                    quantiles[name].append(data.clay_from_target(per_point(r, p, n, fill), stats))
                rows, cal_rows = rows[1], cal_rows[1]
            else:
                rows, cal_rows = rows[0], cal_rows[0]
        else:
            if stacked is not None:
                model, history, batch, n_rows = stacked[k]
            else:
                x_tr, y_tr, x_val, y_val, batch = keras_bag_inputs(spec, p_cal, y_cal, bag, cfg)
                callbacks, ledger = bag_callbacks(spec, k, len(bags), cfg, log), None
                if cfg.checkpoint_dir:
                    backup = fileio.join(cfg.checkpoint_dir, spec.name, f"bag_{k}")
                    ledger = EpochLedger(backup)
                    callbacks += [keras.callbacks.BackupAndRestore(backup), ledger]
                model, history = fit_keras(spec, x_tr, y_tr, x_val, y_val, cfg, bagging.bag_seed(cfg.seed, k),
                                           batch, callbacks)
                if ledger is not None:
                    history = resumed_history(ledger.before, history)
                n_rows = len(y_tr)
            path = keras_bag_path(cfg.model_dir, spec, k)
            fileio.save_keras(model, path)
            fileio.write_json(fileio.join(cfg.model_dir, "history", spec.name, f"bag_{k}.json"), history)
            rows = predict_keras(model, p_test.x)
            cal_rows = predict_keras(model, p_cal.x)
            bag_rec = {"bag": k, "n_points": int(len(bag)), "n_rows": int(n_rows), "batch_size": batch,
                       "path": path, "final_loss": history["loss"][-1] if history.get("loss") else None}
            if stacked is None:
                keras.backend.clear_session(free_memory=False)
            else:
                bag_rec["parallel_fit_seconds"] = round(stacked_seconds, 2)   # the joint fit of every bag
                tb -= stacked_seconds / len(bags)                     # this bag's share of it
        z = per_point(np.asarray(rows, np.float64), p_test, len(test), fill)
        test_preds.append(data.clay_from_target(z, stats))
        z_cal = per_point(np.asarray(cal_rows, np.float64), p_cal, len(cal), fill)
        cal_preds.append(data.clay_from_target(z_cal, stats))
        bag_rec["fill"] = fill   # normalised prediction of a test point without any row (per_date inputs)
        bag_rec["seconds"] = round(time.perf_counter() - tb, 2)
        record["bags"].append(bag_rec)
        log(f"[{spec.name}] bag {k + 1}/{len(bags)} done in {bag_rec['seconds']:.1f}s")

    if stacked is not None:
        keras.backend.clear_session(free_memory=False)
    preds = np.stack(test_preds).astype(np.float32)
    mean, std = bagging.combine(preds)
    cal_stack = np.stack(cal_preds).astype(np.float32)
    fileio.save_npz(model_dir.predictions_path(cfg.model_dir, spec.name),
                    point_id=test.point_id.astype(str), observed=test.clay.astype(np.float32),
                    bags=preds, mean=mean.astype(np.float32), std=std.astype(np.float32),
                    cal_point_id=cal.point_id.astype(str), cal_observed=cal.clay.astype(np.float32),
                    cal_bags=cal_stack,
                    **{k: np.stack(v).astype(np.float32) for k, v in quantiles.items() if v})
    try:
        record["intervals"] = intervals.fit(cal.clay, cal_stack, bags, scale_by_spread=spec.keras)
    except ValueError as err:       # too few out-of-bag points (tiny data, one bag)
        log(f"[{spec.name}] no prediction intervals: {err}")
    record["seconds"] = round(time.perf_counter() - t0 + record.get("seconds_before_resume", 0.0), 2)
    return record
