"""Low-resolution overviews of a map, one COG per UTM zone, made on the workers.

A continental map has a million tiles; nothing that reads them all one by one (a VRT's
decimated read, the quicklook) finishes on one machine. So each written tile is read once more
on a worker, averaged down to ``OVERVIEW_PX`` × ``OVERVIEW_PX`` pixels (GDAL's average over
the COG's own overviews, nodata left out; for ``aoa`` the share of pixels inside), and a
zone's previews are put side by side in ``overview_<epsg>.tif``: every map band at 1/64 of the
resolution for 256 px tiles (640 m at 10 m; Europe's largest zone ≈ 700 × 4 200 px, 82 MB of
float32 on the worker that writes it, `benchmarks/bench_finish.py`). The quicklook of a map
too large for its VRT is drawn from them (several zones: reprojected onto one
longitude/latitude grid).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from s2mos_transforms import fileio
from s2mos_transforms.maps import cog

OVERVIEW_PX = 4            # overview pixels per tile side
PREFIX = "overview_"


def overview_path(out: str, epsg: int) -> str:
    return f"{out.rstrip('/')}/{PREFIX}{epsg}.tif"


def tile_preview(path: str, px: int = OVERVIEW_PX) -> np.ndarray:
    """Every map band of one tile COG averaged down to (bands, px, px) float32, NaN where
    no pixel of the cell has a value."""
    import rasterio
    from rasterio.enums import Resampling

    with fileio.local_copy(path) as local, rasterio.open(local) as ds:
        data = ds.read(out_shape=(ds.count, px, px), resampling=Resampling.average, masked=True)
    out = np.full((len(cog.BAND_NAMES), px, px), np.nan, np.float32)
    out[:data.shape[0]] = data.astype(np.float32).filled(np.nan)
    return out


def zone_mosaic(previews: Iterable[tuple[int, int, np.ndarray]], size: int, res: float,
                px: int = OVERVIEW_PX):
    """(col, row, preview) of one zone's tiles → (bands, H, W) float32 with `cog.NODATA` where
    there is none, and its affine transform in the zone's metres."""
    from affine import Affine

    items = list(previews)
    cols = [c for c, _, _ in items]
    rows = [r for _, r, _ in items]
    c0, c1, r0, r1 = min(cols), max(cols), min(rows), max(rows)
    data = np.full((len(cog.BAND_NAMES), (r1 - r0 + 1) * px, (c1 - c0 + 1) * px), cog.NODATA, np.float32)
    for col, row, p in items:
        y, x = (r1 - row) * px, (col - c0) * px
        data[:, y:y + px, x:x + px] = np.where(np.isfinite(p), p, cog.NODATA)
    span = size * res
    return data, Affine(span / px, 0.0, c0 * span, 0.0, -span / px, (r1 + 1) * span)


def write_zone_overview(out: str, epsg: int, previews: Iterable[tuple[int, int, np.ndarray]],
                        size: int, res: float, px: int = OVERVIEW_PX) -> str:
    """``overview_<epsg>.tif`` (a COG, every map band) from the zone's tile previews."""
    data, transform = zone_mosaic(previews, size, res, px)
    return cog.write_cog(overview_path(out, epsg), data, transform, f"EPSG:{epsg}",
                         tags={"s2mos:overview": f"average of {size // px} x {size // px} map pixels"})


def geographic_mosaic(paths: Sequence[str], dest: str, max_pixels: int = 2048) -> str:
    """The zones' overviews reprojected (average) onto one EPSG:4326 grid over their union, at
    most `max_pixels` on a side, written to the local GeoTIFF `dest` (for the quicklook)."""
    import contextlib

    import rasterio
    from rasterio.transform import from_bounds
    from rasterio.warp import Resampling, reproject, transform_bounds

    nb = len(cog.BAND_NAMES)
    with contextlib.ExitStack() as stack:                # each overview fetched and opened once
        zones = [stack.enter_context(rasterio.open(stack.enter_context(fileio.local_copy(p)))) for p in paths]
        bounds = [transform_bounds(ds.crs, "EPSG:4326", *ds.bounds) for ds in zones]
        w, s = min(b[0] for b in bounds), min(b[1] for b in bounds)
        e, n = max(b[2] for b in bounds), max(b[3] for b in bounds)
        scale = max(e - w, n - s) / max_pixels
        width, height = max(1, round((e - w) / scale)), max(1, round((n - s) / scale))
        transform = from_bounds(w, s, e, n, width, height)
        out = np.full((nb, height, width), cog.NODATA, np.float32)
        for ds in zones:
            part = np.full_like(out, cog.NODATA)
            reproject(ds.read(), part, src_transform=ds.transform, src_crs=ds.crs, src_nodata=cog.NODATA,
                      dst_transform=transform, dst_crs="EPSG:4326", dst_nodata=cog.NODATA,
                      resampling=Resampling.average)
            fill = (out == cog.NODATA) & (part != cog.NODATA)
            out[fill] = part[fill]
    profile = {"driver": "GTiff", "dtype": "float32", "count": nb, "width": width, "height": height,
               "crs": "EPSG:4326", "transform": transform, "nodata": cog.NODATA}
    with rasterio.open(dest, "w", **profile) as ds:
        ds.write(out)
        for i, name in enumerate(cog.BAND_NAMES, start=1):
            ds.set_band_description(i, name)
    return dest
