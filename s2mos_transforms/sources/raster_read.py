"""Reading one GeoTIFF at points or onto a map tile's grid, whatever its CRS and resolution.

Only what is needed is read: a 1 × 1 window per point, and for a tile the file's window
under the tile (GDAL's warper through a `WarpedVRT` pulls only the source blocks it needs),
so a stack much larger than memory maps with memory bounded by one tile.

Resampling onto the tile grid: reflectance and S1 bilinear, SCL nearest. S1 is resampled in
the unit the file stores (a ``linear`` power file is averaged in power, then converted to dB;
a dB file in dB). A file already on the tile's grid (same CRS and pixel size, pixel edges on
the grid) is read directly, without resampling, so its values come out unchanged.
"""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np

from s2mos_transforms.grid import Tile


@dataclasses.dataclass(frozen=True)
class Header:
    """What the index needs of a file without reading pixels."""

    crs: object
    transform: object
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None


def header(path: str) -> Header:
    """The file's grid and band count (cached per process and file version: a worker opens
    each header once; a rewritten file is read again)."""
    return _header(path, _version(path))


def _version(path: str) -> tuple | None:
    """(mtime, size) of a local file: part of every cache key, so a rewritten file is re-read."""
    import os
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=65536)
def _header(path: str, version) -> Header:
    import rasterio
    with rasterio.open(path) as ds:
        return Header(ds.crs, ds.transform, ds.width, ds.height, ds.count, ds.dtypes[0], ds.nodata)


def lonlat_bounds(path: str) -> tuple[float, float, float, float]:
    """(W, S, E, N) of the file in WGS84 degrees (densified edges)."""
    return _lonlat_bounds(path, _version(path))


@lru_cache(maxsize=65536)
def _lonlat_bounds(path: str, version) -> tuple[float, float, float, float]:
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds
    h = header(path)
    w, s, e, n = array_bounds(h.height, h.width, h.transform)
    return tuple(transform_bounds(h.crs, "EPSG:4326", w, s, e, n, densify_pts=21))


def projected_bounds(path: str, epsg: int) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the file's footprint in EPSG `epsg` (densified edges)."""
    return _projected_bounds(path, epsg, _version(path))


@lru_cache(maxsize=65536)
def _projected_bounds(path: str, epsg: int, version) -> tuple[float, float, float, float]:
    from rasterio.transform import array_bounds
    from rasterio.warp import transform_bounds
    h = header(path)
    w, s, e, n = array_bounds(h.height, h.width, h.transform)
    return tuple(transform_bounds(h.crs, f"EPSG:{epsg}", w, s, e, n, densify_pts=21))


def touches(path: str, tile: Tile) -> bool:
    """Whether the file's footprint overlaps the tile (in the tile's CRS)."""
    x0, y0, x1, y1 = projected_bounds(path, tile.epsg)
    tx0, ty0, tx1, ty1 = tile.bounds
    return x0 < tx1 and x1 > tx0 and y0 < ty1 and y1 > ty0


def src_nodata(h: Header, fill: float) -> float:
    """The file's declared nodata, else `fill` (0 for L2A integers, NaN for S1 floats)."""
    return fill if h.nodata is None else float(h.nodata)


def _aligned_window(h: Header, tile: Tile):
    """The tile as an integer window of the file when the file is on the tile's grid, else None."""
    from rasterio.crs import CRS
    t = h.transform
    if h.crs is None or CRS.from_user_input(h.crs) != CRS.from_epsg(tile.epsg):
        return None
    if not (np.isclose(t.a, tile.res) and np.isclose(t.e, -tile.res) and t.b == 0 and t.d == 0):
        return None
    col = (tile.x_min - t.c) / tile.res
    row = (t.f - tile.y_max) / tile.res
    if not (np.isclose(col, round(col), atol=1e-6) and np.isclose(row, round(row), atol=1e-6)):
        return None
    from rasterio.windows import Window
    return Window(int(round(col)), int(round(row)), tile.size, tile.size)


def read_onto_tile(path: str, indexes: list[int], tile: Tile, nearest: bool, fill: float, dtype) -> np.ndarray:
    """Bands `indexes` (1-based) of `path` on the tile's grid, (k, H, W) of `dtype`; `fill`
    (the file's nodata maps to it) wherever the file has no data. One open per file."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    h = header(path)
    nd = src_nodata(h, fill)
    with rasterio.open(path) as ds:
        win = _aligned_window(h, tile)
        if win is not None:
            out = ds.read(list(indexes), window=win, boundless=True, fill_value=nd).astype(dtype)
        else:
            with WarpedVRT(ds, crs=f"EPSG:{tile.epsg}", transform=tile.transform, width=tile.size,
                           height=tile.size, src_nodata=nd, nodata=nd,
                           resampling=Resampling.nearest if nearest else Resampling.bilinear) as vrt:
                out = vrt.read(list(indexes)).astype(dtype)
    if not (isinstance(nd, float) and np.isnan(nd)) and nd != fill:
        out[out == nd] = fill
    return out


def sample_points(path: str, indexes: list[int], lon: np.ndarray, lat: np.ndarray, fill: float) -> np.ndarray:
    """Bands `indexes` of `path` at each lon/lat: the value of the pixel holding the point (its
    native pixel, no interpolation), `fill` outside the file or on its nodata. float64 (n, k)."""
    import rasterio
    from rasterio.warp import transform
    from rasterio.windows import Window

    h = header(path)
    nd = src_nodata(h, fill)
    out = np.full((len(lon), len(indexes)), fill, np.float64)
    if not len(lon):
        return out
    xs, ys = transform("EPSG:4326", h.crs, list(map(float, lon)), list(map(float, lat)))
    inv, xs, ys = ~h.transform, np.asarray(xs), np.asarray(ys)
    cols, rows = inv.a * xs + inv.b * ys + inv.c, inv.d * xs + inv.e * ys + inv.f
    cols, rows = np.floor(cols).astype(np.int64), np.floor(rows).astype(np.int64)
    inside = np.flatnonzero((cols >= 0) & (cols < h.width) & (rows >= 0) & (rows < h.height))
    if inside.size:
        with rasterio.open(path) as ds:
            for i in inside:
                out[i] = ds.read(list(indexes), window=Window(int(cols[i]), int(rows[i]), 1, 1))[:, 0, 0]
    if not (isinstance(nd, float) and np.isnan(nd)):
        out[out == nd] = fill
    return out
