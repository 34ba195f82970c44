"""`s2mos world export --format datacube`: the embedded world's AOI as a netCDF or Zarr cube.

The cube is what ``--source datacube`` reads (README, "Datacubes (netCDF / Zarr)"), so users
see the expected layout and the tests can round-trip: the AOI's 10 m grid in its UTM zone
(`world.export.aoi_grid`), S2 on time ``t`` (int16 L2A numbers with ``scale_factor`` 0.0001,
0 = nodata; uint8 SCL; per-pixel ``scene_cloud_pct``), S1 on time ``t_s1`` (float32 VV/VH dB,
NaN = nodata; ``angle`` per acquisition), a CF grid mapping ``crs`` (crs_wkt, spatial_ref,
epsg_code). The values are the same integers and floats `SyntheticSource.tile_stack` gives,
so the cube maps to identical COGs. It is written tile by tile (`world._cube_writer`): one
simulation tile's S2 stack, then its S1 stack, is in memory at a time, whatever the AOI.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from s2mos_transforms import bands, fileio
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import Tile, lonlat_to_xy, utm_epsg
from s2mos_transforms.sources.base import SensorNeeds
from s2mos_transforms.sources.synthetic import SyntheticSource
from s2mos_transforms.world._cube_writer import Var, open_writer

TILE = 64                   # simulation tiles: small, so little is simulated outside the cube


def bbox_grid(bbox: tuple[float, float, float, float]) -> tuple[int, float, float, int, int]:
    """A lon/lat bbox's 10 m grid in its UTM zone, (epsg, x_min, y_max, width, height): the
    rule of `world.export.aoi_grid`, for any bbox."""
    w, s, e, n = bbox
    epsg = utm_epsg((s + n) / 2, (w + e) / 2)
    xs, ys = lonlat_to_xy(epsg, [w, e, w, e], [s, s, n, n])
    x0, x1 = np.floor(np.min(xs) / 10) * 10, np.ceil(np.max(xs) / 10) * 10
    y0, y1 = np.floor(np.min(ys) / 10) * 10, np.ceil(np.max(ys) / 10) * 10
    return epsg, float(x0), float(y1), int((x1 - x0) / 10), int((y1 - y0) / 10)


def _tiles(epsg: int, x0: float, y1: float, width: int, height: int):
    """Every simulation tile over the cube's pixels: (tile, cube rows, cube cols, tile rows, tile cols)."""
    span = TILE * 10.0
    for row in range(int(np.floor((y1 - 1e-6) / span)), int(np.floor((y1 - height * 10) / span)) - 1, -1):
        for col in range(int(np.floor(x0 / span)), int(np.floor((x0 + width * 10 - 1e-6) / span)) + 1):
            tile = Tile(epsg, col, row, TILE)
            c0, r0 = int(round((tile.x_min - x0) / 10)), int(round((y1 - tile.y_max) / 10))
            rs, cs = slice(max(r0, 0), min(r0 + TILE, height)), slice(max(c0, 0), min(c0 + TILE, width))
            if rs.start < rs.stop and cs.start < cs.stop:
                yield tile, rs, cs, slice(rs.start - r0, rs.stop - r0), slice(cs.start - c0, cs.stop - c0)


def time_axes(source: SyntheticSource, epsg: int, x0: float, y1: float, width: int, height: int):
    """(S2 times, S1 times, S1 angle per time): the acquisitions of every orbit band over the
    cube's pixel centres, as `SyntheticSource.tile_stack` schedules them."""
    from s2mos_transforms.grid import xy_to_lonlat
    from s2mos_transforms.world.simulator import orbit_band
    xs = x0 + (np.arange(width) + 0.5) * 10.0
    found: set[int] = set()
    for r0 in range(0, height, 256):                       # row blocks bound the memory
        yy = y1 - (np.arange(r0, min(height, r0 + 256)) + 0.5) * 10.0
        xx, yy = np.meshgrid(xs, yy)
        found |= set(np.unique(orbit_band(np.asarray(xy_to_lonlat(epsg, xx, yy)[0]))).tolist())
    s2 = [source.world.s2_schedule(b) for b in sorted(found)]
    s1 = [source.world.s1_schedule(b) for b in sorted(found)]
    t2 = np.concatenate([sc.times for sc in s2]).astype("datetime64[s]")
    t1 = np.concatenate([sc.times for sc in s1]).astype("datetime64[s]")
    angle = np.concatenate([np.broadcast_to(np.float32(sc.angle), len(sc.times)) for sc in s1])
    if np.unique(t2).size != t2.size or np.unique(t1).size != t1.size:
        raise UserError("two orbits acquire at the same instant: a cube time axis cannot hold both")
    o2, o1 = np.argsort(t2), np.argsort(t1)
    return t2[o2], t1[o1], angle[o1].astype(np.float32)


def _variables(epsg: int, x0: float, y1: float, width: int, height: int, t2, t1, angle) -> dict:
    from pyproj import CRS
    crs = CRS.from_epsg(epsg)
    gm = {"grid_mapping": "crs"}
    chunk = (8, min(TILE, height), min(TILE, width))
    seconds = {"units": "seconds since 1970-01-01", "calendar": "proleptic_gregorian"}
    v = {"t": Var(("t",), np.int64, {"standard_name": "time", **seconds}, values=t2.astype(np.int64)),
         "t_s1": Var(("t_s1",), np.int64, {"standard_name": "time", **seconds}, values=t1.astype(np.int64)),
         "x": Var(("x",), np.float64, {"standard_name": "projection_x_coordinate", "units": "m"},
                  values=x0 + (np.arange(width) + 0.5) * 10.0),
         "y": Var(("y",), np.float64, {"standard_name": "projection_y_coordinate", "units": "m"},
                  values=y1 - (np.arange(height) + 0.5) * 10.0)}
    for b in bands.S2_BANDS:
        v[b] = Var(("t", "y", "x"), np.int16, {"scale_factor": 1.0 / bands.S2_SCALE, "add_offset": 0.0, "units": "1",
                                               "long_name": f"Sentinel-2 L2A {b} reflectance", **gm},
                   np.int16(0), chunk)
    v["SCL"] = Var(("t", "y", "x"), np.uint8, {"long_name": "Sentinel-2 scene classification (0 = no data)", **gm},
                   np.uint8(0), chunk)
    v["scene_cloud_pct"] = Var(("t", "y", "x"), np.float32, {"long_name": "cloud cover of the S2 scene",
                                                            "units": "%", **gm}, np.float32(np.nan), chunk)
    for b in bands.S1_BANDS:
        v[b] = Var(("t_s1", "y", "x"), np.float32, {"long_name": f"Sentinel-1 GRD {b} backscatter",
                                                    "units": "dB", **gm}, np.float32(np.nan), chunk)
    v["angle"] = Var(("t_s1",), np.float32, {"long_name": "incidence angle", "units": "degree"}, values=angle)
    v["crs"] = Var((), np.int32, {**crs.to_cf(), "crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt(),
                                  "epsg_code": f"EPSG:{epsg}"}, values=np.int32(0))
    return v


def write_cube(source: SyntheticSource, bbox: tuple[float, float, float, float], path: str, zarr: bool) -> dict:
    """Simulate the cube of `bbox` tile by tile and write each tile's block (T, rows, cols) of
    every variable: one sensor's stack of one tile in memory at a time."""
    epsg, x0, y1, width, height = bbox_grid(bbox)
    t2, t1, angle = time_axes(source, epsg, x0, y1, width, height)
    sizes = {"t": len(t2), "t_s1": len(t1), "y": height, "x": width}
    attrs = {"Conventions": "CF-1.8", "title": f"s2mos embedded world, preset {source.preset.name}",
             "source": f"s2mos world export --format datacube (seed {source.seed})"}
    writer = open_writer(path, zarr, sizes, _variables(epsg, x0, y1, width, height, t2, t1, angle), attrs)
    try:
        for tile, rs, cs, trs, tcs in _tiles(epsg, x0, y1, width, height):
            shape = (rs.stop - rs.start, cs.stop - cs.start)
            # S2 then S1 of the tile, one sensor's stack in memory at a time
            st = source.tile_stack(tile, needs=SensorNeeds(sensor=bands.SENSOR_S2))
            i2 = _slots(t2, st.s2_times, st.s2[:, 0, trs, tcs] != 0)
            for k, b in enumerate(bands.S2_BANDS):
                writer.write(b, rs, cs, _block(len(t2), i2, st.s2[:, k, trs, tcs], 0, np.int16, shape))
            writer.write("SCL", rs, cs, _block(len(t2), i2, st.scl[:, trs, tcs], 0, np.uint8, shape))
            writer.write("scene_cloud_pct", rs, cs, _block(len(t2), i2, st.scene_cloud_pct[:, trs, tcs], np.nan,
                                                           np.float32, shape))
            del st
            st = source.tile_stack(tile, needs=SensorNeeds(sensor=bands.SENSOR_S1))
            i1 = _slots(t1, st.s1_times, np.isfinite(st.s1[:, 0, trs, tcs]))
            for k, b in enumerate(bands.S1_BANDS):
                writer.write(b, rs, cs, _block(len(t1), i1, st.s1[:, k, trs, tcs], np.nan, np.float32, shape))
            del st
    finally:
        writer.close()
    return {"epsg": epsg, "width": width, "height": height, "s2_times": len(t2), "s1_times": len(t1)}


def _slots(axis: np.ndarray, times: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Positions of a tile's acquisitions on the cube's time axis (-1: an orbit band that touches
    the tile but not the cube, so nothing of it lies in the cube's part of the tile)."""
    pos = np.minimum(np.searchsorted(axis, times), max(len(axis) - 1, 0))
    hit = (axis[pos] == times) if len(axis) else np.zeros(len(times), bool)
    if (~hit & covered.reshape(len(times), -1).any(axis=1)).any():
        raise UserError("a tile acquisition inside the cube is not on its time axis")
    return np.where(hit, pos, -1)


def _block(n: int, slots: np.ndarray, values: np.ndarray, fill, dtype, shape) -> np.ndarray:
    out = np.full((n,) + shape, fill, dtype)
    ok = slots >= 0
    out[slots[ok]] = values[ok]
    return out


def export_datacube(preset: str, out: str, seed: int | None = None,
                    bbox: tuple[float, float, float, float] | None = None) -> dict:
    """Write the world's AOI (or `bbox`, W S E N degrees) as a cube: netCDF if `out` ends with
    ``.nc``, Zarr if ``.zarr``; local or gs://. Returns a summary dict."""
    zarr = out.rstrip("/").endswith(".zarr")
    if not (zarr or out.endswith(".nc")):
        raise UserError(f"datacube output {out} must end with .nc (netCDF) or .zarr (Zarr)")
    fileio.check_writable(out, "--out", is_file=not zarr)
    source = SyntheticSource(preset, seed)
    area = tuple(bbox) if bbox is not None else tuple(source.preset.aoi_bbox)
    tmp = tempfile.mkdtemp(prefix="s2mos-cube-out-") if fileio.is_remote(out) else None
    local = os.path.join(tmp, out.rstrip("/").rsplit("/", 1)[-1]) if tmp else out
    try:
        if os.path.isdir(local):
            fileio.remove_local_tree(local)
        elif os.path.exists(local):
            os.remove(local)
        info = write_cube(source, area, local, zarr)
        if tmp:
            if zarr:
                fileio.copy_tree_to(local, out.rstrip("/"))
            else:
                with open(local, "rb") as fh:
                    fileio.write_bytes(out, fh.read())
    finally:
        if tmp:
            fileio.remove_local_tree(tmp)
    return {"preset": preset, "seed": source.seed, "path": out, "format": "zarr" if zarr else "netcdf",
            "bbox": list(area), **info}
