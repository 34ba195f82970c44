"""The Source contract: one object serves both fan-outs of the product.

* ``observations(points)`` — every acquisition at each sample point, long format, per the
  observation contract of DESIGN.md section 3 (`bands.OBS_COLUMNS`).
* ``tile_stack(tile, start, end)`` — the dated image stack of a map tile.

Each source is one module of this package declaring a `SourcePlugin` (its name, its flags,
what it serves); `s2mos_transforms.sources` is the registry that finds them.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Protocol, Sequence

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


POINTS = "points"
TILES = "tiles"


def _no_arguments(group: argparse._ArgumentGroup) -> None:
    """A source with no flags of its own."""


def _no_options(args: argparse.Namespace) -> dict[str, Any]:
    return {}


@dataclasses.dataclass(frozen=True)
class SourcePlugin:
    """What a source module declares (as a module-level ``PLUGIN``) to join the registry.

    ``add_arguments`` adds the source's own flags to an argument group of every stage that
    takes a source; ``options`` turns the parsed flags into a plain, JSON-able dict (raise
    `SourceError` naming the flag when one is missing or wrong); ``factory(**options)`` builds
    the source, once on the launcher (to fail early) and once per worker (DoFn ``setup``),
    so the options are all that travels to the workers.
    """

    name: str
    summary: str
    serves: frozenset[str]
    factory: Callable[..., Any]
    add_arguments: Callable[[argparse._ArgumentGroup], None] = _no_arguments
    options: Callable[[argparse.Namespace], dict[str, Any]] = _no_options

    def __post_init__(self):
        unknown = set(self.serves) - {POINTS, TILES}
        if not self.serves or unknown:
            raise ValueError(f"source {self.name!r}: serves must be a non-empty subset of "
                             f"{{'{POINTS}', '{TILES}'}}, got {sorted(self.serves)}")
