"""The model-directory contract, defined once: what `s2mos train` writes and map inference reads.

MODEL_DIR/
  ensemble/                  the serving SavedModel (`trainer.ensemble`), with
    s2mos_model.json         channels, use_coords, max_dates, bags, stats, bag_models,
                             extraction (the dataset's `ExtractConfig.as_dict`), and the
                             trust layer (`trainer.trust`): intervals (conformal q, eps),
                             aoa (DI weights, threshold), recalibration, calibration_clay_mean
    aoa.npz                  the AOA's training points (weighted, standardised, float32)
    stats.json               normalisation stats of the calibration set
  bags/bag_K.keras           the main CNN's bag Keras models (the map's fast inference path)
  models/NAME/bag_K.keras    every other Keras model family (ablations, ANNs); models/NAME/…
  predictions/, evaluation/  test predictions and their evaluation
"""
from __future__ import annotations

import dataclasses
import json
from typing import Optional

from s2mos_transforms import bands
from s2mos_transforms.normalize import MinMax, NormStats

ENSEMBLE_DIR = "ensemble"
MODEL_META = "s2mos_model.json"
BAGS_DIR = "bags"
MODELS_DIR = "models"
PREDICTIONS_DIR = "predictions"
AOA_FILE = "aoa.npz"        # ensemble/aoa.npz: the AOA's training features (`trainer.aoa`)
MAIN_MODEL = "cnn"          # the model whose bags are the serving ensemble (kept in BAGS_DIR)


def bag_file(k: int) -> str:
    """File name of bag k of a Keras model."""
    return f"bag_{k}.keras"


def keras_bag_path(model_dir: str, model_name: str, k: int) -> str:
    """Where bag k of Keras model `model_name` is saved: bags/ for the main CNN, else models/NAME/."""
    folder = BAGS_DIR if model_name == MAIN_MODEL else f"{MODELS_DIR}/{model_name}"
    return f"{model_dir.rstrip('/')}/{folder}/{bag_file(k)}"


def rf_bag_path(model_dir: str, model_name: str, k: int) -> str:
    """Bag k of RF model `model_name` (`train --save-rf`), re-predicted by `evaluate`."""
    return f"{model_dir.rstrip('/')}/{MODELS_DIR}/{model_name}/bag_{k}.joblib"


def predictions_path(model_dir: str, model_name: str) -> str:
    """The train-time test predictions of every bag of `model_name` (% clay)."""
    return f"{model_dir.rstrip('/')}/{PREDICTIONS_DIR}/{model_name}.npz"


@dataclasses.dataclass(frozen=True)
class EnsembleMeta:
    channels: tuple[str, ...]
    use_coords: bool
    max_dates: int
    bags: int
    stats: NormStats
    sequence_feature: str = ""
    bag_models: tuple[str, ...] = ()
    # The extraction settings of the dataset the model was trained on (`ExtractConfig.as_dict`:
    # scene-cloud limit, NDVI/NBR2 thresholds, band-order rule, outlier sigma, S1 pairing
    # window, date cap). None for models exported before they were recorded.
    extraction: dict | None = None
    # The trust layer (`trainer.trust`): conformal interval parameters, the AOA's metadata,
    # a local recalibration (`s2mos recalibrate`) and the calibration set's mean clay. None
    # for models exported before they existed (their maps carry nodata in those bands).
    intervals: dict | None = None
    aoa: dict | None = None
    recalibration: dict | None = None
    calibration_clay_mean: float | None = None

    def extract_config(self):
        """The `sequences.ExtractConfig` the map must use (the paper's defaults if not recorded)."""
        from s2mos_transforms.sequences import ExtractConfig
        return ExtractConfig.from_dict(self.extraction or {})

    @property
    def seq_stats(self) -> MinMax:
        key = self.sequence_feature or ("s2s1" if self.channels == bands.CHANNELS_S2S1 else "s2")
        return self.stats[key]


def ensemble_dir(model_dir: str) -> str:
    return f"{model_dir.rstrip('/')}/{ENSEMBLE_DIR}"


def check_model_dir(model_dir: str) -> Optional[str]:
    """None if MODEL_DIR/ensemble holds a SavedModel and its metadata, else what is missing."""
    import tensorflow as tf
    ens = ensemble_dir(model_dir)
    for name in ("saved_model.pb", MODEL_META):
        if not tf.io.gfile.exists(f"{ens}/{name}"):
            return f"model directory {model_dir} has no {ENSEMBLE_DIR}/{name} (train it with `s2mos train`)"
    return None


def read_meta(model_dir: str) -> EnsembleMeta:
    import tensorflow as tf
    with tf.io.gfile.GFile(f"{ensemble_dir(model_dir)}/{MODEL_META}") as fh:
        raw = json.load(fh)
    return EnsembleMeta(channels=tuple(raw["channels"]), use_coords=bool(raw["use_coords"]),
                        max_dates=int(raw.get("max_dates", bands.MAX_DATES)), bags=int(raw["bags"]),
                        stats=NormStats.from_json(json.dumps(raw["stats"])),
                        sequence_feature=str(raw.get("sequence_feature", "")),
                        bag_models=tuple(raw.get("bag_models", ())),
                        extraction=raw.get("extraction"), intervals=raw.get("intervals"),
                        aoa=raw.get("aoa"), recalibration=raw.get("recalibration"),
                        calibration_clay_mean=raw.get("calibration_clay_mean"))


def update_meta(model_dir: str, **updates) -> dict:
    """Add or replace keys of ensemble/s2mos_model.json (the trust layer is written after export)."""
    from s2mos_transforms import fileio
    path = f"{ensemble_dir(model_dir)}/{MODEL_META}"
    raw = fileio.read_json(path)
    raw.update(updates)
    fileio.write_json(path, raw)
    return raw


def bag_paths(model_dir: str, meta: EnsembleMeta) -> list[str]:
    """The bag Keras files: as listed in the metadata (relative to ensemble/), else bags/bag_K.keras."""
    root = model_dir.rstrip("/")
    if meta.bag_models:
        out = []
        for rel in meta.bag_models:
            parts = [p for p in f"{ENSEMBLE_DIR}/{rel}".split("/") if p not in ("", ".")]
            stack: list[str] = []
            for part in parts:
                if part == "..":
                    if stack:
                        stack.pop()
                else:
                    stack.append(part)
            out.append(f"{root}/{'/'.join(stack)}")
        return out
    return [keras_bag_path(root, MAIN_MODEL, k) for k in range(meta.bags)]
