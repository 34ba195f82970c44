"""The extraction settings of the dataset a model is trained on, carried into the model.

`s2mos build-dataset` records the settings of its per-location chain (scene-cloud limit,
NDVI/NBR2 thresholds, band-order rule, outlier sigma, S1 pairing window, date cap) in
DATA/summary.json under "thresholds" (`sequences.ExtractConfig.as_dict`). `s2mos train` writes
them into the exported ensemble's metadata ("extraction", read back by
`model_dir.EnsembleMeta.extract_config`) so a map is made with the settings the model learnt
from. A dataset without them (no summary.json, or one written before they were recorded, or a
test fixture) gets the paper's defaults, and the run records that it did.
"""
from __future__ import annotations

import dataclasses

from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError

SUMMARY_FILE = "summary.json"          # written by `s2mos build-dataset` (pipelines.build_dataset)
SUMMARY_KEY = "thresholds"
FROM_SUMMARY = "dataset summary.json"
DEFAULTS_NO_SUMMARY = "paper defaults (the dataset has no summary.json)"
DEFAULTS_NOT_RECORDED = "paper defaults (the dataset's summary.json records no extraction settings)"


@dataclasses.dataclass(frozen=True)
class ExtractionSettings:
    """`ExtractConfig.as_dict()` of the dataset, and where it came from (`source`)."""
    settings: dict
    source: str


def normalise(thresholds: dict | None, where: str) -> dict:
    """`ExtractConfig.from_dict(thresholds).as_dict()`: every key, missing ones at the paper's
    defaults (older datasets lack band_order); a bad key or value is one clear error."""
    from s2mos_transforms.sequences import ExtractConfig

    if thresholds is not None and not isinstance(thresholds, dict):
        raise UserError(f"{where}: \"{SUMMARY_KEY}\" must be an object, got {type(thresholds).__name__}")
    try:
        settings = ExtractConfig.from_dict(thresholds or {}).as_dict()
    except (TypeError, ValueError) as err:
        raise UserError(f"{where}: {err}") from None
    for key, default in ExtractConfig().as_dict().items():
        value = settings[key]
        kind = bool if isinstance(default, bool) else (int, float)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise UserError(f"{where}: extraction setting {key} must be "
                            f"{'true or false' if kind is bool else 'a number'}, got {value!r}")
    return settings


def read(data_dir: str) -> ExtractionSettings:
    """The extraction settings of the dataset in `data_dir` (local or gs://)."""
    path = fileio.join(data_dir, SUMMARY_FILE)
    if not fileio.exists(path):
        return ExtractionSettings(normalise(None, path), DEFAULTS_NO_SUMMARY)
    try:
        summary = fileio.read_json(path)
    except ValueError as err:
        raise UserError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(summary, dict) or SUMMARY_KEY not in summary:
        return ExtractionSettings(normalise(None, path), DEFAULTS_NOT_RECORDED)
    return ExtractionSettings(normalise(summary[SUMMARY_KEY], path), FROM_SUMMARY)
