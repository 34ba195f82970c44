"""`s2mos world export --format geotiff-stack`: the embedded world's AOI as a GeoTIFF stack.

The layout is the one the ``geotiff`` source reads (README, "Your own Sentinel files"), so
users see what to bring and tests can round-trip:

    OUT/index.csv                                   path, sensor, datetime, band, unit, scene,
                                                    scene_cloud_pct, angle (one row per file)
    OUT/S2/<YYYYMMDDTHHMMSS>_<scene>/B2_B3_B4_B5_B6_B7_B8_B8A_B11_B12.tif   uint16 L2A × 10 000, 0 = nodata
    OUT/S2/<YYYYMMDDTHHMMSS>_<scene>/SCL.tif        uint8, 0 = nodata
    OUT/S1/<YYYYMMDDTHHMMSS>_<scene>/VV.tif, VH.tif float32 dB, NaN = nodata
    OUT/<sensor>/<acquisition>/meta.json            scene_cloud_pct / angle (the folder convention)
    OUT/aoi_samples.csv, OUT/stack.json             the AOI's sample points; a summary

One acquisition per sensor overpass and scene: an S2 scene is one orbit band and one 1°
granule (its own scene cloud %), an S1 scene one orbit band. Everything is on one 10 m grid in
the AOI's UTM zone, aligned to the map's tile grid, so a map of the stack reads it without
resampling and gives exactly the values of ``--source synthetic``. The world is simulated tile
by tile (``tile_size`` px), S2 then S1, and each tile is written as one block of every file
it touches (sparse GeoTIFFs: blocks no acquisition covers are never written), so memory stays
bounded by one sensor's stack of one tile.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from s2mos_transforms import bands, fileio
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import Tile, lonlat_to_xy, utm_epsg
from s2mos_transforms.sources.base import SensorNeeds, s2_missing
from s2mos_transforms.sources.synthetic import SyntheticSource
from s2mos_transforms.world.simulator import GRANULE_DEG, orbit_band

S2_FILE = "_".join(bands.S2_BANDS) + ".tif"
INDEX_COLUMNS = ("path", "sensor", "datetime", "band", "unit", "scene", "scene_cloud_pct", "angle")


def export_geotiff_stack(preset: str, out: str, seed: int | None = None,
                         bbox: tuple[float, float, float, float] | None = None,
                         tile_size: int = 64, progress: bool = True) -> dict:
    """Write the AOI (or `bbox`, W S E N degrees) of a preset as a GeoTIFF stack; a summary."""
    from tqdm import tqdm

    if tile_size < 16 or tile_size % 16:
        raise UserError(f"--tile-size must be a multiple of 16, got {tile_size}")
    source = SyntheticSource(preset, seed)
    fileio.check_writable(out, "--out")
    region = tuple(bbox) if bbox is not None else source.preset.aoi_bbox
    w, s, e, n = region
    if not (w < e and s < n and source.covers(np.array([s, n]), np.array([w, e])).all()):
        raise UserError(f"--bbox {w} {s} {e} {n} is empty or outside the '{preset}' world")
    epsg = utm_epsg((s + n) / 2, (w + e) / 2)
    tiles = _tiles_over(epsg, region, tile_size)
    local = out if not fileio.is_remote(out) else tempfile.mkdtemp(prefix="s2mos-stack-")
    os.makedirs(local, exist_ok=True)
    cols = [t.col for t in tiles]
    rows = [t.row for t in tiles]
    grid = Tile(epsg, min(cols), max(rows), tile_size)     # the stack's upper-left tile
    width, height = (max(cols) - min(cols) + 1) * tile_size, (max(rows) - min(rows) + 1) * tile_size
    writer = _StackWriter(local, epsg, grid.x_min, grid.y_max, width, height, tile_size)
    for tile in tqdm(tiles, desc=f"world export geotiff-stack ({preset})", unit="tile", disable=not progress):
        for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):     # one sensor's stack in memory at a time
            stack = source.tile_stack(tile, source.preset.start, source.preset.end, needs=SensorNeeds(sensor=sensor))
            writer.write_tile(stack)
            del stack
    index = writer.finish()
    samples = source.sample_points(min(24, source.preset.n_points), within_aoi=True)
    summary = {"preset": preset, "seed": source.seed, "epsg": epsg, "bbox": list(region),
               "width": width, "height": height, "tile_size": tile_size,
               "start": source.preset.start, "end": source.preset.end,
               "s2_acquisitions": writer.count(bands.SENSOR_S2), "s1_acquisitions": writer.count(bands.SENSOR_S1),
               "files": len(index)}
    with open(os.path.join(local, "index.csv"), "w", encoding="utf-8") as fh:
        fh.write(",".join(INDEX_COLUMNS) + "\n")
        fh.writelines(",".join(str(r[c]) for c in INDEX_COLUMNS) + "\n" for r in index)
    with open(os.path.join(local, "aoi_samples.csv"), "w", encoding="utf-8") as fh:
        fh.write(samples.to_csv(index=False))
    with open(os.path.join(local, "stack.json"), "w", encoding="utf-8") as fh:
        fh.write(json.dumps(summary, indent=2))
    if local != out:
        fileio.copy_tree_to(local, out)
        fileio.remove_local_tree(local)
    return summary


def _tiles_over(epsg: int, bbox, size: int) -> list[Tile]:
    """Every tile of the grid touching the projected bbox (corners and edge midpoints)."""
    w, s, e, n = bbox
    lon = np.array([w, e, w, e, (w + e) / 2, (w + e) / 2, w, e])
    lat = np.array([s, s, n, n, s, n, (s + n) / 2, (s + n) / 2])
    xs, ys = lonlat_to_xy(epsg, lon, lat)
    span = size * 10.0
    c0, c1 = int(np.floor(np.min(xs) / span)), int(np.floor(np.max(xs) / span))
    r0, r1 = int(np.floor(np.min(ys) / span)), int(np.floor(np.max(ys) / span))
    return [Tile(epsg, c, r, size) for r in range(r1, r0 - 1, -1) for c in range(c0, c1 + 1)]


def _scene_keys(stack) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of the tile: its S2 scene (orbit band and 1° granule) and its S1 scene (band)."""
    lon, lat = stack.tile.pixel_centres_lonlat()
    band = orbit_band(lon)
    gi, gj = np.floor(lat / GRANULE_DEG).astype(int), np.floor(lon / GRANULE_DEG).astype(int)
    s2 = np.array([f"o{b:03d}_{'N' if a >= 0 else 'S'}{abs(a):02d}{'E' if o >= 0 else 'W'}{abs(o):03d}"
                   for b, a, o in zip(band.ravel(), gi.ravel(), gj.ravel())]).reshape(lon.shape)
    s1 = np.array([f"o{b:03d}" for b in band.ravel()]).reshape(lon.shape)
    return s2, s1


class _StackWriter:
    """Creates each acquisition's files on first sight (sparse, tiled, deflate) and writes
    each map tile as one block of them."""

    def __init__(self, root: str, epsg: int, x0: float, y1: float, width: int, height: int, block: int):
        from affine import Affine
        self.root, self.epsg, self.width, self.height, self.block = root, epsg, width, height, block
        self.x0, self.y1 = x0, y1
        self.transform = Affine(10.0, 0.0, x0, 0.0, -10.0, y1)
        self.acqs: dict[tuple, dict] = {}

    def count(self, sensor: str) -> int:
        return sum(1 for k in self.acqs if k[0] == sensor)

    def _files(self, sensor: str, time, scene: str, meta: dict) -> dict:
        key = (sensor, str(time), scene)
        acq = self.acqs.get(key)
        if acq is None:
            stamp = str(time).replace("-", "").replace(":", "")
            folder = os.path.join(sensor, f"{stamp}_{scene}")
            os.makedirs(os.path.join(self.root, folder), exist_ok=True)
            if sensor == bands.SENSOR_S2:
                files = {S2_FILE: ("uint16", len(bands.S2_BANDS), 0), "SCL.tif": ("uint8", 1, 0)}
            else:
                files = {"VV.tif": ("float32", 1, float("nan")), "VH.tif": ("float32", 1, float("nan"))}
            for name, (dtype, count, nodata) in files.items():
                self._create(os.path.join(self.root, folder, name), dtype, count, nodata)
            with open(os.path.join(self.root, folder, "meta.json"), "w", encoding="utf-8") as fh:
                fh.write(json.dumps(meta))
            acq = self.acqs[key] = {"folder": folder, "files": files, "time": time, "meta": meta}
        return acq

    def _create(self, path: str, dtype: str, count: int, nodata) -> None:
        import rasterio
        profile = {"driver": "GTiff", "width": self.width, "height": self.height, "count": count,
                   "dtype": dtype, "crs": f"EPSG:{self.epsg}", "transform": self.transform, "nodata": nodata,
                   "tiled": True, "blockxsize": self.block, "blockysize": self.block, "compress": "deflate",
                   "sparse_ok": True}
        with rasterio.open(path, "w", **profile):
            pass

    def _write(self, path: str, data: np.ndarray, window) -> None:
        import rasterio
        with rasterio.open(path, "r+") as ds:
            ds.write(data, window=window)

    def write_tile(self, stack) -> None:
        import rasterio
        from rasterio.windows import Window
        t = stack.tile
        window = Window(int(round((t.x_min - self.x0) / 10.0)), int(round((self.y1 - t.y_max) / 10.0)), t.size, t.size)
        (s2_names, s2_code), (s1_names, s1_code) = (np.unique(k, return_inverse=True) for k in _scene_keys(stack))
        s2_code, s1_code = s2_code.reshape(t.size, t.size), s1_code.reshape(t.size, t.size)
        missing = s2_missing(stack.s2, stack.scl)
        covered = np.isfinite(stack.s1).all(axis=1)
        with rasterio.Env():                          # one GDAL environment for every file written
            for j, time in enumerate(stack.s2_times):
                for code in np.unique(s2_code[~missing[j]]):
                    px = (s2_code == code) & ~missing[j]
                    pct = np.unique(stack.scene_cloud_pct[j][px])
                    meta = {"scene_cloud_pct": float(pct[0]) if pct.size == 1 else float("nan")}
                    acq = self._files(bands.SENSOR_S2, time, str(s2_names[code]), meta)
                    refl = np.where(px[None], stack.s2[j], 0).astype(np.uint16)
                    scl = np.where(px, stack.scl[j], bands.SCL_NO_DATA).astype(np.uint8)
                    self._write(os.path.join(self.root, acq["folder"], S2_FILE), refl, window)
                    self._write(os.path.join(self.root, acq["folder"], "SCL.tif"), scl[None], window)
            for j, time in enumerate(stack.s1_times):
                for code in np.unique(s1_code[covered[j]]):
                    px = (s1_code == code) & covered[j]
                    acq = self._files(bands.SENSOR_S1, time, str(s1_names[code]),
                                      {"angle": float(stack.angle[j]), "unit": "dB"})
                    for k, name in enumerate(("VV.tif", "VH.tif")):
                        data = np.where(px, stack.s1[j, k], np.nan).astype(np.float32)
                        self._write(os.path.join(self.root, acq["folder"], name), data[None], window)

    def finish(self) -> list[dict]:
        """The index rows, one per file, in time order."""
        rows = []
        for (sensor, _, scene), acq in sorted(self.acqs.items(), key=lambda kv: (kv[0][1], kv[0][0], kv[0][2])):
            meta = acq["meta"]
            for name in acq["files"]:
                band = ";".join(bands.S2_BANDS) if name == S2_FILE else name[:-4]
                rows.append({"path": f"{acq['folder']}/{name}".replace(os.sep, "/"), "sensor": sensor,
                             "datetime": f"{acq['time']}Z", "band": band,
                             "unit": "dB" if sensor == bands.SENSOR_S1 else "", "scene": scene,
                             "scene_cloud_pct": _num(meta.get("scene_cloud_pct")), "angle": _num(meta.get("angle"))})
        return rows


def _num(v) -> str:
    """A float32 value as text that reads back to the same float32 ('' when unknown)."""
    return "" if v is None or not np.isfinite(v) else repr(float(np.float32(v)))
