"""The Source interface: one object serves both fan-outs of the product.

* ``observations(points)`` — every acquisition at each sample point, long format, per the
  observation contract of DESIGN.md section 3 (`bands.OBS_COLUMNS`).
* ``tile_stack(tile, start, end)`` — the dated image stack of a map tile.

Sources: ``synthetic`` (the embedded world, default), ``table`` (an observations table,
points only); Earth Engine and GeoTIFF stacks plug in through the same interface.
"""
from __future__ import annotations

import dataclasses
from typing import Protocol, Sequence

import numpy as np
import pandas as pd

from s2mos_transforms.grid import Tile


class SourceError(Exception):
    """A source cannot serve a request (outside coverage, unreadable input, …)."""


@dataclasses.dataclass(frozen=True)
class SamplePoint:
    point_id: str
    lat: float
    lon: float
    clay: float = float("nan")


@dataclasses.dataclass
class ImageStack:
    """Dated images of one tile; S2 and S1 keep their own acquisition times.

    s2: int16 (T2, 10, H, W) L2A reflectance × 10 000 in `bands.S2_BANDS` order;
    scl: uint8 (T2, H, W); scene_cloud_pct: float32 (T2,);
    s1: float32 (T1, 2, H, W) VV, VH in dB; angle: float32 (T1,) incidence angle (deg).
    Times are numpy datetime64[s] in UTC.
    """

    tile: Tile
    s2_times: np.ndarray
    s2: np.ndarray
    scl: np.ndarray
    scene_cloud_pct: np.ndarray
    s1_times: np.ndarray
    s1: np.ndarray
    angle: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.s2.nbytes + self.scl.nbytes + self.s1.nbytes)


class Source(Protocol):
    name: str

    def covers(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Boolean mask: which locations this source can serve."""

    def observations(self, points: Sequence[SamplePoint]) -> pd.DataFrame:
        """All S2 and S1 acquisitions at the points, long format (`bands.OBS_COLUMNS`)."""

    def tile_stack(self, tile: Tile, start: str | None = None, end: str | None = None) -> ImageStack:
        """The dated S2/S1 stack of a tile between start and end (ISO dates, inclusive)."""


def get_source(name: str, **options) -> Source:
    """Build a source by name; options are source specific (preset, seed, path …)."""
    if name == "synthetic":
        from s2mos_transforms.world.source import SyntheticSource
        return SyntheticSource(preset=options.get("preset", "quick"), seed=options.get("seed"))
    if name == "table":
        from s2mos_transforms.table_source import TableSource
        path = options.get("observations")
        if not path:
            raise SourceError("the 'table' source needs --observations PATH")
        return TableSource(path)
    raise SourceError(f"unknown source {name!r} (known: synthetic, table)")
