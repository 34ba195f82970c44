"""What a map's workers need (`MapConfig`), and the extraction settings a map must use.

A model learned clay from sequences made with its dataset's extraction settings (scene-cloud
limit, NDVI/NBR2 bare-soil thresholds, outlier sigma, S1 pairing window, date cap): the map
must select the same observations, or it feeds the model pixels unlike those it was trained
on. `resolve_extraction` takes the model's recorded settings (`s2mos_model.json`,
``extraction``; the paper's defaults for models exported before they were recorded) and
refuses a predict-map flag that contradicts them, unless ``--override-extraction``.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

from s2mos_transforms.errors import UserError

TILES_DIR = "tiles"

# predict-map flag → ExtractConfig key
EXTRACTION_FLAGS: dict[str, str] = {
    "ndvi_max": "--ndvi-max",
    "nbr2_max": "--nbr2-max",
    "scene_cloud_max": "--scene-cloud-max",
    "s1_pair_max_days": "--s1-pair-max-days",
}
FROM_MODEL = "the model"
FROM_DEFAULTS = "the paper's defaults (the model's metadata records no extraction settings)"


@dataclasses.dataclass(frozen=True)
class MapConfig:
    """Everything a worker needs, picklable."""

    model_dir: str
    out: str
    source: str
    source_options: dict
    start: str
    end: str
    tile_size: int
    min_obs: int
    channels: tuple[str, ...]
    res: float = 10.0
    extraction: dict = dataclasses.field(default_factory=dict)   # ExtractConfig.as_dict(); {} = defaults
    extraction_from: str = FROM_DEFAULTS

    def extract_config(self):
        """The `sequences.ExtractConfig` the tiles are made with."""
        from s2mos_transforms.sequences import ExtractConfig
        return ExtractConfig.from_dict(self.extraction)

    def settings(self) -> dict:
        """What a tile's content depends on (map_settings.json): a re-run may reuse tiles only
        if these agree."""
        keys = ("model_dir", "source", "source_options", "start", "end", "tile_size", "res", "min_obs")
        return ({k: getattr(self, k) for k in keys} | {"channels": list(self.channels)}
                | {"extraction": self.extract_config().as_dict(), "extraction_from": self.extraction_from})

    def tags(self) -> dict:
        """GeoTIFF tags of every tile: the model, dates and the extraction settings used."""
        return {"model_dir": self.model_dir, "start": self.start, "end": self.end, "min_obs": self.min_obs,
                "extraction": json.dumps(self.extract_config().as_dict(), sort_keys=True),
                "extraction_from": self.extraction_from}

    def tile_path(self, name: str) -> str:
        return f"{self.out.rstrip('/')}/{TILES_DIR}/{name}.tif"


def check_extraction_flags(given: dict[str, float | None]) -> None:
    """One-line UserError for a value no extraction could use."""
    for key in ("ndvi_max", "nbr2_max"):
        v = given.get(key)
        if v is not None and not -1.0 < v <= 1.0:
            raise UserError(f"{EXTRACTION_FLAGS[key]} must be in (-1, 1], got {v:g}")
    v = given.get("scene_cloud_max")
    if v is not None and not 0.0 <= v <= 100.0:
        raise UserError(f"--scene-cloud-max must be a percentage in [0, 100], got {v:g}")
    v = given.get("s1_pair_max_days")
    if v is not None and not 0.0 <= v <= 30.0:
        raise UserError(f"--s1-pair-max-days must be between 0 and 30 days, got {v:g}")


def resolve_extraction(recorded: dict | None, given: dict[str, float | None],
                       override: bool = False) -> tuple[dict, str, list[str]]:
    """(settings as `ExtractConfig.as_dict`, where they come from, warning lines).

    `recorded`: the model's ``extraction`` (None: exported before it was recorded, so the
    paper's defaults, which every such model was trained with). `given`: the predict-map flags
    (None = not given). A flag that differs from the model's value is a UserError unless
    `override`; then it is used, and a warning line says so.
    """
    from s2mos_transforms.sequences import ExtractConfig

    check_extraction_flags(given)
    try:
        values: dict[str, Any] = ExtractConfig.from_dict(recorded or {}).as_dict()
    except (TypeError, ValueError) as err:
        raise UserError(f"the model's extraction settings are unreadable: {err}") from None
    origin = FROM_MODEL if recorded is not None else FROM_DEFAULTS
    trained = "the model was trained with" if recorded is not None else \
        "the model was trained with the paper's default (its metadata records none)"
    changed, warnings = [], []
    for key, flag in EXTRACTION_FLAGS.items():
        v = given.get(key)
        if v is None or math.isclose(float(v), float(values[key]), rel_tol=1e-9, abs_tol=1e-12):
            continue
        if not override:
            raise UserError(f"{trained} {flag} {values[key]:g}; {flag} {v:g} would map other observations as "
                            f"bare soil than it learned from (drop {flag}, or add --override-extraction)")
        warnings.append(f"warning: {trained} {flag} {values[key]:g}; mapping with {flag} {v:g} "
                        "(--override-extraction)")
        values[key] = float(v)
        changed.append(key)
    if changed:
        origin += f", overridden by --override-extraction: {', '.join(changed)}"
    return ExtractConfig.from_dict(values).as_dict(), origin, warnings
