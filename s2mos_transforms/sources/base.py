"""The Source contract: one object serves both fan-outs of the product.

* ``observations(points)`` — every acquisition at each sample point, long format, per the
  observation contract of docs/architecture.md (`bands.OBS_COLUMNS`).
* ``tile_stack(tile, start, end)`` — the dated image stack of a map tile (`ImageStack`: the
  union of every acquisition touching the tile, per-pixel nodata and scene cloud); maps ask
  through `map_stack`, which leaves out the acquisitions no pixel can use (`StackNeeds`).

Timestamps are UTC everywhere: tables carry ``datetime64[ns, UTC]`` (`utc_times`), stacks
``datetime64[s]`` values in UTC.

Each source is one module of this package declaring a `SourcePlugin` (its name, its flags,
what it serves); `s2mos_transforms.sources` is the registry that finds them.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pandas as pd

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile


class SourceError(Exception):
    """A source cannot serve a request (outside coverage, unreadable input, …)."""


@dataclasses.dataclass(frozen=True)
class SamplePoint:
    point_id: str
    lat: float
    lon: float
    clay: float = float("nan")


# Reflectance written where an S2 acquisition does not cover a pixel (with SCL = bands.SCL_NO_DATA):
# the L2A convention; real reflectance is ≥ 1 (the simulator clips to 1 … 32 767).
S2_NODATA = 0
# The one timestamp type of observation tables and exports: timezone-aware UTC.
UTC_DTYPE = "datetime64[ns, UTC]"


def utc_times(values) -> pd.Series:
    """Any datetime-like column → ``datetime64[ns, UTC]``: naive values are read as UTC, values
    with an offset (``+02:00``, another zone) are converted to UTC. Raises on unparsable text
    (callers that must name a row parse first, as `sources.table` does)."""
    t = pd.Series(values) if not isinstance(values, pd.Series) else values
    if pd.api.types.is_datetime64_any_dtype(t):
        t = t.dt.tz_localize("UTC") if getattr(t.dt, "tz", None) is None else t.dt.tz_convert("UTC")
    else:
        t = pd.to_datetime(t, utc=True, format="mixed")
    return t.astype(UTC_DTYPE)


@dataclasses.dataclass
class ImageStack:
    """Every acquisition that touches one tile, on the tile's pixel grid: the tile contract.

    A tile can lie across several acquisition footprints (orbit swaths with their own dates,
    S2 granules with their own scene cloud cover). The stack is the union of all of them, and
    per pixel it says which acquisitions cover it, so that a pixel's observations are exactly
    what `Source.observations` gives for a point at the pixel centre: the same S2 and S1 dates,
    values and scene cloud. Every tile source (the embedded world; Earth Engine and GeoTIFF
    stacks) fills this contract; `maps.pixels.pixel_sequences` is its one consumer.

    Times — ``s2_times`` (T2,), ``s1_times`` (T1,): numpy ``datetime64[s]``, UTC (numpy holds
    no time zone; UTC by contract), ascending. One slot per acquisition: two acquisitions at
    the same instant (two orbits) are two slots, each covering its own pixels.

    S2, per slot and pixel:
      * ``s2`` int16 (T2, 10, H, W): L2A reflectance × 10 000 in `bands.S2_BANDS` order;
        `S2_NODATA` (0) in every band where the acquisition does not cover the pixel;
      * ``scl`` uint8 (T2, H, W): Scene Classification; `bands.SCL_NO_DATA` (0) where not
        covered (that class is masked like cloud). ``None`` only for a source with no SCL at
        all; nodata is then read from the reflectance (`s2_missing`);
      * ``scene_cloud_pct`` float32 (T2, H, W): cloud % of the scene (granule) the pixel lies
        in, NaN where unknown or not covered. May be a read-only broadcast view when one
        scene covers the whole tile (no copy per pixel).

    S1, per slot and pixel:
      * ``s1`` float32 (T1, 2, H, W): VV, VH backscatter in dB; NaN where not covered or
        missing (a NaN date is never paired with an S2 date);
      * ``angle`` float32 (T1,): incidence angle (deg) of each acquisition, NaN if unknown.
    """

    tile: Tile
    s2_times: np.ndarray
    s2: np.ndarray
    scl: np.ndarray | None
    scene_cloud_pct: np.ndarray
    s1_times: np.ndarray
    s1: np.ndarray
    angle: np.ndarray

    def __post_init__(self):
        t2, t1 = len(self.s2_times), len(self.s1_times)
        hw = tuple(self.s2.shape[-2:])
        expect = {"s2": (self.s2, (t2, len(bands.S2_BANDS)) + hw),
                  "scl": (self.scl, (t2,) + hw),
                  "scene_cloud_pct": (self.scene_cloud_pct, (t2,) + hw),
                  "s1": (self.s1, (t1, len(bands.S1_BANDS)) + hw),
                  "angle": (self.angle, (t1,))}
        for name in ("s2_times", "s1_times"):
            if np.asarray(getattr(self, name)).dtype.kind != "M":
                raise ValueError(f"ImageStack.{name} must be numpy datetime64 (UTC), "
                                 f"got {np.asarray(getattr(self, name)).dtype}")
        for name, (arr, shape) in expect.items():
            if arr is None and name == "scl":
                continue
            if tuple(np.shape(arr)) != shape:
                raise ValueError(f"ImageStack.{name} must be shaped {shape}, got {tuple(np.shape(arr))}")

    @property
    def nbytes(self) -> int:
        """Memory held by the stack (a broadcast scene-cloud view counts once per date)."""
        arrays = (self.s2, self.scl, self.s1, self.scene_cloud_pct, self.angle)
        return int(sum(_held_bytes(a) for a in arrays if a is not None))

    def select(self, s2_slots: np.ndarray, s1_slots: np.ndarray) -> "ImageStack":
        """The stack of the S2 and S1 slots given (indices, ascending), in a new stack."""
        s2_slots, s1_slots = np.asarray(s2_slots, np.int64), np.asarray(s1_slots, np.int64)
        cloud = self.scene_cloud_pct
        cloud = (np.broadcast_to(cloud[s2_slots, :1, :1], (s2_slots.size,) + cloud.shape[1:])
                 if cloud.strides[1:] == (0, 0) else cloud[s2_slots])          # one scene: stay a view
        return ImageStack(tile=self.tile, s2_times=self.s2_times[s2_slots], s2=self.s2[s2_slots],
                          scl=None if self.scl is None else self.scl[s2_slots], scene_cloud_pct=cloud,
                          s1_times=self.s1_times[s1_slots], s1=self.s1[s1_slots], angle=self.angle[s1_slots])


@dataclasses.dataclass(frozen=True)
class StackNeeds:
    """The acquisitions a map can use, so that a source need not make, fetch or hold the rest.

    A scene whose cloud cover fails the scene filter is masked on every pixel
    (`masks.scene_mask`: kept when below ``scene_cloud_max`` or unknown), and an S1 acquisition
    farther than ``s1_pair_max_days`` from every S2 scene left is never paired
    (`pairing.pair_candidates`, the pairing's own window). A stack without them gives every
    pixel the very sequence the whole stack gives; on the embedded world that leaves about a
    quarter of the S2 and an eighth of the S1 dates of a tile. The map pipeline passes it
    (`map_stack`); the dataset build needs every date of a point and never does.
    """

    scene_cloud_max: float = bands.SCENE_CLOUD_MAX_PCT
    s1_pair_max_days: float = bands.S1_PAIR_MAX_DAYS

    @classmethod
    def of(cls, extract) -> "StackNeeds":
        """The needs of a map extracted with `sequences.ExtractConfig` ``extract``."""
        return cls(float(extract.thresholds.scene_cloud_max), float(extract.s1_pair_max_days))

    def scenes(self, scene_cloud_pct) -> np.ndarray:
        """Which S2 slots to keep, bool (T2,), from the cloud % of the scenes each slot is made
        of, (T2, G) (NaN where unknown; slots with fewer scenes padded with +inf): a slot is kept
        when any of its scenes passes the scene filter."""
        from s2mos_transforms import masks
        pct = np.asarray(scene_cloud_pct, np.float64)
        pct = pct.reshape(pct.shape[0], int(np.prod(pct.shape[1:], dtype=np.int64)))
        return masks.scene_mask(pct, self.scene_cloud_max).any(axis=1)

    def s1_dates(self, s2_times, s1_times) -> np.ndarray:
        """Which S1 acquisitions could pair with one of the S2 times ``s2_times``, bool (T1,)."""
        from s2mos_transforms import pairing
        keep = np.zeros(len(s1_times), bool)
        cand = pairing.pair_candidates(s2_times, s1_times, self.s1_pair_max_days)
        keep[cand[cand >= 0]] = True
        return keep


@dataclasses.dataclass(frozen=True)
class SensorNeeds(StackNeeds):
    """Every acquisition of one sensor and none of the other: for a writer that simulates or
    reads a tile's S2 and S1 one after the other, so that its peak holds the larger of the two
    stacks instead of both (the world exports; every value depends on its location and date
    only, so each half equals that part of the whole stack)."""

    sensor: str = dataclasses.field(default=bands.SENSOR_S2, kw_only=True)

    def scenes(self, scene_cloud_pct) -> np.ndarray:
        return np.full(np.shape(scene_cloud_pct)[0], self.sensor == bands.SENSOR_S2)

    def s1_dates(self, s2_times, s1_times) -> np.ndarray:
        return np.full(len(s1_times), self.sensor == bands.SENSOR_S1)


def trim_stack(stack: ImageStack, needs: StackNeeds) -> ImageStack:
    """``stack`` without the acquisitions no pixel can use (`StackNeeds`), for a source that
    cannot leave them out itself: a scene is judged on the pixels it covers."""
    covered = ~s2_missing(stack.s2, stack.scl)
    cloud = np.where(covered, stack.scene_cloud_pct, np.inf)
    s2_keep = np.flatnonzero(needs.scenes(cloud))
    s1_keep = np.flatnonzero(needs.s1_dates(stack.s2_times[s2_keep], stack.s1_times))
    return stack.select(s2_keep, s1_keep)


def takes_needs(source) -> bool:
    """Whether ``source.tile_stack`` takes ``needs=`` (leaves unusable acquisitions out itself)."""
    import inspect
    try:
        return "needs" in inspect.signature(source.tile_stack).parameters
    except (TypeError, ValueError):
        return False


def map_stack(source, tile: Tile, start: str | None, end: str | None, needs: StackNeeds | None) -> ImageStack:
    """The stack a map reads for ``tile``: only what ``needs`` says a pixel can use — made or
    fetched so by a source whose ``tile_stack`` takes ``needs=``, trimmed after the read for
    any other (the `Source` contract does not require it)."""
    if needs is None:
        return source.tile_stack(tile, start, end)
    if takes_needs(source):
        return source.tile_stack(tile, start, end, needs=needs)
    return trim_stack(source.tile_stack(tile, start, end), needs)


def _held_bytes(a: np.ndarray) -> int:
    """Bytes behind an array, not counting axes broadcast with stride 0."""
    return int(np.prod([n for n, st in zip(a.shape, a.strides) if st != 0], dtype=np.int64) * a.itemsize)


def s2_missing(s2: np.ndarray, scl: np.ndarray | None) -> np.ndarray:
    """Where an S2 acquisition does not cover a pixel: SCL no-data, or every band at
    `S2_NODATA`. ``s2`` (T, 10, *S), ``scl`` (T, *S) or None → bool (T, *S)."""
    missing = np.all(np.asarray(s2) == S2_NODATA, axis=1)
    if scl is not None:
        missing |= np.asarray(scl) == bands.SCL_NO_DATA
    return missing


class Source(Protocol):
    name: str

    def covers(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Boolean mask: which locations this source can serve."""

    def observations(self, points: Sequence[SamplePoint]) -> pd.DataFrame:
        """All S2 and S1 acquisitions at the points, long format (`bands.OBS_COLUMNS`)."""

    def tile_stack(self, tile: Tile, start: str | None = None, end: str | None = None) -> ImageStack:
        """The dated S2/S1 stack of a tile between start and end (ISO dates, inclusive). A
        source may also take ``needs: StackNeeds | None = None`` and then leave out what a map
        cannot use (`map_stack`)."""


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
    # Optional: what the source would request for these points, without requesting anything
    # (a JSON-able dict, printed by `build-dataset --dry-run`); called with (points, options).
    plan_points: Callable[[Sequence[SamplePoint], dict[str, Any]], dict[str, Any]] | None = None
    # Optional: what the source would request for a map's tiles, without requesting anything
    # (a JSON-able dict, printed by `predict-map --dry-run`); called with (the first few tiles,
    # the number of tiles, start, end, options): those tiles listed, totals for all of them.
    plan_tiles: Callable[[Sequence[Tile], int, str, str, dict[str, Any]], dict[str, Any]] | None = None
    # Optional: CPU seconds per AOI pixel of a map from this source, end to end (reads, masks and
    # sequences, inference, COGs and the map's end), measured by benchmarks/bench_sources.py;
    # `predict-map --dry-run` estimates compute from it. None: not measured (the dry run then
    # uses the embedded world's rate, `maps.plan.CORE_SECONDS_PER_PIXEL`, and says so).
    map_core_seconds_per_pixel: float | None = None

    def __post_init__(self):
        unknown = set(self.serves) - {POINTS, TILES}
        if not self.serves or unknown:
            raise ValueError(f"source {self.name!r}: serves must be a non-empty subset of "
                             f"{{'{POINTS}', '{TILES}'}}, got {sorted(self.serves)}")
