"""The ``geotiff`` source on real Sentinel files (BigEarthNet patches, tests/data/bigearthnet) and
on the embedded world exported as a GeoTIFF stack (`s2mos world export --format geotiff-stack`).

Real files: S2 L2A at 10/20 m (one uint16 GeoTIFF per band) and S1 VV/VH dB, EPSG:32629, read
onto a 10 m grid in the neighbouring zone (EPSG:32630) and at points. Bad stacks: every bad
row or file is one note naming it, and the good files still give their values. Round trip:
the exported world maps to the same COG values and builds the same TFRecords as
``--source synthetic``. A stack in Cloud Storage (``gs://``) reads like the same files on disk,
over a local stand-in for Cloud Storage (tests/gcs_fake.py).
"""
from __future__ import annotations

import glob
import gzip
import json
import os
import shutil

import numpy as np
import pytest
import rasterio

import test_map_fixtures as fx
from pipelines.cli import main
from s2mos_transforms import bands, sources
from s2mos_transforms.grid import Tile, lonlat_to_xy, xy_to_lonlat
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.sources.geotiff import GeoTiffSource

DATA = os.path.join(os.path.dirname(__file__), "data", "bigearthnet")
S2_DIR = os.path.join(DATA, "s2", "S2A_MSIL2A_20171221T112501_56_35")
S1_DIR = os.path.join(DATA, "s1", "S1A_IW_GRDH_1SDV_20171221T064238_29SND_56_35")
PATCH = (567180.0, 4356840.0, 568380.0, 4358040.0)      # EPSG:32629 bounds of the 56_35 patches
BAND_FILE = {b: f"B{b[1:].zfill(2)}" if b[1:].isdigit() else b for b in bands.S2_BANDS}


def _json_time(folder: str, key: str) -> np.datetime64:
    meta = json.loads(open(glob.glob(os.path.join(folder, "*_labels_metadata.json"))[0]).read())
    return np.datetime64(meta[key].replace(" ", "T"), "s")


def _write_index(path, rows) -> str:
    cols = ("path", "sensor", "datetime", "band", "unit", "scene_cloud_pct")
    with open(path, "w") as fh:
        fh.write(",".join(cols) + "\n")
        for r in rows:
            fh.write(",".join(str(r.get(c, "")) for c in cols) + "\n")
    return str(path)


def _patch_rows(s1_unit_dir: str | None = None, s1_unit: str = "dB") -> list[dict]:
    s2_name, s1_name = os.path.basename(S2_DIR), os.path.basename(S1_DIR)
    rows = [{"path": os.path.join(S2_DIR, f"{s2_name}_{BAND_FILE[b]}.tif"), "sensor": "S2",
             "datetime": "2017-12-21T11:25:01Z", "band": b, "scene_cloud_pct": 3.5} for b in bands.S2_BANDS]
    s1_dir = s1_unit_dir or S1_DIR
    rows += [{"path": os.path.join(s1_dir, f"{s1_name}_{p}.tif"), "sensor": "S1",
              "datetime": "2017-12-21T06:42:38", "band": p, "unit": s1_unit} for p in bands.S1_BANDS]
    return rows


def _tile_in_zone_30() -> Tile:
    """A 10 m tile of EPSG:32630 (the zone east of the patch's) holding the whole patch."""
    lon, lat = xy_to_lonlat(32629, (PATCH[0] + PATCH[2]) / 2, (PATCH[1] + PATCH[3]) / 2)
    x, y = (float(v) for v in lonlat_to_xy(32630, lon, lat))
    for size in (192, 256, 320, 384, 448):
        span = size * 10.0
        tile = Tile(32630, int(np.floor(x / span)), int(np.floor(y / span)), size)
        x0, y0, x1, y1 = tile.bounds
        if x0 + 1000 < x < x1 - 1000 and y0 + 1000 < y < y1 - 1000:
            return tile
    raise AssertionError("no tile size holds the patch")


def _inside_patch(tile: Tile, margin: float) -> np.ndarray:
    """Pixels of `tile` whose centre lies inside the 32629 patch by at least `margin` m (negative:
    outside by at least -margin)."""
    lon, lat = tile.pixel_centres_lonlat()
    x, y = lonlat_to_xy(32629, lon, lat)
    d = np.minimum.reduce([x - PATCH[0], PATCH[2] - x, y - PATCH[1], PATCH[3] - y])
    return d >= margin if margin >= 0 else d <= margin


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    return _write_index(tmp_path_factory.mktemp("ben") / "index.csv", _patch_rows())


def test_registry_has_geotiff_serving_points_and_tiles():
    plugin = sources.get_plugin("geotiff")
    assert plugin.serves == {sources.POINTS, sources.TILES}
    with pytest.raises(sources.SourceError, match="--stack"):
        plugin.options(type("Args", (), {"stack": None})())
    with pytest.raises(sources.SourceError, match="no such folder"):
        sources.create("geotiff", {"stack": "/nonexistent/stack"})


def test_real_patches_onto_a_grid_in_the_neighbouring_utm_zone(real_index):
    src = GeoTiffSource(real_index)
    tile = _tile_in_zone_30()
    stack = src.tile_stack(tile)
    # Dates are the JSON's, UTC.
    assert stack.s2_times.tolist() == [_json_time(S2_DIR, "acquisition_date")]
    assert stack.s1_times.tolist() == [_json_time(S1_DIR, "acquisition_time")]
    assert stack.scl is None                                   # no SCL in the whole stack
    inside, outside = _inside_patch(tile, 30.0), _inside_patch(tile, -30.0)
    assert inside.sum() > 10_000 and outside.sum() > 10_000
    s2, s1 = stack.s2[0], stack.s1[0]
    # Inside the footprint: real L2A reflectance and real backscatter.
    refl = s2[:, inside] / bands.S2_SCALE
    assert (refl > 0).all() and (refl <= 1.0).all()
    assert 0.01 < np.median(refl[bands.S2_BANDS.index("B8")]) < 0.6
    assert np.isfinite(s1[:, inside]).all()
    assert (s1[:, inside] > -40).all() and (s1[:, inside] < 10).all()
    assert -30 < np.median(s1[0, inside]) < 5 and np.median(s1[1, inside]) < np.median(s1[0, inside])
    # Outside: nodata (all S2 bands 0, S1 NaN, scene cloud NaN).
    assert (s2[:, outside] == 0).all() and np.isnan(s1[:, outside]).all()
    assert np.isnan(stack.scene_cloud_pct[0][outside]).all()
    assert (stack.scene_cloud_pct[0][inside] == np.float32(3.5)).all()
    # Mixed resolutions aligned: B8A (20 m) matches B8 (10 m) best without a shift.
    b8, b8a = (s2[bands.S2_BANDS.index(b)].astype(float) for b in ("B8", "B8A"))
    core = _inside_patch(tile, 80.0)

    def corr(dy, dx):
        shifted = np.roll(b8a, (dy, dx), axis=(0, 1))
        return np.corrcoef(b8[core], shifted[core])[0, 1]
    c0 = corr(0, 0)
    assert c0 > 0.8
    assert all(c0 > corr(dy, dx) for dy in (-2, 0, 2) for dx in (-2, 0, 2) if (dy, dx) != (0, 0))


def test_real_patches_at_points_give_the_native_pixels(real_index):
    src = GeoTiffSource(real_index)
    xs = np.array([567185.0, 567905.0, 568375.0])             # native 10 m pixel centres (+ 0/5 m)
    ys = np.array([4358035.0, 4357405.0, 4356845.0])
    lon, lat = xy_to_lonlat(32629, xs, ys)
    pts = [SamplePoint(f"p{i}", float(a), float(o)) for i, (a, o) in enumerate(zip(lat, lon))]
    pts.append(SamplePoint("far", 40.5, -3.0))
    obs = src.observations(pts)
    assert list(obs.columns) == list(bands.OBS_COLUMNS)
    assert str(obs["datetime"].dtype) == "datetime64[ns, UTC]"
    assert set(obs["point_id"]) == {"p0", "p1", "p2"}          # "far" has no acquisition
    s2 = obs[obs["sensor"] == "S2"].set_index("point_id")
    s1 = obs[obs["sensor"] == "S1"].set_index("point_id")
    assert (s2["datetime"] == "2017-12-21T11:25:01Z").all() and (s1["datetime"] == "2017-12-21T06:42:38Z").all()
    name = os.path.basename(S2_DIR)
    for i, (x, y) in enumerate(zip(xs, ys)):
        for b in ("B2", "B5", "B12"):                          # 10 m and 20 m bands: their own pixel
            with rasterio.open(os.path.join(S2_DIR, f"{name}_{BAND_FILE[b]}.tif")) as ds:
                r, c = ds.index(x, y)
                assert int(s2.loc[f"p{i}", b]) == int(ds.read(1)[r, c])
        with rasterio.open(glob.glob(os.path.join(S1_DIR, "*_VH.tif"))[0]) as ds:
            r, c = ds.index(x, y)
            assert s1.loc[f"p{i}", "VH"] == pytest.approx(float(ds.read(1)[r, c]))
    assert s2["SCL"].isna().all() and s2["scene_cloud_pct"].eq(3.5).all()
    assert s1[list(bands.S2_BANDS)].isna().all().all() and s2[["VV", "VH"]].isna().all().all()
    empty = src.observations([])
    assert len(empty) == 0 and list(empty.columns) == list(bands.OBS_COLUMNS)
    assert dict(empty.dtypes) == dict(obs.dtypes)


def _serve_gcs(root, monkeypatch):
    """Cloud Storage on 127.0.0.1 (tests/gcs_fake.py) serving ``root/BUCKET/…``; GDAL and Beam's
    client pointed at it, and Beam's credential lookup settled as it ends offline (no
    credentials: anonymous), without its 30 s of retries."""
    from apache_beam.internal.gcp import auth

    from gcs_fake import FakeGcs
    server = FakeGcs(str(root))
    for k, v in server.environment().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(auth._Credentials, "_credentials_init", True)
    monkeypatch.setattr(auth._Credentials, "_credentials", None)
    return server


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """A bucket ``s2mos-stacks`` in a local Cloud Storage stand-in: (its folder, the server)."""
    root = tmp_path / "gcs"
    (root / "s2mos-stacks").mkdir(parents=True)
    server = _serve_gcs(root, monkeypatch)
    yield root / "s2mos-stacks", server
    server.close()


def test_a_stack_in_cloud_storage_reads_like_the_same_stack_on_disk(gcs, tmp_path):
    """`--stack gs://…`: the index through Beam's GCS filesystem, the rasters through GDAL's
    /vsigs/ (byte ranges, not whole files), over a local Cloud Storage stand-in; the tile, the
    map's tile (`StackNeeds`) and the points equal those of the same files on disk."""
    from s2mos_transforms.sources.base import StackNeeds
    bucket, server = gcs
    rows = _patch_rows()
    for r in rows:                                      # the real files, under stack/<sensor>/
        dest = bucket / "stack" / r["sensor"] / os.path.basename(r["path"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(r["path"], dest)
    _write_index(bucket / "stack" / "index.csv",
                 [{**r, "path": f"{r['sensor']}/{os.path.basename(r['path'])}"} for r in rows])
    local = GeoTiffSource(_write_index(tmp_path / "index.csv", rows))
    # the flag keeps a URI as given (a local path is made absolute for the workers)
    options = sources.get_plugin("geotiff").options(type("Args", (), {"stack": "gs://s2mos-stacks/stack/"})())
    assert options == {"stack": "gs://s2mos-stacks/stack/"}
    remote = sources.create("geotiff", options)
    tile = _tile_in_zone_30()
    for kw in ({}, {"needs": StackNeeds()}):
        a, b = remote.tile_stack(tile, **kw), local.tile_stack(tile, **kw)
        for f in ("s2_times", "s2", "scene_cloud_pct", "s1_times", "s1", "angle"):
            np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    xs, ys = np.array([567185.0, 567905.0]), np.array([4358035.0, 4357405.0])
    lon, lat = xy_to_lonlat(32629, xs, ys)
    pts = [SamplePoint(f"p{i}", float(a), float(o)) for i, (a, o) in enumerate(zip(lat, lon))]
    obs_remote, obs_local = remote.observations(pts), local.observations(pts)
    assert len(obs_remote) == 2 * 2 and obs_remote.equals(obs_local)
    asked = server.requests
    paths = {path for _, path, _ in asked}
    assert "/storage/v1/b/s2mos-stacks/o/stack%2Findex.csv" in paths                 # the index: Beam's client
    raster = [(path, rng) for _, path, rng in asked if path.startswith("/s2mos-stacks/stack/")]
    assert raster and all(rng and rng.startswith("bytes=") for _, rng in raster)   # GDAL: ranges only


def test_folder_convention_reads_the_bigearthnet_layout():
    src = GeoTiffSource(DATA)                                  # no index: folder names give time and sensor
    got = sorted((a.sensor, str(a.time)) for a in src.acquisitions)
    want = []
    for d in glob.glob(os.path.join(DATA, "s2", "*")):
        want.append(("S2", str(_json_time(d, "acquisition_date"))))
    for d in glob.glob(os.path.join(DATA, "s1", "*")):
        want.append(("S1", str(_json_time(d, "acquisition_time"))))
    assert got == sorted(want) and len(got) == 4
    assert all(len(a.band_files()) == (10 if a.sensor == "S2" else 2) for a in src.acquisitions)
    assert sum("no SCL" in n for n in src.notes) == 2


def test_linear_power_is_converted_to_db(tmp_path):
    lin_dir = tmp_path / os.path.basename(S1_DIR)
    lin_dir.mkdir()
    for f in glob.glob(os.path.join(S1_DIR, "*.tif")):
        with rasterio.open(f) as ds:
            profile, db = ds.profile, ds.read(1)
        with rasterio.open(lin_dir / os.path.basename(f), "w", **profile) as out:
            out.write((10.0 ** (db / 10.0)).astype(np.float32), 1)
    tile = _tile_in_zone_30()
    db_stack = GeoTiffSource(_write_index(tmp_path / "db.csv", _patch_rows())).tile_stack(tile)
    lin_stack = GeoTiffSource(_write_index(tmp_path / "lin.csv", _patch_rows(str(lin_dir), "linear"))).tile_stack(tile)
    core = _inside_patch(tile, 30.0)
    # Resampled in linear power, then converted: close to the dB resampling, not identical.
    diff = np.abs(lin_stack.s1[0][:, core] - db_stack.s1[0][:, core])
    assert np.median(diff) < 0.5 and np.isfinite(lin_stack.s1[0][:, core]).all()
    lon, lat = xy_to_lonlat(32629, 567905.0, 4357405.0)
    p = [SamplePoint("p", float(lat), float(lon))]
    a = GeoTiffSource(str(tmp_path / "db.csv")).observations(p)
    b = GeoTiffSource(str(tmp_path / "lin.csv")).observations(p)
    np.testing.assert_allclose(b[b.sensor == "S1"][["VV", "VH"]].to_numpy(float),
                               a[a.sensor == "S1"][["VV", "VH"]].to_numpy(float), atol=1e-4)


def test_bad_files_are_per_file_notes_and_the_rest_still_maps(tmp_path):
    name = os.path.basename(S2_DIR)
    rows = _patch_rows()
    # A second S2 date whose B5 file is truncated, a third without B7 at all, a row pointing to
    # nothing, a file without CRS, a single-band file declared as two bands.
    truncated = tmp_path / "B05_truncated.tif"
    data = open(os.path.join(S2_DIR, f"{name}_B05.tif"), "rb").read()
    truncated.write_bytes(data[: len(data) // 3])
    for b in bands.S2_BANDS:
        src_path = str(truncated) if b == "B5" else os.path.join(S2_DIR, f"{name}_{BAND_FILE[b]}.tif")
        rows.append({"path": src_path, "sensor": "S2", "datetime": "2017-12-26T11:25:01Z", "band": b})
        if b != "B7":
            rows.append({"path": os.path.join(S2_DIR, f"{name}_{BAND_FILE[b]}.tif"), "sensor": "S2",
                         "datetime": "2017-12-31T11:25:01Z", "band": b})
    no_crs = tmp_path / "VV_nocrs.tif"
    with rasterio.open(glob.glob(os.path.join(S1_DIR, "*_VV.tif"))[0]) as ds:
        arr, profile = ds.read(1), ds.profile
    profile.pop("crs")
    with rasterio.open(no_crs, "w", **profile) as out:
        out.write(arr, 1)
    vh = glob.glob(os.path.join(S1_DIR, "*_VH.tif"))[0]
    rows += [{"path": str(no_crs), "sensor": "S1", "datetime": "2018-01-02T06:42:38", "band": "VV"},
             {"path": vh, "sensor": "S1", "datetime": "2018-01-02T06:42:38", "band": "VH"},
             {"path": str(tmp_path / "gone.tif"), "sensor": "S1", "datetime": "2018-01-08T06:42:38", "band": "VV"},
             {"path": vh, "sensor": "S1", "datetime": "2018-01-14T06:42:38", "band": "VV;VH"},
             {"path": vh, "sensor": "S9", "datetime": "2018-01-20T06:42:38", "band": "VH"}]
    src = GeoTiffSource(_write_index(tmp_path / "index.csv", rows))
    notes = "\n".join(src.notes)
    assert "gone.tif does not exist" in notes
    assert "VV_nocrs.tif: no CRS" in notes
    assert "has 1 band(s), the index names 2" in notes
    assert "sensor 'S9' is not S2 or S1" in notes
    assert "2017-12-31T11:25:01Z" in notes and "missing band(s) B7" in notes
    tile = _tile_in_zone_30()
    stack = src.tile_stack(tile, "2017-12-01", "2018-01-31")
    # The truncated file fails when its pixels are read: a note naming the date, which is dropped.
    assert any(n.startswith("S2 2017-12-26T11:25:01Z: read failed") for n in src.notes)
    assert stack.s2_times.astype(str).tolist() == ["2017-12-21T11:25:01"]
    assert stack.s1_times.astype(str).tolist() == ["2017-12-21T06:42:38"]
    assert (stack.s2[0][:, _inside_patch(tile, 30.0)] > 0).all()
    # Dates outside the range are skipped with a note; points still get the good files.
    src.tile_stack(tile, "2017-12-20", "2017-12-22")
    assert any("outside 2017-12-20 – 2017-12-22" in n for n in src.notes)
    lon, lat = xy_to_lonlat(32629, 567905.0, 4357405.0)
    obs = src.observations([SamplePoint("p", float(lat), float(lon))])
    assert "2017-12-21 11:25:01+00:00" in obs["datetime"].astype(str).tolist()


def test_scl_nearest_and_an_acquisition_without_scl(tmp_path):
    """SCL (20 m, here classes 4 | 9 | 0 by column) is resampled nearest; a date without SCL in a
    stack that has SCL gets SCL_UNKNOWN (never masked) on its pixels, 0 elsewhere."""
    from s2mos_transforms.sources.geotiff import SCL_UNKNOWN

    with rasterio.open(glob.glob(os.path.join(S2_DIR, "*_B05.tif"))[0]) as ds:
        profile = ds.profile
    scl = np.full((60, 60), bands.SCL_VEGETATION, np.uint8)
    scl[:, 30:50] = bands.SCL_CLOUD_HIGH
    scl[:, 50:] = bands.SCL_NO_DATA                           # no data in the last 200 m
    profile.update(dtype="uint8")
    with rasterio.open(tmp_path / "SCL.tif", "w", **profile) as out:
        out.write(scl, 1)
    rows = _patch_rows()
    rows.append({"path": str(tmp_path / "SCL.tif"), "sensor": "S2", "datetime": "2017-12-21T11:25:01Z", "band": "SCL"})
    rows += [dict(r, datetime="2017-12-26T11:25:01Z", scene_cloud_pct="") for r in _patch_rows() if r["sensor"] == "S2"]
    src = GeoTiffSource(_write_index(tmp_path / "index.csv", rows))
    assert any(n.startswith("S2 2017-12-26T11:25:01Z: no SCL") for n in src.notes)
    tile = _tile_in_zone_30()
    stack = src.tile_stack(tile)
    assert stack.s2_times.astype(str).tolist() == ["2017-12-21T11:25:01", "2017-12-26T11:25:01"]
    inside = _inside_patch(tile, 30.0)
    lon, lat = tile.pixel_centres_lonlat()
    x, _ = lonlat_to_xy(32629, lon, lat)
    col20 = np.floor((x - PATCH[0]) / 20.0)
    far = inside & (np.abs(col20 - 30) > 1) & (np.abs(col20 - 50) > 1)      # away from class edges
    want = np.where(col20 < 30, bands.SCL_VEGETATION, np.where(col20 < 50, bands.SCL_CLOUD_HIGH, 0))
    np.testing.assert_array_equal(stack.scl[0][far], want[far])              # nearest: classes only
    assert set(np.unique(stack.scl[0])) <= {0, bands.SCL_VEGETATION, bands.SCL_CLOUD_HIGH}
    assert (stack.s2[0][:, far & (want == 0)] == 0).all()                   # SCL 0: not covered
    assert (stack.scl[1][inside] == SCL_UNKNOWN).all()
    assert (stack.scl[1][_inside_patch(tile, -30.0)] == 0).all()
    assert np.isnan(stack.scene_cloud_pct[1][inside]).all()


def test_one_band_in_another_crs_is_warped_on_its_own(tmp_path):
    """Files of one acquisition need not share a CRS: B5 re-projected to EPSG:4326 gives the
    same tile values (within the resampling) as the original EPSG:32629 file."""
    from rasterio.warp import Resampling, calculate_default_transform, reproject

    src_path = glob.glob(os.path.join(S2_DIR, "*_B05.tif"))[0]
    moved = tmp_path / "B05_wgs84.tif"
    with rasterio.open(src_path) as ds:
        transform, w, h = calculate_default_transform(ds.crs, "EPSG:4326", ds.width, ds.height, *ds.bounds)
        profile = dict(ds.profile, crs="EPSG:4326", transform=transform, width=w, height=h, nodata=0)
        with rasterio.open(moved, "w", **profile) as out:
            reproject(rasterio.band(ds, 1), rasterio.band(out, 1), resampling=Resampling.nearest)
    rows = [dict(r, path=str(moved)) if r["band"] == "B5" else r for r in _patch_rows()]
    tile = _tile_in_zone_30()
    want = GeoTiffSource(_write_index(tmp_path / "a.csv", _patch_rows())).tile_stack(tile)
    got = GeoTiffSource(_write_index(tmp_path / "b.csv", rows)).tile_stack(tile)
    core = _inside_patch(tile, 60.0)
    b5 = bands.S2_BANDS.index("B5")
    a, b = want.s2[0, b5][core].astype(float), got.s2[0, b5][core].astype(float)
    assert (b > 0).all() and np.corrcoef(a, b)[0, 1] > 0.9 and np.median(np.abs(a - b) / a) < 0.05
    others = [i for i in range(len(bands.S2_BANDS)) if i != b5]
    np.testing.assert_array_equal(got.s2[0, others][:, core], want.s2[0, others][:, core])


def test_a_rewritten_file_is_read_again_in_the_same_process(tmp_path):
    from s2mos_transforms.sources import raster_read

    path = str(tmp_path / "VV.tif")
    profile = {"driver": "GTiff", "dtype": "float32", "count": 1, "crs": "EPSG:32629",
               "transform": rasterio.transform.from_origin(567180.0, 4358040.0, 10.0, 10.0)}
    with rasterio.open(path, "w", width=12, height=12, **profile) as out:
        out.write(np.full((1, 12, 12), -10.0, np.float32))
    assert raster_read.header(path).width == 12
    east = raster_read.lonlat_bounds(path)[2]
    with rasterio.open(path, "w", width=24, height=24, **profile) as out:
        out.write(np.full((1, 24, 24), -10.0, np.float32))
    assert raster_read.header(path).width == 24
    assert raster_read.lonlat_bounds(path)[2] > east


def test_stack_flags_through_build_dataset_refuse_a_stray_flag(tmp_path, capsys):
    samples = tmp_path / "s.csv"
    samples.write_text("point_id,lat,lon,clay\na,48.5,9.0,20\n")
    assert main(["build-dataset", "--samples", str(samples), "--stack", DATA, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stack is a flag of the 'geotiff' source" in err[0]


# ------------------------------------------------------------------ round trip with the embedded world

@pytest.fixture(scope="module")
def exported_world(tmp_path_factory):
    """`s2mos world export --format geotiff-stack` of the quick AOI (about a minute)."""
    out = tmp_path_factory.mktemp("quick_stack")
    assert main(["world", "export", "--format", "geotiff-stack", "--out", str(out), "--quiet"]) == 0
    return out


def _tfrecords(out) -> dict[str, bytes]:
    return {os.path.basename(p): gzip.open(p).read() for p in sorted(glob.glob(os.path.join(out, "*.tfrecord.gz")))}


@pytest.mark.slow
def test_exported_stack_layout_and_a_tile_across_two_orbits_and_granules(exported_world):
    from s2mos_transforms.sources.synthetic import SyntheticSource
    from s2mos_transforms.grid import tile_containing
    from s2mos_transforms.world.simulator import orbit_band

    summary = json.loads((exported_world / "stack.json").read_text())
    assert summary["epsg"] == 32632 and summary["s2_acquisitions"] > 200 and summary["s1_acquisitions"] > 200
    with rasterio.open(glob.glob(str(exported_world / "S2" / "*" / "B2_*.tif"))[0]) as ds:
        assert ds.count == 10 and ds.dtypes[0] == "uint16" and ds.res == (10.0, 10.0) and ds.crs.to_epsg() == 32632
    with rasterio.open(glob.glob(str(exported_world / "S1" / "*" / "VV.tif"))[0]) as ds:
        assert ds.dtypes[0] == "float32"
    # A 32 px tile on 9° E: two orbit bands (own S2/S1 dates) and two granules (own scene cloud).
    x, y = lonlat_to_xy(32632, 9.0, 48.5035)
    tile = tile_containing(32632, float(x), float(y), 32)
    want = SyntheticSource("quick").tile_stack(tile, "2018-01-01", "2019-12-31")
    got = GeoTiffSource(str(exported_world)).tile_stack(tile, "2018-01-01", "2019-12-31")
    lon, lat = tile.pixel_centres_lonlat()
    assert np.unique(orbit_band(lon)).size == 2 and np.unique(np.floor(lon)).size == 2
    for name in ("s2_times", "s2", "scl", "s1_times", "angle"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    np.testing.assert_array_equal(got.scene_cloud_pct, want.scene_cloud_pct)
    np.testing.assert_array_equal(got.s1, want.s1)
    # The folder convention (meta.json per acquisition) reads the same stack without the index.
    os.rename(exported_world / "index.csv", exported_world / "index.off")
    try:
        by_folder = GeoTiffSource(str(exported_world)).tile_stack(tile, "2018-01-01", "2019-12-31")
    finally:
        os.rename(exported_world / "index.off", exported_world / "index.csv")
    np.testing.assert_array_equal(by_folder.s2, want.s2)
    np.testing.assert_array_equal(by_folder.scene_cloud_pct, want.scene_cloud_pct)


@pytest.mark.slow
def test_exported_stack_maps_and_builds_like_the_synthetic_source(exported_world, tmp_path):
    bbox, names = fx.small_aoi_bbox(32)
    common = ["predict-map", "--model-dir", fx.ensemble_dir(), "--bbox", *map(str, bbox), "--tile-size", "32",
              "--start", "2018-01-01", "--end", "2019-12-31", "--no-report", "--runner", "DirectRunner"]
    assert main(common + ["--source", "synthetic", "--preset", "quick", "--out", str(tmp_path / "syn")]) == 0
    assert main(common + ["--source", "geotiff", "--stack", str(exported_world), "--out", str(tmp_path / "geo")]) == 0
    for name in names:
        with rasterio.open(tmp_path / "syn" / "tiles" / f"{name}.tif") as a, \
                rasterio.open(tmp_path / "geo" / "tiles" / f"{name}.tif") as b:
            want, got = a.read(), b.read()
            assert (want[0] != a.nodata).sum() > 100
            np.testing.assert_array_equal(got, want)

    samples = str(exported_world / "aoi_samples.csv")
    build = ["build-dataset", "--samples", samples, "--test-fraction", "0.25", "--quiet"]
    assert main(build + ["--source", "synthetic", "--preset", "quick", "--out", str(tmp_path / "ds_syn")]) == 0
    assert main(build + ["--source", "geotiff", "--stack", str(exported_world), "--out", str(tmp_path / "ds_geo")]) == 0
    want, got = _tfrecords(tmp_path / "ds_syn"), _tfrecords(tmp_path / "ds_geo")
    assert want and sum(len(v) for v in want.values()) > 0
    assert got == want
    s_syn = json.loads((tmp_path / "ds_syn" / "summary.json").read_text())
    s_geo = json.loads((tmp_path / "ds_geo" / "summary.json").read_text())
    assert (s_geo["calibration"], s_geo["test"], s_geo["rejected"]) == (s_syn["calibration"], s_syn["test"], s_syn["rejected"])


@pytest.mark.slow
def test_a_map_from_a_stack_in_cloud_storage_equals_the_map_from_disk(exported_world, tmp_path, monkeypatch):
    """predict-map with `--stack gs://…` (the exported stack served as a bucket by the local Cloud
    Storage stand-in): the workers' source reads it through GDAL and Beam's client, and every
    COG equals the one mapped from the same files on disk."""
    bucket = exported_world.name.lower().replace("_", "-")
    root = tmp_path / "gcs"
    root.mkdir()
    os.symlink(exported_world, root / bucket)
    server = _serve_gcs(root, monkeypatch)
    try:
        bbox, names = fx.small_aoi_bbox(32)
        common = ["predict-map", "--model-dir", fx.ensemble_dir(), "--bbox", *map(str, bbox), "--tile-size", "32",
                  "--start", "2018-01-01", "--end", "2019-12-31", "--no-report", "--runner", "DirectRunner",
                  "--source", "geotiff"]
        assert main(common + ["--stack", str(exported_world), "--out", str(tmp_path / "disk")]) == 0
        assert main(common + ["--stack", f"gs://{bucket}/", "--out", str(tmp_path / "gcs_map")]) == 0
    finally:
        server.close()
    for name in names:
        with rasterio.open(tmp_path / "disk" / "tiles" / f"{name}.tif") as a, \
                rasterio.open(tmp_path / "gcs_map" / "tiles" / f"{name}.tif") as b:
            want = a.read()
            assert (want[0] != a.nodata).sum() > 100
            np.testing.assert_array_equal(b.read(), want)
    rasters = [rng for _, path, rng in server.requests if path.startswith(f"/{bucket}/") and path.endswith(".tif")]
    assert rasters and all(rng and rng.startswith("bytes=") for rng in rasters)


@pytest.mark.slow
def test_a_bad_stack_still_maps_with_per_file_notes(exported_world, tmp_path, capsys):
    """The exported stack's index with a row pointing to nothing, one S2 file truncated and one
    SCL row dropped: each is a note naming it, and every tile of the map is still written."""
    lines = (exported_world / "index.csv").read_text().splitlines()
    header, rows = lines[0], [line.split(",") for line in lines[1:]]
    s2_rows = [r for r in rows if r[1] == "S2" and "o062" in r[5]]
    bad, no_scl = s2_rows[0], s2_rows[3]
    data = (exported_world / bad[0]).read_bytes()
    (tmp_path / "truncated.tif").write_bytes(data[: len(data) // 4])
    out_rows = []
    for r in rows:
        if r is no_scl:
            continue                                          # this acquisition loses its SCL
        path = str(tmp_path / "truncated.tif") if r is bad else str(exported_world / r[0])
        out_rows.append(",".join([path] + r[1:]))
    out_rows.append(",".join([str(tmp_path / "gone.tif"), "S1", "2018-06-01T05:00:00Z", "VV", "dB", "x", "", ""]))
    index = tmp_path / "index.csv"
    index.write_text("\n".join([header] + out_rows) + "\n")

    bbox, names = fx.small_aoi_bbox(32)
    capsys.readouterr()
    assert main(["predict-map", "--model-dir", fx.ensemble_dir(), "--bbox", *map(str, bbox), "--tile-size", "32",
                 "--start", "2018-01-01", "--end", "2019-12-31", "--no-report", "--runner", "DirectRunner",
                 "--source", "geotiff", "--stack", str(index), "--out", str(tmp_path / "map")]) == 0
    err = capsys.readouterr().err
    assert "gone.tif does not exist" in err
    assert f"S2 {no_scl[2]} {no_scl[5]}: no SCL" in err
    records = [json.loads(x) for x in (tmp_path / "map" / "tiles.jsonl").read_text().splitlines()]
    assert sorted(r["tile"] for r in records) == names and all(r["status"] == "written" for r in records)
    # The truncated acquisition is left out of the tiles, with a note naming it.
    src = GeoTiffSource(str(index))
    task_tile = Tile(32632, *map(int, names[0].split("_")[1:]), 32)
    stack = src.tile_stack(task_tile, "2018-01-01", "2019-12-31")
    assert np.datetime64(bad[2].rstrip("Z"), "s") not in stack.s2_times
    assert any(("truncated.tif" in n) or n.startswith(f"S2 {bad[2]} {bad[5]}: read failed") for n in src.notes)


@pytest.mark.slow
def test_a_map_reads_only_the_files_its_pixels_can_use(exported_world, monkeypatch):
    """With predict-map's `StackNeeds` the files of scenes the scene filter drops, and of S1
    acquisitions with no scene left to pair with, are never opened; the stack is the whole
    one trimmed (a tile across two orbit bands and two granules)."""
    from s2mos_transforms.grid import tile_containing
    from s2mos_transforms.sources import raster_read
    from s2mos_transforms.sources.base import StackNeeds, trim_stack
    x, y = lonlat_to_xy(32632, 9.0, 48.5035)
    tile = tile_containing(32632, float(x), float(y), 32)
    reads = []
    real = raster_read.read_onto_tile
    monkeypatch.setattr(raster_read, "read_onto_tile", lambda path, *a, **k: reads.append(path) or real(path, *a, **k))
    src = GeoTiffSource(str(exported_world))
    whole = src.tile_stack(tile, "2018-01-01", "2019-12-31")
    n_whole = len(reads)
    reads.clear()
    needs = StackNeeds()
    got = src.tile_stack(tile, "2018-01-01", "2019-12-31", needs=needs)
    want = trim_stack(whole, needs)
    for name in ("s2_times", "s2", "scl", "scene_cloud_pct", "s1_times", "s1", "angle"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert 0 < len(got.s2_times) < len(whole.s2_times) / 2 and 0 < len(got.s1_times) < len(whole.s1_times) / 2
    assert 0 < len(reads) < n_whole / 2
