"""`s2mos world export --format datacube`: the embedded world's AOI as a netCDF or Zarr cube.

The cube is what ``--source datacube`` reads (README, "Datacubes (netCDF / Zarr)"), so users
see the expected layout and the tests can round-trip: the AOI's 10 m grid in its UTM zone
(`world.export.aoi_grid`), S2 on time ``t`` (int16 L2A numbers with ``scale_factor`` 0.0001,
0 = nodata; uint8 SCL; per-pixel ``scene_cloud_pct``), S1 on time ``t_s1`` (float32 VV/VH dB,
NaN = nodata; ``angle`` per acquisition), a CF grid mapping ``crs`` (crs_wkt, spatial_ref,
epsg_code). The values are the same integers and floats `SyntheticSource.tile_stack` gives,
so the cube maps to identical COGs. The cube is built in memory (the quick AOI: ~350 MB).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from s2mos_transforms import bands, fileio
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import Tile, lonlat_to_xy, utm_epsg
from s2mos_transforms.sources.synthetic import SyntheticSource

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


def _stacks(source: SyntheticSource, epsg: int, x0: float, y1: float, width: int, height: int):
    """Every grid tile over the cube's pixels: (stack, cube rows, cube cols, tile rows, tile cols)."""
    span = TILE * 10.0
    for row in range(int(np.floor((y1 - height * 10) / span)), int(np.floor((y1 - 1e-6) / span)) + 1):
        for col in range(int(np.floor(x0 / span)), int(np.floor((x0 + width * 10 - 1e-6) / span)) + 1):
            tile = Tile(epsg, col, row, TILE)
            c0, r0 = int(round((tile.x_min - x0) / 10)), int(round((y1 - tile.y_max) / 10))
            rs, cs = slice(max(r0, 0), min(r0 + TILE, height)), slice(max(c0, 0), min(c0 + TILE, width))
            if rs.start >= rs.stop or cs.start >= cs.stop:
                continue
            yield (source.tile_stack(tile), rs, cs, slice(rs.start - r0, rs.stop - r0),
                   slice(cs.start - c0, cs.stop - c0))


def build_cube(source: SyntheticSource, bbox: tuple[float, float, float, float]):
    """The cube of `bbox` as an xarray Dataset (values from the world's tile stacks)."""
    import xarray as xr
    from pyproj import CRS

    epsg, x0, y1, width, height = bbox_grid(bbox)
    stacks = list(_stacks(source, epsg, x0, y1, width, height))
    t2 = np.unique(np.concatenate([s[0].s2_times for s in stacks]))
    t1 = np.unique(np.concatenate([s[0].s1_times for s in stacks]))
    for s in stacks:                                    # equal instants in two orbits: refuse
        if np.unique(s[0].s2_times).size != len(s[0].s2_times) or np.unique(s[0].s1_times).size != len(s[0].s1_times):
            raise UserError("two acquisitions at the same instant: a cube time axis cannot hold them")
    nb = len(bands.S2_BANDS)
    s2 = np.zeros((len(t2), nb, height, width), np.int16)
    scl = np.zeros((len(t2), height, width), np.uint8)
    cloud = np.full((len(t2), height, width), np.nan, np.float32)
    s1 = np.full((len(t1), 2, height, width), np.nan, np.float32)
    angle = np.full(len(t1), np.nan, np.float32)
    for st, rs, cs, trs, tcs in stacks:
        i2, i1 = np.searchsorted(t2, st.s2_times), np.searchsorted(t1, st.s1_times)
        # A tile's slot that does not cover a pixel holds nodata there: only covered values move.
        cov = st.scl[:, trs, tcs] != bands.SCL_NO_DATA
        for k, slot in enumerate(i2):
            m = cov[k]
            s2[slot, :, rs, cs][:, m] = st.s2[k][:, trs, tcs][:, m]
            scl[slot, rs, cs][m] = st.scl[k, trs, tcs][m]
            cloud[slot, rs, cs][m] = st.scene_cloud_pct[k, trs, tcs][m]
        for k, slot in enumerate(i1):
            part = st.s1[k][:, trs, tcs]
            m = np.isfinite(part).any(axis=0)
            s1[slot, :, rs, cs][:, m] = part[:, m]
        angle[i1] = st.angle
    xs = x0 + (np.arange(width) + 0.5) * 10.0
    ys = y1 - (np.arange(height) + 0.5) * 10.0
    crs = CRS.from_epsg(epsg)
    gm = {"grid_mapping": "crs"}
    data = {b: (("t", "y", "x"), s2[:, i], {"scale_factor": 1.0 / bands.S2_SCALE, "add_offset": 0.0,
                                            "long_name": f"Sentinel-2 L2A {b} reflectance", "units": "1", **gm})
            for i, b in enumerate(bands.S2_BANDS)}
    data["SCL"] = (("t", "y", "x"), scl, {"long_name": "Sentinel-2 scene classification (0 = no data)", **gm})
    data["scene_cloud_pct"] = (("t", "y", "x"), cloud, {"long_name": "cloud cover of the S2 scene", "units": "%", **gm})
    for i, b in enumerate(bands.S1_BANDS):
        data[b] = (("t_s1", "y", "x"), s1[:, i], {"long_name": f"Sentinel-1 GRD {b} backscatter", "units": "dB", **gm})
    data["angle"] = (("t_s1",), angle, {"long_name": "incidence angle", "units": "degree"})
    cf = crs.to_cf()
    data["crs"] = ((), np.int32(0), {**cf, "crs_wkt": crs.to_wkt(), "spatial_ref": crs.to_wkt(), "epsg_code": f"EPSG:{epsg}"})
    ds = xr.Dataset(data, coords={
        "t": ("t", t2.astype("datetime64[ns]")), "t_s1": ("t_s1", t1.astype("datetime64[ns]")),
        "x": ("x", xs, {"standard_name": "projection_x_coordinate", "units": "m"}),
        "y": ("y", ys, {"standard_name": "projection_y_coordinate", "units": "m"})})
    ds.attrs.update({"Conventions": "CF-1.8", "title": f"s2mos embedded world, preset {source.preset.name}",
                     "source": f"s2mos world export --format datacube (seed {source.seed})"})
    return ds


def _encoding(ds, zarr: bool) -> dict:
    enc = {}
    for name in ("t", "t_s1"):
        enc[name] = {"units": "seconds since 1970-01-01", "dtype": "int64", "calendar": "proleptic_gregorian"}
    for name, v in ds.data_vars.items():
        if v.ndim == 3:
            enc[name] = {} if zarr else {"zlib": True, "complevel": 4, "chunksizes": (1,) + v.shape[1:]}
            if v.dtype.kind in "iu":
                enc[name]["_FillValue"] = 0                  # L2A and SCL nodata
    return enc


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
    ds = build_cube(source, area)
    tmp = tempfile.mkdtemp(prefix="s2mos-cube-out-") if fileio.is_remote(out) else None
    local = os.path.join(tmp, out.rstrip("/").rsplit("/", 1)[-1]) if tmp else out
    try:
        if zarr:
            ds.to_zarr(local, mode="w", encoding=_encoding(ds, True), consolidated=False)
        else:
            if os.path.exists(local):
                os.remove(local)
            ds.to_netcdf(local, engine="h5netcdf", encoding=_encoding(ds, False))
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
            "bbox": list(area), "epsg": int(ds["crs"].attrs["epsg_code"].split(":")[1]),
            "width": int(ds.sizes["x"]), "height": int(ds.sizes["y"]),
            "s2_times": int(ds.sizes["t"]), "s1_times": int(ds.sizes["t_s1"])}
