"""The ``datacube`` source: netCDF / Zarr cubes read back through points and tiles.

* The embedded world's cube (`world.export_datacube`, netCDF and Zarr) gives the same tile
  stacks and the same observations as `--source synthetic` inside the cube (same integers).
* An openEO-style cube written by hand with xarray (one ``t`` for both sensors, NaN where a
  sensor has no acquisition, float 0–1 reflectance, linear backscatter, a ``crs`` grid mapping
  with ``crs_wkt`` in EPSG:3035): reprojected onto a UTM tile, linear fields land exactly
  where their formula says; points read the nearest pixel.
* Bad cubes: one line naming the file and the variable.
* Slow: the whole quick AOI as a cube maps to the same COG values and builds the same
  TFRecords for ``aoi_samples.csv`` as ``--source synthetic``.
"""
from __future__ import annotations

import glob
import gzip
import json
import os

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr

import test_map_fixtures as fx
from s2mos_transforms import bands, sources
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import Tile, lonlat_to_xy, tile_containing, utm_epsg
from s2mos_transforms.maps import tiling
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.sources.base import S2_NODATA
from s2mos_transforms.sources.datacube import DatacubeSource
from s2mos_transforms.sources.synthetic import SyntheticSource
from s2mos_transforms.world.export import aoi_grid
from s2mos_transforms.world.export_datacube import bbox_grid, export_datacube

STACK_FIELDS = ("s2_times", "s2", "scl", "scene_cloud_pct", "s1_times", "s1", "angle")


@pytest.fixture(scope="module")
def small():
    """The quick world over a 2 × 2-tile (32 px) bbox, as netCDF and as Zarr."""
    bbox, names = fx.small_aoi_bbox(32)
    out = fx.tmpdir("cube")
    nc, zr = os.path.join(out, "small.nc"), os.path.join(out, "small.zarr")
    summary = export_datacube("quick", nc, bbox=bbox)
    export_datacube("quick", zr, bbox=bbox)
    return {"bbox": bbox, "names": names, "nc": nc, "zarr": zr, "summary": summary,
            "world": SyntheticSource("quick")}


def test_registry_and_flags():
    plugin = sources.get_plugin("datacube", sources.TILES)
    assert plugin.serves == {sources.POINTS, sources.TILES}
    with pytest.raises(sources.SourceError, match="needs --cube PATH"):
        plugin.options(type("A", (), {"cube": None})())


def test_exported_cube_layout(small):
    s = small["summary"]
    assert s["format"] == "netcdf" and s["epsg"] == 32632 and s["width"] > 40 and s["s2_times"] > 100
    assert bbox_grid(SyntheticSource("quick").preset.aoi_bbox) == aoi_grid(SyntheticSource("quick"))
    with xr.open_dataset(small["nc"], engine="h5netcdf") as ds:         # CF decoding, as a user sees it
        assert set(bands.S2_BANDS + bands.S1_BANDS + ("SCL", "scene_cloud_pct", "angle")) <= set(ds.data_vars)
        assert ds["B4"].dims == ("t", "y", "x") and ds["VV"].dims == ("t_s1", "y", "x")
        assert ds["B4"].encoding["dtype"] == np.int16 and ds["B4"].encoding["scale_factor"] == 1e-4
        refl = ds["B4"].values
        assert 0 < np.nanmin(refl) and np.nanmax(refl) < 1.0 and ds["B4"].encoding["_FillValue"] == 0
        assert ds["VV"].attrs["units"] == "dB" and ds["B4"].attrs["grid_mapping"] == "crs"
        assert "32632" in ds["crs"].attrs["epsg_code"] and "UTM zone 32N" in ds["crs"].attrs["crs_wkt"]
        assert float(ds["y"][0]) > float(ds["y"][-1])


@pytest.mark.parametrize("kind", ["nc", "zarr"])
def test_tile_stacks_equal_the_world_inside_the_cube(small, kind):
    cube, world = DatacubeSource(small[kind]), small["world"]
    tasks = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*small["bbox"]), 32)
    assert sorted(t.name for t in tasks) == small["names"]
    for task in tasks:
        a, b = cube.tile_stack(task.tile, "2018-01-01", "2019-12-31"), world.tile_stack(task.tile, "2018-01-01", "2019-12-31")
        lon, lat = task.tile.pixel_centres_lonlat()
        inside = cube.covers(lat, lon)
        assert 0 < inside.sum() < inside.size             # the cube stops inside these tiles
        for f in ("s2_times", "s1_times", "angle"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        for f in ("s2", "scl", "scene_cloud_pct", "s1"):
            np.testing.assert_array_equal(getattr(a, f)[..., inside], getattr(b, f)[..., inside], err_msg=f)
        assert (a.s2[..., ~inside] == S2_NODATA).all() and (a.scl[..., ~inside] == bands.SCL_NO_DATA).all()
        assert np.isnan(a.s1[..., ~inside]).all() and np.isnan(a.scene_cloud_pct[..., ~inside]).all()
        assert a.s2_times.dtype == "datetime64[s]" and a.s2.dtype == np.int16 and a.scl.dtype == np.uint8


def test_observations_equal_the_world(small):
    w, s, e, n = small["bbox"]
    rng = np.random.default_rng(3)
    points = [SamplePoint(f"q{i}", float(a), float(o)) for i, (a, o) in
              enumerate(zip(rng.uniform(s, n, 40), rng.uniform(w, e, 40)))]
    got = DatacubeSource(small["zarr"]).observations(points)
    want = small["world"].observations(points)
    assert len(want) > 40 * 200 and str(got["datetime"].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(got, want)


def test_start_end_and_a_tile_outside(small):
    cube = DatacubeSource(small["nc"])
    task = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*small["bbox"]), 32)[0]
    part = cube.tile_stack(task.tile, "2018-06-01", "2018-06-30")
    assert 0 < len(part.s2_times) < 20 and part.s2_times.min() >= np.datetime64("2018-06-01")
    assert part.s2_times.max() < np.datetime64("2018-07-01")
    far = Tile(task.tile.epsg, task.tile.col + 50, task.tile.row, 32)
    empty = cube.tile_stack(far)
    assert len(empty.s2_times) == len(empty.s1_times) == 0 and empty.s2.shape == (0, 10, 32, 32)


# ------------------------------------------------------------- an openEO-style cube by hand

LAEA = 3035
S2_DAYS, S1_DAYS = (0, 5, 10), (1, 7)


def _openeo_cube(path: str, tile: Tile, *, drop: tuple[str, ...] = (), crs: bool = True, scale=None,
                 gm_key: str = "crs_wkt", extra: dict | None = None) -> dict:
    """Over `tile` in EPSG:3035 at 10 m: one `t` (S2 and S1 dates), NaN where a sensor is absent;
    reflectance a linear field of the 3035 coordinates (0–1 floats); VV, VH linear power."""
    from pyproj import CRS, Transformer
    to = Transformer.from_crs(tile.epsg, LAEA, always_xy=True)
    bx, by = to.transform(np.array([tile.x_min, tile.x_min + 320, tile.x_min, tile.x_min + 320]),
                          np.array([tile.y_max, tile.y_max, tile.y_max - 320, tile.y_max - 320]))
    x0, y1 = np.floor(bx.min() / 10) * 10 - 100, np.ceil(by.max() / 10) * 10 + 100
    w, h = int((np.ceil(bx.max() / 10) * 10 + 100 - x0) / 10), int((y1 - np.floor(by.min() / 10) * 10 + 100) / 10)
    xs, ys = x0 + (np.arange(w) + 0.5) * 10, y1 - (np.arange(h) + 0.5) * 10
    days = sorted(S2_DAYS + S1_DAYS)
    t = np.datetime64("2018-05-01T10:30:00") + np.array(days) * np.timedelta64(1, "D")
    gx, gy = np.meshgrid(xs - x0, y1 - ys)
    coef = {b: (0.05 + 0.01 * i, 2e-5 * (i + 1), 1e-5 * (i + 2)) for i, b in enumerate(bands.S2_BANDS)}
    data = {}
    is_s2 = np.isin(days, S2_DAYS)
    for b, (c0, cx, cy) in coef.items():
        v = np.where(is_s2[:, None, None], (c0 + cx * gx + cy * gy)[None], np.nan).astype(np.float32)
        name = "B" + b[1:].zfill(2) if b[1:].isdigit() else b                       # openEO names B02 …
        data[name] = (("t", "y", "x"), v * (scale or 1), {"scale_factor": 1 / scale} if scale else {})
    scl = np.where(is_s2[:, None, None], 4.0, np.nan) * np.ones((1, h, w))
    scl[0, :, : w // 2] = 9.0                                                        # cloud, west half, day 0
    data["SCL"] = (("t", "y", "x"), scl.astype(np.float32), {})
    for b, lin in (("VV", 0.01), ("VH", 0.001)):
        data[b] = (("t", "y", "x"), np.where(is_s2[:, None, None], np.nan, lin) * np.ones((1, h, w), np.float32),
                   {"units": "1"})
    for name in drop:
        data.pop(name)
    for v in data.values():
        if crs:
            v[2]["grid_mapping"] = "crs"
    if crs:
        value = f"EPSG:{LAEA}" if gm_key == "epsg_code" else CRS.from_epsg(LAEA).to_wkt()
        data["crs"] = ((), np.int8(0), {gm_key: value})
    data.update(extra or {})
    ds = xr.Dataset(data, coords={"t": t, "x": xs, "y": ys})
    ds.to_netcdf(path, engine="h5netcdf")
    return {"x0": x0, "y1": y1, "coef": coef, "times": t, "is_s2": is_s2}


@pytest.fixture(scope="module")
def utm_tile():
    epsg = utm_epsg(48.5, 9.0)
    x, y = lonlat_to_xy(epsg, 9.0, 48.5)
    return tile_containing(epsg, float(x), float(y), 32)


def test_openeo_cube_is_reprojected_onto_the_tile(utm_tile, tmp_path):
    path = str(tmp_path / "openeo.nc")
    meta = _openeo_cube(path, utm_tile)
    cube = DatacubeSource(path)
    assert cube.cube.t1 == cube.cube.t2 == "t" and cube.cube.epsg == LAEA
    st = cube.tile_stack(utm_tile)
    np.testing.assert_array_equal(st.s2_times, meta["times"][meta["is_s2"]].astype("datetime64[s]"))
    np.testing.assert_array_equal(st.s1_times, meta["times"][~meta["is_s2"]].astype("datetime64[s]"))
    # Bilinear of a linear field is the field: each tile pixel's value is the formula at the
    # pixel centre's EPSG:3035 coordinates (±1 for the L2A rounding).
    from pyproj import Transformer
    xx, yy = utm_tile.pixel_centres_xy()
    lx, ly = Transformer.from_crs(utm_tile.epsg, LAEA, always_xy=True).transform(xx, yy)
    gx, gy = lx - meta["x0"], meta["y1"] - ly
    for i, b in enumerate(bands.S2_BANDS):
        c0, cx, cy = meta["coef"][b]
        expect = np.rint((c0 + cx * gx + cy * gy) * bands.S2_SCALE)
        assert np.abs(st.s2[1:, i].astype(float) - expect).max() <= 1, b
    # SCL nearest; the clouded west half of day 0 stays cloud and the east half clear.
    assert set(np.unique(st.scl[1:])) == {4} and set(np.unique(st.scl[0])) <= {4, 9} and (st.scl[0] == 9).any()
    np.testing.assert_allclose(st.s1[:, 0], -20.0, atol=1e-4)
    np.testing.assert_allclose(st.s1[:, 1], -30.0, atol=1e-4)
    assert np.isnan(st.scene_cloud_pct).all() and np.isnan(st.angle).all()
    assert any("scene_cloud_pct" in n for n in cube.notes)


def test_rows_south_to_north_and_float32_coordinates(utm_tile, tmp_path):
    """rioxarray/openEO variants: y ascending, float32 x/y and an unsorted time axis read the
    same pixels, and the stack's times come out ascending."""
    path = str(tmp_path / "openeo.nc")
    _openeo_cube(path, utm_tile)
    with xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False) as ds:
        flipped = ds.isel(y=slice(None, None, -1), t=[3, 0, 4, 2, 1]).load()
    flipped = flipped.assign_coords(x=flipped["x"].astype(np.float32), y=flipped["y"].astype(np.float32))
    flipped.to_netcdf(tmp_path / "flipped.nc", engine="h5netcdf")
    a, b = DatacubeSource(path), DatacubeSource(str(tmp_path / "flipped.nc"))
    assert b.cube.y_up and not a.cube.y_up and abs(b.cube.y0 - a.cube.y0) < 1 and abs(b.cube.x0 - a.cube.x0) < 1
    sa, sb = a.tile_stack(utm_tile), b.tile_stack(utm_tile)
    np.testing.assert_array_equal(sa.s2_times, sb.s2_times)
    np.testing.assert_array_equal(sa.s1_times, sb.s1_times)
    assert (np.diff(sb.s2_times.astype(np.int64)) > 0).all()
    np.testing.assert_array_equal(sa.scl, sb.scl)
    assert np.abs(sa.s2.astype(int) - sb.s2.astype(int)).max() <= 1
    lon, lat = utm_tile.pixel_centres_lonlat()
    pts = [SamplePoint(f"p{i}", float(lat[i, 3 * i]), float(lon[i, 3 * i])) for i in range(8)]
    oa, ob = a.observations(pts), b.observations(pts)
    assert len(oa) == len(ob) == 8 * 5
    s2a, s2b = oa[oa["sensor"] == "S2"], ob[ob["sensor"] == "S2"]
    assert len(s2a) == 8 * 3 and (s2a["B4"].astype(int) - s2b["B4"].astype(int)).abs().max() <= 1


@pytest.mark.parametrize("gm_key", ["spatial_ref", "epsg_code"])
def test_per_scene_cloud_angle_and_other_grid_mapping_keys(utm_tile, tmp_path, gm_key):
    """scene_cloud_pct per time step (one value per scene) and angle on the shared `t`; the CRS
    from `spatial_ref` (GDAL/rioxarray) or `epsg_code`."""
    path = str(tmp_path / "scene.nc")
    pct = np.array([3.0, np.nan, 40.0, np.nan, 7.5], np.float32)          # NaN on the S1 dates
    angle = np.array([np.nan, 38.5, np.nan, 41.0, np.nan], np.float32)
    meta = _openeo_cube(path, utm_tile, gm_key=gm_key,
                        extra={"scene_cloud_pct": (("t",), pct), "angle": (("t",), angle)})
    cube = DatacubeSource(path)
    assert cube.cube.epsg == LAEA and cube.notes == []
    st = cube.tile_stack(utm_tile)
    covered = st.scl != bands.SCL_NO_DATA
    for k, want in enumerate(pct[meta["is_s2"]]):
        assert (st.scene_cloud_pct[k][covered[k]] == want).all() and np.isnan(st.scene_cloud_pct[k][~covered[k]]).all()
    np.testing.assert_array_equal(st.angle, angle[~meta["is_s2"]])
    lon, lat = utm_tile.pixel_centres_lonlat()
    obs = cube.observations([SamplePoint("p", float(lat[20, 20]), float(lon[20, 20]))])
    np.testing.assert_array_equal(obs.loc[obs["sensor"] == "S2", "scene_cloud_pct"], pct[meta["is_s2"]])
    np.testing.assert_array_equal(obs.loc[obs["sensor"] == "S1", "angle"], angle[~meta["is_s2"]])


def test_openeo_cube_points(utm_tile, tmp_path):
    path = str(tmp_path / "openeo.nc")
    meta = _openeo_cube(path, utm_tile, scale=10_000)                # ×10 000 floats with scale_factor
    lon, lat = utm_tile.pixel_centres_lonlat()
    p = SamplePoint("p1", float(lat[5, 20]), float(lon[5, 20]))
    obs = DatacubeSource(path).observations([p])
    s2, s1 = obs[obs["sensor"] == "S2"], obs[obs["sensor"] == "S1"]
    assert list(obs.columns) == list(bands.OBS_COLUMNS) and len(s2) == 3 and len(s1) == 2
    assert (s2["datetime"].dt.tz_convert(None).to_numpy() == meta["times"][meta["is_s2"]]).all()
    assert set(s2["SCL"].astype(int)) == {4} and s2["VV"].isna().all() and s1["B4"].isna().all()
    np.testing.assert_allclose(s1["VV"], -20.0, atol=1e-4)
    from pyproj import Transformer
    x, y = Transformer.from_crs(4326, LAEA, always_xy=True).transform(p.lon, p.lat)
    col, row = np.floor((x - meta["x0"]) / 10), np.floor((meta["y1"] - y) / 10)
    c0, cx, cy = meta["coef"]["B4"]
    assert (s2["B4"].astype(int) == int(np.rint((c0 + cx * (col * 10 + 5) + cy * (row * 10 + 5)) * 1e4))).all()


def test_bad_cubes(utm_tile, tmp_path):
    def err(**kw) -> str:
        path = str(tmp_path / f"bad{len(os.listdir(tmp_path))}.nc")
        _openeo_cube(path, utm_tile, **kw)
        with pytest.raises(UserError) as info:
            DatacubeSource(path)
        msg = str(info.value)
        assert path in msg and "\n" not in msg
        return msg

    assert "no CRS for variable B04" in err(crs=False)
    assert "missing band variable(s) VV" in err(drop=("VV",))
    assert "missing band variable(s) B8A, VH" in err(drop=("B8A", "VH"))
    with pytest.raises(UserError, match="no such file"):
        DatacubeSource(str(tmp_path / "nothing.nc"))
    garbage = tmp_path / "garbage.nc"
    garbage.write_bytes(b"not a netCDF file")
    with pytest.raises(UserError, match="cannot read it as a netCDF file"):
        DatacubeSource(str(garbage))
    flat = tmp_path / "flat.nc"
    xr.Dataset({"B4": (("y", "x"), np.zeros((2, 2)))}, coords={"x": [0.5, 1.5], "y": [1.5, 0.5]}).to_netcdf(flat)
    with pytest.raises(UserError, match="missing band variable"):
        DatacubeSource(str(flat))
    # ×10 000 numbers stored as floats without a scale_factor: refused, not read as reflectance.
    path = str(tmp_path / "dn.nc")
    _openeo_cube(path, utm_tile, scale=10_000)
    with xr.open_dataset(path, engine="h5netcdf", mask_and_scale=False) as ds:
        ds = ds.load()
    for v in ds.data_vars:
        ds[v].attrs.pop("scale_factor", None)
    ds.to_netcdf(tmp_path / "dn2.nc", engine="h5netcdf")
    with pytest.raises(UserError, match="variable B02: float reflectance up to .* is not 0–1"):
        DatacubeSource(str(tmp_path / "dn2.nc")).tile_stack(utm_tile)


def test_no_time_dimension_and_missing_scl(utm_tile, tmp_path):
    path = str(tmp_path / "ok.nc")
    _openeo_cube(path, utm_tile, drop=("SCL",))
    cube = DatacubeSource(path)
    assert any("no SCL variable" in n for n in cube.notes)
    st = cube.tile_stack(utm_tile)
    assert st.scl is None and len(st.s2_times) == 3
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        one = ds.isel(t=0).load()
    one.to_netcdf(tmp_path / "no_t.nc", engine="h5netcdf")
    with pytest.raises(UserError, match="variable B04 has no time dimension"):
        DatacubeSource(str(tmp_path / "no_t.nc"))


def test_point_outside_the_cube_is_a_source_error(small):
    cube = DatacubeSource(small["nc"])
    w, s, e, n = small["bbox"]
    assert cube.covers(np.array([(s + n) / 2, n + 0.01]), np.array([(w + e) / 2, e])).tolist() == [True, False]
    with pytest.raises(sources.SourceError, match=r"point far \(49.0, 9.5\) is outside the cube"):
        cube.observations([SamplePoint("near", (s + n) / 2, (w + e) / 2), SamplePoint("far", 49.0, 9.5)])


@pytest.mark.slow
def test_remote_path_is_copied_through_fileio(small):
    """A non-local path (TensorFlow's ram:// here, gs:// in production) without fsspec: the
    export uploads through `fileio`, the source copies the cube once and reads the same."""
    tile = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*small["bbox"]), 32)[0].tile
    local = DatacubeSource(small["nc"]).tile_stack(tile)
    for remote in ("ram://cubes/small.nc", "ram://cubes/small.zarr"):
        assert export_datacube("quick", remote, bbox=small["bbox"])["path"] == remote
        st = DatacubeSource(remote).tile_stack(tile)
        for f in STACK_FIELDS:
            np.testing.assert_array_equal(getattr(st, f), getattr(local, f), err_msg=f"{remote} {f}")
    with pytest.raises(UserError, match="must end with .nc"):
        export_datacube("quick", "ram://cubes/small.tif")


# ------------------------------------------------------------- the whole AOI, end to end

def _tfrecords(directory: str) -> list[bytes]:
    """Every record of the dataset's gzipped TFRecord shards (framing parsed, no TensorFlow)."""
    out = []
    for path in sorted(glob.glob(os.path.join(directory, "*.tfrecord.gz"))):
        data = gzip.open(path).read()
        pos = 0
        while pos < len(data):
            n = int.from_bytes(data[pos:pos + 8], "little")
            out.append(data[pos + 12:pos + 12 + n])
            pos += 12 + n + 4
    return out


@pytest.mark.slow
def test_aoi_cube_maps_and_builds_like_the_world(quick_world, tmp_path):
    """The quick AOI exported as a cube: predict-map gives the same COG values as --source
    synthetic (identical: the cube stores the same integers) and build-dataset on the AOI's
    sample points the same TFRecords."""
    from pipelines.cli import main
    cube = str(tmp_path / "aoi.nc")
    summary = export_datacube("quick", cube)
    assert (summary["width"], summary["height"]) == aoi_grid(SyntheticSource("quick"))[3:]
    assert summary["s2_times"] > 200                  # the AOI lies across two orbit bands' schedules

    bbox, names = fx.small_aoi_bbox(32)
    model = fx.ensemble_dir()
    common = ["predict-map", "--model-dir", model, "--bbox", *map(str, bbox), "--tile-size", "32",
              "--start", "2018-01-01", "--end", "2019-12-31", "--no-report"]
    assert main(common + ["--source", "synthetic", "--out", str(tmp_path / "map_syn")]) == 0
    assert main(common + ["--source", "datacube", "--cube", cube, "--out", str(tmp_path / "map_cube")]) == 0
    for name in names:
        with rasterio.open(tmp_path / "map_syn" / "tiles" / f"{name}.tif") as a, \
                rasterio.open(tmp_path / "map_cube" / "tiles" / f"{name}.tif") as b:
            va, vb = a.read(), b.read()
            assert (va[0] != a.nodata).sum() > 100, name
            np.testing.assert_array_equal(va, vb, err_msg=name)

    samples = str(quick_world / "aoi_samples.csv")
    base = ["build-dataset", "--samples", samples, "--quiet"]
    assert main(base + ["--out", str(tmp_path / "ds_syn")]) in (0, 1)
    assert main(base + ["--source", "datacube", "--cube", cube, "--out", str(tmp_path / "ds_cube")]) in (0, 1)
    syn, cub = (json.loads((tmp_path / d / "summary.json").read_text()) for d in ("ds_syn", "ds_cube"))
    assert syn["calibration"] + syn["test"] > 0
    for key in ("calibration", "test", "rejected_by_reason"):
        assert cub[key] == syn[key], key
    records = _tfrecords(str(tmp_path / "ds_syn"))
    assert len(records) == syn["calibration"] + syn["test"]
    assert sorted(_tfrecords(str(tmp_path / "ds_cube"))) == sorted(records)


@pytest.mark.parametrize("kind", ["nc", "zarr"])
def test_a_map_stack_is_the_whole_stack_trimmed(small, kind):
    """predict-map's `StackNeeds` on a cube with per-pixel scene cloud: the same stack as
    trimming the whole one (every sequence is then the same, tests/test_stack_needs.py)."""
    from s2mos_transforms.sources.base import StackNeeds, trim_stack
    cube = DatacubeSource(small[kind])
    needs = StackNeeds()
    for task in tiling.tiles_for_aoi(tiling.aoi_from_bbox(*small["bbox"]), 32)[:2]:
        whole = cube.tile_stack(task.tile, "2018-01-01", "2019-12-31")
        got = cube.tile_stack(task.tile, "2018-01-01", "2019-12-31", needs=needs)
        want = trim_stack(whole, needs)
        for f in STACK_FIELDS:
            np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)
        assert 0 < len(got.s2_times) < len(whole.s2_times) and len(got.s1_times) < len(whole.s1_times)


def test_a_map_does_not_read_the_steps_of_cloudy_scenes(utm_tile, tmp_path, monkeypatch):
    """With one scene cloud per time step, the steps the scene filter drops (40 %) are never
    read, and the S1 steps are read only where an S2 step is left to pair with."""
    from s2mos_transforms.sources.base import StackNeeds, trim_stack
    path = str(tmp_path / "scene.nc")
    pct = np.array([3.0, np.nan, 40.0, np.nan, 7.5], np.float32)
    meta = _openeo_cube(path, utm_tile, extra={"scene_cloud_pct": (("t",), pct)})
    cube = DatacubeSource(path)
    whole = cube.tile_stack(utm_tile)
    asked = []
    real = cube.cube.read
    monkeypatch.setattr(cube.cube, "read", lambda var, tsel, *a: asked.append((var, list(tsel))) or real(var, tsel, *a))
    needs = StackNeeds()
    got = cube.tile_stack(utm_tile, needs=needs)
    want = trim_stack(whole, needs)
    for f in STACK_FIELDS:
        np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)
    # the cube's one time axis holds S2 and S1 steps; the S1 steps (no scene cloud: kept, then
    # found empty of S2) are read, the 40 % scene's step never
    s2_steps = {int(k) for v, t in asked if v in cube.cube.s2.values() for k in t}
    cloudy = int(np.flatnonzero(pct == 40.0)[0])
    assert s2_steps and cloudy not in s2_steps and s2_steps == set(range(len(pct))) - {cloudy}
    assert len(whole.s2_times) == int(meta["is_s2"].sum()) == 3 and len(got.s2_times) == 2
