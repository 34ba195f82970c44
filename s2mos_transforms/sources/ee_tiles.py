"""The Earth Engine requests of the tile fan-out: which acquisitions touch a tile, then their
pixels on the tile's exact grid, decoded into the `ImageStack` contract.

Per tile and sensor: one metadata request (``computeFeatures`` over the collection filtered
to the tile and the dates: each image's ``system:index``, time and, for S2, its
``CLOUDY_PIXEL_PERCENTAGE``), then ``computePixels`` in NPY on the tile's grid (CRS code,
affine transform, dimensions) for as many images per request as stay under the 48 MB request
limit, counted as width × height × Σ(bytes per band + 1 mask byte). Each S1 image is one
slot; the S2 granules of one datatake are one slot (`s2_acquisitions`), as for points.

Masks are explicit: S2 bands are unmasked to 0 (the L2A no-data value, SCL 0 = no data) and
S1 bands to `S1_FILL` (read back as NaN), so a pixel an image does not cover is nodata in the
stack, never a silent zero reflectance.

With Cloud Score+ the S2 images carry ``cs_cdf`` too (``linkCollection`` on ``system:index``,
float32, unmasked to `CS_MISSING` where Cloud Score+ has no image or pixel) and the stack's
SCL is 9 (cloud) where it is below the threshold — `ee_requests.cloud_score_scl`, the one
rule of points and tiles.
"""
from __future__ import annotations

import datetime as dt
import io
from typing import Any, Callable

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile
from s2mos_transforms.sources.base import ImageStack, StackNeeds, s2_missing
from s2mos_transforms.sources.ee_requests import (CLOUD, CS_BAND, CS_MISSING, CS_PLUS_COLLECTION, INDEX,
                                                  S1_COLLECTION, S1_SELECT, S2_COLLECTION, S2_SELECT, TIME,
                                                  acquisition_ms, cloud_score_scl, datatake)

REQUEST_BYTES_MAX = 50_331_648            # 48 MB: 'Total request size … must be ≤ 50331648 bytes'
S2_BYTES_PER_PIXEL = len(S2_SELECT) * (2 + 1)        # int16 + one mask byte per band
S1_BYTES_PER_PIXEL = len(S1_SELECT) * (4 + 1)        # float32 + one mask byte per band
CS_BYTES_PER_PIXEL = 4 + 1                            # cs_cdf: float32 + its mask byte
# Bands of one computePixels request: ≤ 1 024 (Earth Engine's docs; toBands itself takes up to
# 5 000, its docstring in earthengine-api 1.7.35). Small tiles reach it before 48 MB: at 32 px
# the byte budget would allow ~1 500 S2 images, 16 000 bands.
MAX_BANDS_PER_REQUEST = 1024
S1_FILL = -9999.0


def grid(tile: Tile) -> dict[str, Any]:
    """The tile's exact pixel grid, as computePixels takes it."""
    return {"crsCode": f"EPSG:{tile.epsg}",
            "affineTransform": {"scaleX": float(tile.res), "shearX": 0.0, "translateX": float(tile.x_min),
                                "shearY": 0.0, "scaleY": -float(tile.res), "translateY": float(tile.y_max)},
            "dimensions": {"width": int(tile.size), "height": int(tile.size)}}


def bytes_per_pixel(sensor: str, cloud_score_plus: bool = False) -> int:
    """Bytes one image adds per pixel to a computePixels request (bands + mask bytes)."""
    if sensor == bands.SENSOR_S1:
        return S1_BYTES_PER_PIXEL
    return S2_BYTES_PER_PIXEL + (CS_BYTES_PER_PIXEL if cloud_score_plus else 0)


def bands_per_image(sensor: str, cloud_score_plus: bool = False) -> int:
    """Bands one image adds to a request (each also one mask byte per pixel in the limit)."""
    return len(S2_SELECT) + int(cloud_score_plus) if sensor == bands.SENSOR_S2 else len(S1_SELECT)


def images_per_request(tile: Tile, sensor: str, cloud_score_plus: bool = False) -> int:
    """How many images one computePixels request may carry under `REQUEST_BYTES_MAX` and
    `MAX_BANDS_PER_REQUEST`."""
    by_bytes = REQUEST_BYTES_MAX // (tile.size * tile.size * bytes_per_pixel(sensor, cloud_score_plus))
    by_bands = MAX_BANDS_PER_REQUEST // bands_per_image(sensor, cloud_score_plus)
    return max(1, min(by_bytes, by_bands))


def id_batches(ids: list[str], tile: Tile, sensor: str, cloud_score_plus: bool = False) -> list[list[str]]:
    """The images of a tile cut into computePixels requests of `images_per_request` each."""
    step = images_per_request(tile, sensor, cloud_score_plus)
    return [ids[lo:lo + step] for lo in range(0, len(ids), step)]


def _collection(sensor: str, tile: Tile, start: dt.date, end: dt.date):
    import ee
    x0, y0, x1, y1 = tile.bounds
    region = ee.Geometry.Rectangle([x0, y0, x1, y1], f"EPSG:{tile.epsg}", False)
    col = ee.ImageCollection(S2_COLLECTION if sensor == bands.SENSOR_S2 else S1_COLLECTION) \
        .filterBounds(region).filterDate(start.isoformat(), end.isoformat())
    if sensor == bands.SENSOR_S1:
        col = col.filter(ee.Filter.eq("instrumentMode", "IW")) \
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV")) \
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
    return col


def metadata_expression(sensor: str, tile: Tile, start: dt.date, end: dt.date):
    """One feature per image touching the tile: its index, time (ms) and (S2) scene cloud."""
    import ee

    def describe(img):
        props = {INDEX: img.get("system:index"), TIME: img.get("system:time_start")}
        if sensor == bands.SENSOR_S2:
            props[CLOUD] = img.get("CLOUDY_PIXEL_PERCENTAGE")
        return ee.Feature(None, props)

    return ee.FeatureCollection(_collection(sensor, tile, start, end).map(describe))


def pixels_expression(sensor: str, tile: Tile, start: dt.date, end: dt.date, ids: list[str],
                      cloud_score_plus: bool = False):
    """The images `ids` as one multi-band image (``toBands``: bands ``<index>_<band>``),
    masks made explicit (module docstring)."""
    import ee
    col = _collection(sensor, tile, start, end).filter(ee.Filter.inList("system:index", ids))
    if sensor == bands.SENSOR_S2 and cloud_score_plus:
        col = col.linkCollection(ee.ImageCollection(CS_PLUS_COLLECTION), [CS_BAND]).map(
            lambda img: img.select(list(S2_SELECT)).unmask(0).toInt16()
            .addBands(img.select([CS_BAND]).unmask(CS_MISSING).toFloat()))
    elif sensor == bands.SENSOR_S2:
        col = col.map(lambda img: img.select(list(S2_SELECT)).unmask(0).toInt16())
    else:
        col = col.map(lambda img: img.select(list(S1_SELECT)).unmask(S1_FILL).toFloat())
    return col.toBands()


def pixels_request(sensor: str, tile: Tile, start: dt.date, end: dt.date, ids: list[str],
                   cloud_score_plus: bool = False) -> dict[str, Any]:
    """The computePixels parameters for `ids` (the expression still an ``ee`` object)."""
    return {"expression": pixels_expression(sensor, tile, start, end, ids, cloud_score_plus), "fileFormat": "NPY",
            "grid": grid(tile)}


def fetch_pixels(sensor: str, tile: Tile, start: dt.date, end: dt.date, ids: list[str],
                 send: Callable[[Callable[[], Any]], Any], cloud_score_plus: bool = False) -> np.ndarray:
    """The NPY answer for `ids` as a structured array (H, W), fields ``<index>_<band>``."""
    import ee
    params = pixels_request(sensor, tile, start, end, ids, cloud_score_plus)
    raw = send(lambda: ee.data.computePixels(params))
    # One field per image and band: the header outgrows numpy's default 10 kB cap (it is a
    # literal read with ast.literal_eval; no pickle).
    return np.load(io.BytesIO(raw), allow_pickle=False, max_header_size=1 << 24)


def s2_acquisitions(meta: list[dict]) -> list[list[dict]]:
    """The S2 images of a tile grouped into acquisitions (one per datatake: granules of it
    that overlap hold the same pixels), by time; each group's images by ``system:index``."""
    groups: dict[Any, list[dict]] = {}
    for m in meta:
        take = datatake(m.get(INDEX))
        groups.setdefault(take if take is not None else ("image", str(m[INDEX])), []).append(m)
    out = [sorted(g, key=lambda m: str(m[INDEX])) for g in groups.values()]
    return sorted(out, key=lambda g: (acquisition_ms(g[0]), str(g[0][INDEX])))


def assemble(tile: Tile, s2_meta: list[dict], s2_pix: dict[str, np.ndarray], s1_meta: list[dict],
             s1_pix: dict[str, np.ndarray], cs_threshold: float | None = None) -> ImageStack:
    """The `ImageStack` from the images' metadata and their pixel fields: one S2 slot per
    acquisition (its granules merged, the first by index wins where they overlap, each
    pixel with the scene cloud — and Cloud Score+, with `cs_threshold` — of the granule it
    came from), one S1 slot per image."""
    h = w = tile.size
    takes = s2_acquisitions(s2_meta)
    t2, t1 = len(takes), len(s1_meta)
    s2 = np.zeros((t2, len(bands.S2_BANDS), h, w), np.int16)
    scl = np.zeros((t2, h, w), np.uint8)
    scene_cloud = np.full((t2, h, w), np.nan, np.float32)
    cs = np.full((t2, h, w), np.nan, np.float32) if cs_threshold is not None else None
    for k, granules in enumerate(takes):
        for m in granules:
            g_s2 = np.stack([np.asarray(s2_pix[f"{m[INDEX]}_{name}"], np.int16) for name in bands.S2_BANDS])
            g_scl = np.asarray(s2_pix[f"{m[INDEX]}_SCL"], np.uint8)
            take = s2_missing(s2[k][None], scl[k][None])[0] & ~s2_missing(g_s2[None], g_scl[None])[0]
            s2[k][:, take] = g_s2[:, take]
            scl[k][take] = g_scl[take]
            scene_cloud[k][take] = np.nan if m.get(CLOUD) is None else np.float32(m[CLOUD])
            if cs is not None:
                cs[k][take] = np.asarray(s2_pix[f"{m[INDEX]}_{CS_BAND}"], np.float32)[take]
    if cs is not None:
        scl = cloud_score_scl(scl, cs, cs_threshold)
    s1 = np.full((t1, len(bands.S1_BANDS), h, w), np.nan, np.float32)
    angle = np.full(t1, np.nan, np.float32)
    for k, m in enumerate(s1_meta):
        for b, name in enumerate(bands.S1_BANDS):
            v = np.asarray(s1_pix[f"{m[INDEX]}_{name}"], np.float32)
            s1[k, b] = np.where(v == S1_FILL, np.nan, v)
        a = np.asarray(s1_pix[f"{m[INDEX]}_angle"], np.float32)
        a = a[a != S1_FILL]
        if a.size:
            angle[k] = np.float32(a.mean(dtype=np.float64))
    s2_times = (np.array([acquisition_ms(g[0]) for g in takes], np.int64) // 1000).astype("datetime64[s]")
    return ImageStack(tile=tile, s2_times=s2_times, s2=s2, scl=scl, scene_cloud_pct=scene_cloud,
                      s1_times=_times(s1_meta), s1=s1, angle=angle)


def usable_meta(s2_meta: list[dict], s1_meta: list[dict], needs: StackNeeds) -> tuple[list[dict], list[dict]]:
    """The images whose pixels a map can use (`StackNeeds`), in the order given: the granules
    of every S2 acquisition with at least one granule passing the scene filter (all of them,
    so the first-by-index rule of `assemble` merges the same pixels), and the S1 images that
    could pair with one of those acquisitions."""
    takes = s2_acquisitions(s2_meta)
    clouds = np.full((len(takes), max((len(g) for g in takes), default=0)), np.inf)
    for k, granules in enumerate(takes):
        clouds[k, :len(granules)] = [np.nan if m.get(CLOUD) is None else float(m[CLOUD]) for m in granules]
    kept = [g for g, keep in zip(takes, needs.scenes(clouds)) if keep]
    kept_ids = {str(m[INDEX]) for g in kept for m in g}
    s2_times = (np.array([acquisition_ms(g[0]) for g in kept], np.int64) // 1000).astype("datetime64[s]")
    s1_keep = needs.s1_dates(s2_times, _times(s1_meta))
    return [m for m in s2_meta if str(m[INDEX]) in kept_ids], [m for m, k in zip(s1_meta, s1_keep) if k]


def sort_meta(features: list[dict]) -> list[dict]:
    """Image metadata from computeFeatures, by time then index (one slot each)."""
    meta = [f.get("properties", {}) for f in features]
    return sorted(meta, key=lambda m: (int(m[TIME]), str(m[INDEX])))


def _times(meta: list[dict]) -> np.ndarray:
    ms = np.array([int(m[TIME]) for m in meta], np.int64)
    return (ms // 1000).astype("datetime64[s]")
