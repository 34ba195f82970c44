"""Keras callbacks of the trainer: progress lines, TensorBoard scalars, and the per-bag
dispatch that lets bags fitted side by side (`--parallel-bags`) keep their own callbacks."""
from __future__ import annotations

import time

from s2mos_transforms import fileio
from trainer.config import Log


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


LEDGER_FILE = "s2mos_epochs.json"
BACKUP_METADATA = "training_metadata.json"     # Keras' BackupAndRestore: {"epoch": epochs finished, …}


def backup_epochs(backup_dir: str) -> int:
    """Epochs finished by the fit whose Keras backup is in `backup_dir` (0: no backup)."""
    path = fileio.join(backup_dir, BACKUP_METADATA)
    return int(fileio.read_json(path)["epoch"]) if fileio.exists(path) else 0


def ledger_before(backup_dir: str) -> dict | None:
    """The epoch ledger of the epochs the backup in `backup_dir` holds — {"history": {key: [...]},
    "seconds": s, "epochs": n, "from_epoch": 0} — or None when there is no backup to resume, or
    the ledger does not describe exactly its epochs from the first (a backup older than the ledger
    code, or a kill between the backup and the ledger write)."""
    path = fileio.join(backup_dir, LEDGER_FILE)
    epochs = backup_epochs(backup_dir)
    if not epochs or not fileio.exists(path):
        return None
    ledger = fileio.read_json(path)
    return ledger if int(ledger["epochs"]) == epochs and int(ledger.get("from_epoch", 0)) == 0 else None


class EpochLedger:
    """Beside Keras' BackupAndRestore in `backup_dir`: the logs and seconds of every finished
    epoch. BackupAndRestore restores weights and optimizer state but neither the history nor the
    time spent, so a fit resumed in a later session would report only its last epochs; with the
    ledger, `before` (read when the fit starts, `ledger_before`) holds what the interrupted fits
    logged, and the caller prepends it (`resumed_history`). Over a backup that no ledger describes,
    it starts at the backup's epoch (``from_epoch``), so it never claims the epochs it did not see.
    The ledger lives in the backup's folder and goes when BackupAndRestore removes the backup."""

    def __new__(cls, backup_dir: str):
        import keras

        path = fileio.join(backup_dir, LEDGER_FILE)

        class _CB(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                prior = ledger_before(backup_dir)
                start = backup_epochs(backup_dir)
                self.before = prior or {"history": {}, "seconds": 0.0, "epochs": start, "from_epoch": start}
                self.ledger = {**self.before, "history": {k: list(v) for k, v in self.before["history"].items()}}
                self.t = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                now = time.perf_counter()
                self.ledger["seconds"] += now - self.t
                self.t = now
                for key, value in (logs or {}).items():
                    self.ledger["history"].setdefault(key, []).append(float(value))
                self.ledger["epochs"] = epoch + 1
                fileio.write_json(path, self.ledger)
        return _CB()


def resumed_history(before: dict, history: dict) -> dict:
    """The whole history of a fit: the ledger's epochs before the resume (`EpochLedger.before`;
    none for a fit that started afresh or over a backup no ledger describes), then this fit's."""
    return {k: [float(v) for v in before["history"].get(k, [])] + list(vals) for k, vals in history.items()}


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
