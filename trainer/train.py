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

import numpy as np

from s2mos_transforms import fileio
from trainer import bagging, model_dir
from trainer.config import Log, TrainConfig, printer
from trainer.fit_bags import keras_bag_path, train_model

__all__ = ["TrainConfig", "printer", "train", "fit_spec", "usable_points", "set_determinism", "device_summary",
           "has_paired_dates", "SERVABLE"]

# Models whose bags can be the serving ensemble (`--serve`): the paper's CNN and the whole-series model.
SERVABLE: tuple[str, ...] = ("cnn", "series")


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
    """The serving ensemble of the served model's bags (`--serve`), carrying the dataset's extraction
    settings."""
    from trainer import data, ensemble

    t0 = time.perf_counter()
    feature, names = data.CHANNEL_SETS[spec.channels]
    paths = [keras_bag_path(cfg.model_dir, spec, k) for k in range(n_bags)]
    members = [fileio.load_keras(p) for p in paths]
    path = model_dir.ensemble_dir(cfg.model_dir)
    relative = [f"../{p[len(cfg.model_dir.rstrip('/')) + 1:]}" for p in paths]
    ensemble.export(path, members, stats, names, feature, spec.use_coords,
                    extraction=extraction.settings, extraction_source=extraction.source,
                    family=spec.family, bag_models=relative)
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


def usable_points(spec, split) -> np.ndarray:
    """Indices of the points `spec` can use: those with an S1-paired date for the models that read
    only paired dates (`ModelSpec.needs_s1_pairs`), every point otherwise."""
    if spec.needs_s1_pairs:
        return np.flatnonzero(split.paired_lengths() > 0)
    return np.arange(len(split))


def fit_spec(spec, cal, test, stats, cfg: TrainConfig, log: Log):
    """Train one model on the calibration points it can use and predict the test points it can use.

    Returns (record, cal_used, test_used, bags): the manifest record (with ``n_calibration``,
    ``n_test`` and the test point ids it scored), the two subsets and the bags drawn on the
    calibration subset (the same seed draws the same bags whenever the subset is every point).
    `s2mos train` and `s2mos compare` both fit through here."""
    cal_idx, test_idx = usable_points(spec, cal), usable_points(spec, test)
    cal_used = cal if cal_idx.size == len(cal) else cal.subset(cal_idx)
    test_used = test if test_idx.size == len(test) else test.subset(test_idx)
    if len(cal_used) < 2:
        raise ValueError(f"{spec.name}: only {len(cal_used)} calibration point(s) it can use")
    if len(cal_used) < len(cal) or len(test_used) < len(test):
        log(f"[{spec.name}] uses the points with S1-paired dates: {len(cal_used)}/{len(cal)} calibration, "
            f"{len(test_used)}/{len(test)} test")
    bags = bagging.draw_bags(len(cal_used), cfg.bags, bagging.BAG_FRACTION, cfg.seed)
    record = train_model(spec, cal_used, test_used, stats, bags, cfg, log)
    record.update(n_calibration=len(cal_used), n_test=len(test_used),
                  points="s1_paired" if spec.needs_s1_pairs else "all")
    return record, cal_used, test_used, bags


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
    served = cfg.serve
    if served not in SERVABLE:
        raise UserError(f"--serve must be one of {', '.join(SERVABLE)}, got {served!r}")

    settings = extraction.read(cfg.data)
    cal = data.read_split(cfg.data, "calibration")
    stats = data.load_stats(cfg.data, cal, log)       # calibration only
    test = data.read_split(cfg.data, "test")          # predicted after fitting, never fitted on
    n_paired = int((cal.paired_lengths() > 0).sum())
    log(f"data: {len(cal)} calibration, {len(test)} test points from {cfg.data} "
        f"({n_paired} calibration points with S1-paired dates); extraction settings: {settings.source}")
    if n_paired < 2:
        needs_s1 = [s.name for s in chosen if s.needs_s1_pairs]
        if served in needs_s1:
            raise UserError("the dataset has (almost) no S1-paired dates: train with --channels s2, "
                            "or --serve series")
        if needs_s1:
            log(f"no S1-paired dates in the dataset: skipping {', '.join(needs_s1)}")
        chosen = [s for s in chosen if s.name not in needs_s1]
    if not any(s.name == served for s in chosen):
        log(f"--serve {served}: not among the models trained, so no serving ensemble is exported")

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
        record, cal_used, _, spec_bags = fit_spec(spec, cal, test, stats, cfg, log)
        records.append(record)
        if spec.name == served:
            export_ensemble(spec, len(spec_bags), stats, settings, cfg, log)
            store_trust(spec, cal_used, spec_bags, cfg, log)

    exported = any(s.name == served for s in chosen)
    manifest = {"models": records, "n_calibration": len(cal), "n_test": len(test), "bags": len(bags),
                "n_calibration_s1_paired": n_paired,
                "ensemble": model_dir.ENSEMBLE_DIR if exported else None, "served": served if exported else None,
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
    train(cli.train_config(args, checkpoint_dir=args.checkpoint_dir))
    return 0
