"""Reprojecting a datacube's window onto a map tile (the `datacube` source's other grids).

Only the cube pixels under the tile (plus `datacube.PAD`) are read; every time step of a
variable is warped in one `rasterio.warp.reproject` call. Reflectance and backscatter (dB)
are resampled bilinearly, SCL and scene cloud with the nearest pixel; NaN (reflectance,
backscatter, cloud) and 0 (reflectance, SCL) are nodata on both sides, so pixels the cube does not cover,
and bilinear kernels that touch nodata, come out nodata.
"""
from __future__ import annotations

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile


def _window(src, tile: Tile) -> tuple[slice, slice] | None:
    """Rows and columns of the cube under the tile (padded), None when they do not meet."""
    from rasterio.crs import CRS
    from rasterio.warp import transform_bounds
    from s2mos_transforms.sources.datacube import PAD
    c = src.cube
    x0, y0, x1, y1 = transform_bounds(CRS.from_epsg(tile.epsg), CRS.from_wkt(c.crs.to_wkt()),
                                      *tile.bounds, densify_pts=21)
    c0, c1 = int(np.floor((x0 - c.x0) / c.res_x)) - PAD, int(np.ceil((x1 - c.x0) / c.res_x)) + PAD
    r0, r1 = int(np.floor((c.y0 - y1) / c.res_y)) - PAD, int(np.ceil((c.y0 - y0) / c.res_y)) + PAD
    c0, c1, r0, r1 = max(c0, 0), min(c1, c.width), max(r0, 0), min(r1, c.height)
    if c0 >= c1 or r0 >= r1:
        return None
    return slice(r0, r1), slice(c0, c1)


def _warp(data: np.ndarray, src_transform, src_crs, tile: Tile, nodata, resampling) -> np.ndarray:
    """(N, h, w) → (N, size, size) on the tile's grid."""
    from rasterio.crs import CRS
    from rasterio.warp import reproject
    out = np.full((data.shape[0], tile.size, tile.size), nodata, data.dtype)
    if data.shape[0] == 0:
        return out
    reproject(np.ascontiguousarray(data), out, src_transform=src_transform, src_crs=src_crs, src_nodata=nodata,
              dst_transform=tile.transform, dst_crs=CRS.from_epsg(tile.epsg), dst_nodata=nodata,
              resampling=resampling, UNIFIED_SRC_NODATA="NO")   # each band its own nodata
    return out


def reprojected(src, tile: Tile, t2: np.ndarray, t1: np.ndarray):
    """(L2A numbers int16 (T2, 10, n, n) 0 = missing, SCL uint8 or None, cloud (T2, n, n), S1 (T1, 2, n, n))."""
    from rasterio.crs import CRS
    from affine import Affine
    from rasterio.enums import Resampling
    c = src.cube
    n, nb = tile.size, len(bands.S2_BANDS)
    dn = np.zeros((len(t2), nb, n, n), np.int16)
    scl = None if c.scl is None else np.zeros((len(t2), n, n), np.uint8)
    cloud = np.full((len(t2), n, n), np.nan, np.float32)
    s1 = np.full((len(t1), 2, n, n), np.nan, np.float32)
    win = _window(src, tile)
    if win is None:
        return dn, scl, cloud, s1
    rs, cs = win
    h, w = rs.stop - rs.start, cs.stop - cs.start
    at = c.transform @ Affine.translation(cs.start, rs.start)          # the window's own transform
    crs = CRS.from_wkt(c.crs.to_wkt())
    d, s = src._s2(t2, rs, cs)
    # Warp only the time steps with data in the window (a cube over several orbits holds many
    # steps that miss this tile); the others stay nodata.
    ok = (d != 0).all(axis=1) & (True if s is None else s != bands.SCL_NO_DATA)
    k2 = np.flatnonzero(ok.any(axis=(1, 2)))
    dn[k2] = _warp(d[k2].reshape(-1, h, w), at, crs, tile, 0, Resampling.bilinear).reshape(len(k2), nb, n, n)
    if scl is not None:
        scl[k2] = _warp(s[k2], at, crs, tile, bands.SCL_NO_DATA, Resampling.nearest)
    cloud[k2] = _warp(src._cloud(t2, rs, cs, (len(t2), h, w))[k2].astype(np.float32), at, crs, tile, np.nan,
                      Resampling.nearest)
    v = src._s1(t1, rs, cs)
    k1 = np.flatnonzero(np.isfinite(v).any(axis=(1, 2, 3)))
    s1[k1] = _warp(v[k1].reshape(-1, h, w), at, crs, tile, np.nan, Resampling.bilinear).reshape(len(k1), 2, n, n)
    return dn, scl, cloud, s1
