"""`s2mos train`: every bag of every selected model, test predictions, the serving ensemble.

Honesty: the normalisation stats, the bags, the RF hyper-parameter CV and everything a model
sees while fitting come from the calibration split only (there is no early stopping; the
out-of-bag 20 % of calibration is evaluated each epoch for the history/TensorBoard only).
The test split is read once, after fitting, to write predictions/<name>.npz for `evaluate`.

Model directory layout (local or gs://; the parts map inference reads are defined once in
`trainer.model_dir`):
  train_config.json  manifest.json  stats.json  bags.json
  bags/bag_K.keras                      main CNN bags (the serving ensemble's members)
  ensemble/                             SavedModel + s2mos_model.json + stats.json
  models/<name>/bag_K.keras             other Keras models (ablations, ANN baselines)
  models/<name>/rf_cv.json              RF grid-search table and the selected parameters
  history/<name>/bag_K.json             per-epoch loss/RMSE (train and out-of-bag)
  predictions/<name>.npz                test predictions of every bag (% clay)
  logs/<name>/bag_K/                    TensorBoard (or $AIP_TENSORBOARD_LOG_DIR)

The dataset's extraction settings (DATA/summary.json "thresholds", `trainer.extraction`) go
into train_config.json, the manifest and ensemble/s2mos_model.json ("extraction"), so the map
is made with the settings the model learnt from.

Modules: `trainer.config` (TrainConfig), `trainer.inputs` (each model's inputs),
`trainer.fit_bags` (one model, every bag), `trainer.fit` (Keras fitting, alone or
--parallel-bags side by side: the same updates as one after another in K times fewer steps),
`trainer.callbacks`.
"""
from __future__ import annotations

import dataclasses
import platform
import time

from s2mos_transforms import fileio
from trainer import bagging, model_dir
from trainer.config import Log, TrainConfig, printer
from trainer.fit_bags import keras_bag_path, train_model

__all__ = ["TrainConfig", "printer", "train", "set_determinism", "device_summary", "has_paired_dates"]


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


def has_paired_dates(split) -> bool:
    return any(len(s) for s in split.sequences.get("s2s1", []))


def run_config(cfg: TrainConfig, chosen: list, extraction) -> dict:
    """train_config.json: the flags, what was trained, the software, the device, the dataset's
    extraction settings (and where they came from)."""
    import keras
    import tensorflow as tf

    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "rf_grid"}
    if cfg.rf_grid is not None:
        config["rf_grid"] = dataclasses.asdict(cfg.rf_grid)
    config.update(models_trained=[s.name for s in chosen], python=platform.python_version(),
                  tensorflow=tf.__version__, keras=keras.__version__, device=device_summary(),
                  extraction=extraction.settings, extraction_source=extraction.source)
    return config


def export_ensemble(spec, n_bags: int, stats, extraction, cfg: TrainConfig, log: Log) -> str:
    """The serving ensemble of the main CNN's bags, carrying the dataset's extraction settings."""
    from trainer import data, ensemble

    t0 = time.perf_counter()
    feature, names = data.CHANNEL_SETS[spec.channels]
    members = [fileio.load_keras(keras_bag_path(cfg.model_dir, spec, k)) for k in range(n_bags)]
    path = model_dir.ensemble_dir(cfg.model_dir)
    ensemble.export(path, members, stats, names, feature, spec.use_coords,
                    extraction=extraction.settings, extraction_source=extraction.source)
    log(f"[{spec.name}] serving ensemble exported to {path} ({time.perf_counter() - t0:.1f}s)")
    return path


def store_trust(spec, cal, bags, cfg: TrainConfig, log: Log) -> None:
    """The serving ensemble's intervals and AOA (`trainer.trust`), from its calibration predictions."""
    from trainer import data, trust

    saved = fileio.load_npz(model_dir.predictions_path(cfg.model_dir, spec.name))
    feature, names = data.CHANNEL_SETS[spec.channels]
    try:
        trust.fit_and_store(cfg.model_dir, cal, names, feature, spec.use_coords, saved["cal_bags"], bags,
                            cfg.seed, log)
    except ValueError as err:     # tiny data or a single bag: the map carries nodata in those bands
        log(f"[trust] not fitted: {err}")


def train(cfg: TrainConfig, log: Log | None = None) -> dict:
    """The whole `s2mos train` run; returns the manifest (also written to manifest.json)."""
    import keras
    import tensorflow as tf
    from s2mos_transforms.errors import UserError
    from trainer import data, extraction, specs

    log = log or printer(cfg.verbose)
    t_run = time.perf_counter()
    if cfg.channels not in data.CHANNEL_SETS:
        raise UserError(f"--channels must be one of {sorted(data.CHANNEL_SETS)}, got {cfg.channels!r}")
    set_determinism(cfg.seed, cfg.deterministic)
    log(f"trainer: {device_summary()}; TensorFlow {tf.__version__}, Keras {keras.__version__}")
    chosen = specs.select(cfg.models, cfg.channels, cfg.use_coords, log)

    settings = extraction.read(cfg.data)
    cal = data.read_split(cfg.data, "calibration")
    stats = data.load_stats(cfg.data, cal, log)       # calibration only
    test = data.read_split(cfg.data, "test")          # predicted after fitting, never fitted on
    log(f"data: {len(cal)} calibration, {len(test)} test points from {cfg.data}; "
        f"extraction settings: {settings.source}")
    if not has_paired_dates(cal):
        needs_s1 = [s.name for s in chosen if s.channels == "s2s1" and s.input != "composite"]
        if model_dir.MAIN_MODEL in needs_s1:
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
    config = run_config(cfg, chosen, settings)
    fileio.write_json(fileio.join(cfg.model_dir, "train_config.json"), config)

    records = []
    for spec in chosen:
        records.append(train_model(spec, cal, test, stats, bags, cfg, log))
        if spec.name == model_dir.MAIN_MODEL:
            export_ensemble(spec, len(bags), stats, settings, cfg, log)
            store_trust(spec, cal, bags, cfg, log)

    exported = any(s.name == model_dir.MAIN_MODEL for s in chosen)
    manifest = {"models": records, "n_calibration": len(cal), "n_test": len(test), "bags": len(bags),
                "ensemble": model_dir.ENSEMBLE_DIR if exported else None,
                "extraction": settings.settings, "extraction_source": settings.source,
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
