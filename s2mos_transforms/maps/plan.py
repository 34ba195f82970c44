"""Planning a map on the launcher without listing its tiles: compact row ranges per UTM zone.

A continental AOI has a million tiles; listing them on the launcher (and putting each in the
job graph) costs minutes and gigabytes before any work. The launcher instead

* splits the AOI by UTM zone (and hemisphere) and projects each part (`tiling.zone_parts`,
  `tiling.project`): one WKB per zone, shared once with the workers (a side input);
* cuts each zone's grid into at most `RANGES_PER_ZONE` blocks of tile rows, `TileRange`s,
  dropping blocks that do not meet the AOI. Only these ranges enter the job graph;
* counts tiles and pixels for the plan's summary (and `--dry-run`) block by block, with
  vectorised geometry on at most `BLOCK_CELLS` tiles at a time (`tiling.block_count`), so
  memory stays flat whatever the AOI.

The workers expand each range into `TileTask`s with the same block functions
(`tiling.block_tasks`), so they get exactly the tiles `tiling.tiles_for_aoi` would list.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Iterator

import shapely

from s2mos_transforms.maps import cog, tiling

# At most this many ranges per UTM zone: the launcher's elements stay bounded by the number
# of zones (≤ 2 × 60), not by the AOI's area.
RANGES_PER_ZONE = 32
# Tiles tested at once when counting or expanding a range (bounds the vectorised geometry).
BLOCK_CELLS = 4096

# End-to-end cost of one AOI pixel, in core-seconds: source + masks/sequences + fast-path
# inference. Measured by `python benchmarks/bench_map.py` (quick AOI, 4 tiles of 128 px,
# 36 288 AOI pixels, untrained 5-bag paper CNN, 2-core container beside a training job;
# session 12): source (the embedded world's simulator, the map's stacks: `StackNeeds`) 6.2 s +
# sequences 0.44 s + inference 0.163 core-ms × 34 840 pixels = 12.3 core-s, i.e. 3.4e-4
# core-s per pixel (≈ 2 900 px/s per core). On real data the source's reads replace the
# simulator's 6.2 s, about half of it. End to end (session 14: `bench_map.py --memory-only
# --memory-tiles 1 4 --memory-tile-size 256`, the whole `predict-map` process's CPU — Beam,
# trust bands, DI queries, COG writing and the map's end included — over the AOI pixels, trained
# models of benchmarks/trust_paper.sh): 4 tiles 0.27 (CNN) and 0.24 (whole-series model)
# core-ms per pixel, 1 tile 0.41 (start-up not yet spread); so this rate holds.
CORE_SECONDS_PER_PIXEL = 3.4e-4
WORLD_RATE_FROM = "the embedded world, measured by benchmarks/bench_map.py"
# COG bytes over the raw float32 bytes of every map band (`cog.BAND_NAMES`: 7 since issue 16),
# DEFLATE + floating-point predictor, overviews included, per pixel inside the AOI. Measured by
# `python benchmarks/bench_map.py --memory-only --memory-tiles 1 4 --memory-tile-size 256
# --model-dir <trained CNN>` (session 14, the paper-trained CNN of benchmarks/trust_paper.sh):
# 0.76 (1 tile) and 0.81 (4 tiles) of the quick AOI, 21–23 B per pixel; the independent site's
# mostly-mapped 128 px tiles give 0.92 (26 B). Pixels without a bare date are nodata and cost
# less, so the share of mapped pixels moves it. Until session 14 this said 0.72 of 3 bands
# (8.6 B per pixel), measured before the interval and AOA bands: a third of today's size.
COG_BYTES_PER_RAW_BYTE = 0.8
COG_BANDS = len(cog.BAND_NAMES)


@dataclasses.dataclass(frozen=True)
class TileRange:
    """A block of one zone's tile grid: rows [row_start, row_stop) × cols [col_start, col_stop)."""

    epsg: int
    row_start: int
    row_stop: int
    col_start: int
    col_stop: int

    @property
    def cells(self) -> int:
        return (self.row_stop - self.row_start) * (self.col_stop - self.col_start)

    def blocks(self, max_cells: int = BLOCK_CELLS) -> Iterator[tuple[int, int, int, int]]:
        """(row_start, row_stop, col_start, col_stop) sub-blocks of at most ~max_cells tiles."""
        ncols = self.col_stop - self.col_start
        col_step = min(ncols, max_cells)
        row_step = max(1, max_cells // col_step)
        for r in range(self.row_start, self.row_stop, row_step):
            for c in range(self.col_start, self.col_stop, col_step):
                yield r, min(r + row_step, self.row_stop), c, min(c + col_step, self.col_stop)


@dataclasses.dataclass(frozen=True)
class MapPlan:
    """What the launcher hands the pipeline: the zones' projected AOIs and the row ranges."""

    size: int
    res: float
    zones: dict[int, bytes]          # epsg → the AOI's part in the zone, projected (WKB)
    ranges: tuple[TileRange, ...]

    @functools.cached_property
    def zone_polygons(self) -> dict:
        return {epsg: shapely.from_wkb(wkb) for epsg, wkb in self.zones.items()}

    def tasks(self, rng: TileRange) -> Iterator[tiling.TileTask]:
        """The tiles of one range (what a worker does with it)."""
        return expand_range(rng, self.zone_polygons[rng.epsg], self.size, self.res)


def expand_range(rng: TileRange, poly_xy, size: int, res: float) -> Iterator[tiling.TileTask]:
    """The TileTasks of a range, block by block, each with the AOI clipped to it."""
    for r0, r1, c0, c1 in rng.blocks():
        yield from tiling.block_tasks(rng.epsg, poly_xy, r0, r1, c0, c1, size, res)


def _meets(poly_xy, x0: float, y0: float, x1: float, y1: float) -> bool:
    b = shapely.box(x0, y0, x1, y1)
    return bool(shapely.intersects(poly_xy, b) and not shapely.touches(poly_xy, b))


def zone_ranges(epsg: int, poly_xy, size: int, res: float,
                ranges_per_zone: int = RANGES_PER_ZONE) -> list[TileRange]:
    """At most `ranges_per_zone` row blocks over the zone part's grid bounds that meet it."""
    c0, c1, r0, r1 = tiling.grid_bounds(poly_xy, size, res)
    step = max(1, math.ceil((r1 - r0) / ranges_per_zone))
    span = size * res
    shapely.prepare(poly_xy)
    return [TileRange(epsg, r, min(r + step, r1), c0, c1) for r in range(r0, r1, step)
            if _meets(poly_xy, c0 * span, r * span, c1 * span, min(r + step, r1) * span)]


def plan_tiles(aoi, size: int, res: float, ranges_per_zone: int = RANGES_PER_ZONE) -> MapPlan:
    """The plan of an AOI (lon/lat): per zone its projected part and its row ranges."""
    zones, ranges = {}, []
    for epsg, part in sorted(tiling.zone_parts(aoi).items()):
        poly = tiling.project(part, epsg)
        zone = zone_ranges(epsg, poly, size, res, ranges_per_zone)
        if zone:
            zones[epsg] = shapely.to_wkb(poly)
            ranges.extend(zone)
    return MapPlan(size=int(size), res=float(res), zones=zones, ranges=tuple(ranges))


# ------------------------------------------------------------------ counts and estimates

def count_tiles(plan: MapPlan) -> int:
    """Tiles of the plan (as the workers will expand them), counted block by block."""
    total = 0
    for rng in plan.ranges:
        poly = plan.zone_polygons[rng.epsg]
        total += sum(tiling.block_count(poly, r0, r1, c0, c1, plan.size, plan.res)
                     for r0, r1, c0, c1 in rng.blocks())
    return total


def aoi_pixels(plan: MapPlan) -> int:
    """Pixels inside the AOI: its projected area over the pixel area, zone by zone."""
    return int(round(sum(p.area for p in plan.zone_polygons.values()) / (plan.res * plan.res)))


@dataclasses.dataclass(frozen=True)
class PlanSummary:
    tiles: int
    ranges: int
    zones: int
    pixels: int
    core_hours: float
    output_bytes: float
    core_seconds_per_pixel: float
    rate_from: str

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def summarize(plan: MapPlan, core_seconds_per_pixel: float = CORE_SECONDS_PER_PIXEL,
              rate_from: str = WORLD_RATE_FROM) -> PlanSummary:
    """Counts and estimates of a plan; compute at the given rate per pixel (the source's,
    `SourcePlugin.map_core_seconds_per_pixel`; by default the embedded world's)."""
    pixels = aoi_pixels(plan)
    return PlanSummary(tiles=count_tiles(plan), ranges=len(plan.ranges), zones=len(plan.zones), pixels=pixels,
                       core_hours=pixels * core_seconds_per_pixel / 3600.0,
                       output_bytes=pixels * COG_BANDS * 4 * COG_BYTES_PER_RAW_BYTE,
                       core_seconds_per_pixel=core_seconds_per_pixel, rate_from=rate_from)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0
    return f"{n:.1f} PB"


def format_summary(s: PlanSummary, size: int, res: float) -> str:
    """The dry-run's lines: tiles, pixels, core-hours, output size, and where the numbers come from."""
    hours = f"{s.core_hours:,.0f}" if s.core_hours >= 10 else f"{s.core_hours:.2g}"
    return "\n".join([
        f"  tiles: {s.tiles:,} of {size} px at {res:g} m ({s.ranges} row ranges over {s.zones} UTM zone(s))",
        f"  pixels inside the AOI: {s.pixels:,} (projected area / {res:g}² m²)",
        f"  estimated compute: {hours} core-hours ({s.core_seconds_per_pixel * 1e3:.2f} core-ms per "
        f"pixel, end to end: {s.rate_from})",
        f"  estimated output: {_bytes(s.output_bytes)} of COG tiles ({COG_BANDS} float32 bands × pixels, "
        f"compressed to {COG_BYTES_PER_RAW_BYTE:.0%} with DEFLATE + predictor, overviews included)"])
