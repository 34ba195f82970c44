"""Each model's inputs for one split, and per-date predictions folded back to points.

Shared by training (`trainer.fit_bags`) and evaluation (`trainer.predictions`), so a model is
scored on exactly the inputs it was fitted on.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from trainer.specs import ModelSpec


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
    if spec.input == "strong":          # temporal composites (trainer.composites)
        from trainer import composites
        return Prepared({"features": composites.strong_features(split, stats, spec.use_coords)}, None)
    if spec.input == "series":          # the whole bare series (trainer.series)
        from trainer import series
        return Prepared(series.model_inputs(split, stats, spec.use_coords), None)
    rows, owner = data.per_date_rows(split, stats, spec.use_coords, spec.channels)
    return Prepared({"features": rows}, owner)


def select_rows(prep: Prepared, points: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Rows of the given points: the points themselves, or their dates for per_date inputs."""
    if prep.owner is None:
        return {k: v[points] for k, v in prep.x.items()}, np.asarray(points)
    mask = np.isin(prep.owner, points)
    return {k: v[mask] for k, v in prep.x.items()}, prep.owner[mask]


def per_point(pred_rows: np.ndarray, prep: Prepared, n_points: int, fill: float) -> np.ndarray:
    """One prediction per point: the rows themselves, or the mean of a point's dates (`fill` if none)."""
    from trainer import data
    if prep.owner is None:
        return pred_rows
    return data.mean_per_point(pred_rows, prep.owner, n_points, fill)
