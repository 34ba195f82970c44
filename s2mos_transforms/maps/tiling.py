"""Area of interest → UTM zone(s) → the grid tiles covering it, and each tile's inside-AOI mask.

An AOI is a WGS84 (lon/lat) polygon or multipolygon, read from a GeoJSON file (geometry,
Feature or FeatureCollection), a ``W S E N`` bounding box or an embedded-world preset. It is
split by UTM zone (and hemisphere); each part is projected to its zone, and the tiles of
`grid.Tile`'s 10 m grid that share area with it are found block by block (`block_tasks`,
vectorised; `block_count` counts without building them). A tile carries, when it is only partly
inside the AOI, the projected AOI clipped to its square, so the element a worker receives
stays small whatever the AOI; the worker rasterises that into the inside mask.
"""
from __future__ import annotations

import dataclasses
import json
import math
from typing import Iterable, Iterator

import numpy as np
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, mapping, shape

from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import PIXEL_SIZE_M, Tile, lonlat_to_xy, utm_epsg

# Densify lon/lat edges to this step (degrees) before projecting, so straight lines in
# lon/lat (a bbox) stay faithful once projected to UTM.
DENSIFY_DEG = 0.01


@dataclasses.dataclass(frozen=True)
class TileTask:
    """A tile to map: the grid cell plus the projected AOI clipped to it (WKB, None = all in)."""

    tile: Tile
    aoi_wkb: bytes | None = None

    @property
    def name(self) -> str:
        return self.tile.name

    def inside_mask(self) -> np.ndarray:
        """Boolean (size, size): pixel centres inside the AOI."""
        return inside_mask(self.tile, None if self.aoi_wkb is None else shapely.from_wkb(self.aoi_wkb))


# ---------------------------------------------------------------- AOI parsing

def _polygonal(geom) -> Polygon | MultiPolygon:
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in geom.geoms if isinstance(g, (Polygon, MultiPolygon))]
        if parts and len(parts) == len(geom.geoms):
            return shapely.union_all(parts)
    raise UserError(f"AOI must be a Polygon or MultiPolygon, got {geom.geom_type}")


def aoi_from_geojson(obj: dict) -> Polygon | MultiPolygon:
    """A (multi)polygon from a GeoJSON geometry, Feature or FeatureCollection (lon/lat)."""
    if not isinstance(obj, dict) or "type" not in obj:
        raise UserError("AOI is not a GeoJSON object (no 'type')")
    kind = obj["type"]
    try:
        if kind == "FeatureCollection":
            feats = obj.get("features") or []
            if not feats:
                raise UserError("AOI FeatureCollection has no features")
            geom = shapely.union_all([_polygonal(shape(f["geometry"])) for f in feats])
        elif kind == "Feature":
            if not obj.get("geometry"):
                raise UserError("AOI Feature has no geometry")
            geom = _polygonal(shape(obj["geometry"]))
        else:
            geom = _polygonal(shape(obj))
    except UserError:
        raise
    except Exception as err:  # malformed coordinates, unknown geometry type …
        raise UserError(f"AOI is not valid GeoJSON: {err}") from None
    return _checked(geom)


def _checked(geom) -> Polygon | MultiPolygon:
    if geom.is_empty or geom.area <= 0:
        raise UserError("AOI polygon is empty or has no area")
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
        geom = _polygonal(geom) if not isinstance(geom, (Polygon, MultiPolygon)) else geom
    w, s, e, n = geom.bounds
    if w < -180 or e > 180 or s < -90 or n > 90:
        raise UserError(f"AOI coordinates are not WGS84 lon/lat degrees (bounds {geom.bounds})")
    return geom


def read_aoi(path: str) -> Polygon | MultiPolygon:
    """Read a GeoJSON AOI from a local or gs:// path; one-line UserError if unreadable."""
    try:
        text = fileio.read_text(path)
    except Exception as err:
        raise UserError(f"cannot read AOI file {path}: {type(err).__name__}: {err}".splitlines()[0]) from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"AOI file {path} is not JSON: {err}") from None
    return aoi_from_geojson(obj)


def aoi_from_bbox(west: float, south: float, east: float, north: float) -> Polygon:
    if not (west < east and south < north):
        raise UserError(f"--bbox needs W S E N with W < E and S < N, got {west} {south} {east} {north}")
    return _checked(box(west, south, east, north))


# ---------------------------------------------------------------- zones and tiles

def zone_parts(aoi: Polygon | MultiPolygon) -> dict[int, Polygon | MultiPolygon]:
    """The AOI split by UTM zone and hemisphere: {epsg: lon/lat part}."""
    w, s, e, n = aoi.bounds
    parts: dict[int, Polygon | MultiPolygon] = {}
    first, last = int((w + 180.0) // 6.0), int((min(e, 179.999999) + 180.0) // 6.0)
    for z in range(first, last + 1):
        lon0 = -180.0 + 6.0 * z
        for lat_lo, lat_hi in ((0.0, 90.0), (-90.0, 0.0)):
            part = aoi.intersection(box(lon0, lat_lo, lon0 + 6.0, lat_hi))
            if part.is_empty or part.area <= 0:
                continue
            part = _polygonal(part) if not isinstance(part, (Polygon, MultiPolygon)) else part
            epsg = utm_epsg(0.5 if lat_lo >= 0 else -0.5, lon0 + 3.0)
            parts[epsg] = part
    return parts


def project(geom, epsg: int):
    """Project a lon/lat geometry to the zone (after densifying its edges)."""
    dense = shapely.segmentize(geom, DENSIFY_DEG)

    def fwd(coords: np.ndarray) -> np.ndarray:
        x, y = lonlat_to_xy(epsg, coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])
    out = shapely.transform(dense, fwd)
    return out if out.is_valid else shapely.make_valid(out)


def tiles_for_aoi(aoi: Polygon | MultiPolygon, size: int = 256,
                  res: float = PIXEL_SIZE_M) -> list[TileTask]:
    """Every tile of the grid that intersects the AOI, over all its UTM zones, sorted by name.

    The reference list for tests and small AOIs; the pipeline never builds it (`plan` hands
    the workers compact row ranges, which `block_tasks` expands the same way).
    """
    tasks: list[TileTask] = []
    for epsg, part in sorted(zone_parts(aoi).items()):
        poly = project(part, epsg)
        c0, c1, r0, r1 = grid_bounds(poly, size, res)
        tasks.extend(block_tasks(epsg, poly, r0, r1, c0, c1, size, res))
    return tasks


def grid_bounds(poly_xy, size: int, res: float) -> tuple[int, int, int, int]:
    """(col_start, col_stop, row_start, row_stop), stops exclusive: the tiles under the bounds."""
    span = size * res
    x0, y0, x1, y1 = poly_xy.bounds
    return (math.floor(x0 / span), math.floor(x1 / span) + 1, math.floor(y0 / span), math.floor(y1 / span) + 1)


def _block_hits(poly_xy, row_start: int, row_stop: int, col_start: int, col_stop: int, span: float):
    """Tile indices of a block and which of them share area with the polygon (vectorised)."""
    cc, rr = np.meshgrid(np.arange(col_start, col_stop), np.arange(row_start, row_stop), indexing="ij")
    cc, rr = cc.ravel(), rr.ravel()
    boxes = shapely.box(cc * span, rr * span, (cc + 1) * span, (rr + 1) * span)
    shapely.prepare(poly_xy)
    # Interiors meet (⇔ the overlap has area): intersecting but not only touching.
    hit = shapely.intersects(poly_xy, boxes) & ~shapely.touches(poly_xy, boxes)
    return cc, rr, boxes, hit


def block_count(poly_xy, row_start: int, row_stop: int, col_start: int, col_stop: int,
                size: int, res: float) -> int:
    """How many tiles of the block share area with the polygon (no tile list is built)."""
    return int(np.count_nonzero(_block_hits(poly_xy, row_start, row_stop, col_start, col_stop, size * res)[3]))


def block_tasks(epsg: int, poly_xy, row_start: int, row_stop: int, col_start: int, col_stop: int,
                size: int, res: float) -> Iterator[TileTask]:
    """The TileTasks of a block of the zone grid (rows, cols: stops exclusive) sharing area with
    the projected AOI, each carrying the AOI clipped to its square when only partly inside."""
    cc, rr, boxes, hit = _block_hits(poly_xy, row_start, row_stop, col_start, col_stop, size * res)
    if not hit.any():
        return
    cc, rr, boxes = cc[hit], rr[hit], boxes[hit]
    inside = shapely.contains(poly_xy, boxes)
    for c, r, b, full in zip(cc, rr, boxes, inside):
        clip = None if full else poly_xy.intersection(b)
        if clip is not None and (clip.is_empty or clip.area <= 0):
            continue
        yield TileTask(Tile(epsg, int(c), int(r), size, res),
                       None if clip is None else shapely.to_wkb(clip))


def task_for_tile(tile: Tile, poly_xy) -> TileTask:
    """The TileTask of one known tile (the AOI clipped to it; None when the tile is all inside)."""
    b = shapely.box(*tile.bounds)
    return TileTask(tile, None if poly_xy.contains(b) else shapely.to_wkb(poly_xy.intersection(b)))


def inside_mask(tile: Tile, poly_xy=None) -> np.ndarray:
    """Pixel centres of the tile inside the projected polygon (all True when poly_xy is None)."""
    if poly_xy is None:
        return np.ones((tile.size, tile.size), bool)
    xx, yy = tile.pixel_centres_xy()
    return shapely.contains_xy(poly_xy, xx, yy)


def sample_lonlat(aoi: Polygon | MultiPolygon, n: int = 25) -> tuple[np.ndarray, np.ndarray]:
    """Points spread over the AOI (a grid of its bbox, kept inside; plus a representative point)."""
    w, s, e, n_ = aoi.bounds
    gx, gy = np.meshgrid(np.linspace(w, e, n), np.linspace(s, n_, n))
    keep = shapely.contains_xy(aoi, gx, gy)
    rep = aoi.representative_point()
    lon = np.concatenate([gx[keep], [rep.x]])
    lat = np.concatenate([gy[keep], [rep.y]])
    return lon, lat


def aoi_area_km2(aoi: Polygon | MultiPolygon) -> float:
    return float(sum(project(p, e).area for e, p in zone_parts(aoi).items()) / 1e6)


def aoi_geojson(aoi: Polygon | MultiPolygon) -> dict:
    return mapping(aoi)


def tile_names(tasks: Iterable[TileTask]) -> list[str]:
    return [t.name for t in tasks]
