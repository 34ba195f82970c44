"""`s2mos predict-map` end to end on DirectRunner, on a 2 × 2-tile AOI of the embedded world.

Every output is read back: COG validity, bands, nodata, CRS/transform, a pixel equal to the
ensemble called directly on that pixel's sequence, mosaic/VRT/STAC/quicklook, the manifest;
then restart (skip, redo a deleted tile), a failing tile, empty tiles and the input errors.
"""
from __future__ import annotations

import json
import os
import sys
import textwrap

import numpy as np
import pytest
import rasterio

import test_map_fixtures as fx
from pipelines.cli import main
from s2mos_transforms.maps import cog
from s2mos_transforms.maps import model_handler
from s2mos_transforms.maps import pixels
from s2mos_transforms.maps import tiling
from s2mos_transforms.grid import Tile
from s2mos_transforms.world.presets import get_preset

SIZE = 64


def _args(model_dir: str, out: str, *extra: str) -> list[str]:
    bbox, _ = fx.small_aoi_bbox(SIZE)
    return ["predict-map", "--model-dir", model_dir, "--bbox", *map(str, bbox), "--preset", "quick",
            "--tile-size", str(SIZE), "--out", out, "--batch-size", "512", "--runner", "DirectRunner", *extra]


def _manifest(out: str) -> dict[str, dict]:
    with open(os.path.join(out, "tiles.jsonl")) as fh:
        return {r["tile"]: r for r in map(json.loads, fh)}


@pytest.fixture(scope="module")
def mapped():
    out = fx.tmpdir("map")
    rc = main(_args(fx.trusted_dir(), out))
    assert rc == 0
    return out


def test_every_tile_cog_reads_back(mapped):
    _, names = fx.small_aoi_bbox(SIZE)
    man = _manifest(mapped)
    assert sorted(man) == names and all(r["status"] == "written" and not r["reused"] for r in man.values())
    bbox, _ = fx.small_aoi_bbox(SIZE)
    tasks = {t.name: t for t in tiling.tiles_for_aoi(tiling.aoi_from_bbox(*bbox), SIZE)}
    for name in names:
        path = os.path.join(mapped, "tiles", f"{name}.tif")
        assert cog.validate(path)[0]
        epsg, col, row = map(int, name.split("_"))
        tile = Tile(epsg, col, row, SIZE)
        with rasterio.open(path) as ds:
            assert ds.descriptions == cog.BAND_NAMES and ds.count == 7
            assert ds.descriptions[:3] == ("clay_mean", "clay_std", "n_obs")
            assert ds.nodata == cog.NODATA and ds.dtypes[0] == "float32"
            assert ds.crs.to_epsg() == epsg and ds.transform == tile.transform
            assert (ds.width, ds.height) == (SIZE, SIZE)
            mean, std, n_obs, p05, p95, di, aoa = ds.read()
        inside = tasks[name].inside_mask()
        assert (mean[~inside] == cog.NODATA).all() and (n_obs[~inside] == cog.NODATA).all()
        assert (n_obs[inside] >= 0).all()
        valid = mean != cog.NODATA
        assert (valid == (inside & (n_obs >= 1))).all()
        assert valid.sum() == man[name]["n_valid"] and inside.sum() == man[name]["n_aoi"]
        assert ((std[valid] >= 0) & (mean[valid] > 0) & (mean[valid] < 100)).all()
        for band in (p05, p95, di, aoa):            # the trust bands: exactly where clay_mean is
            assert ((band != cog.NODATA) == valid).all()
        assert (p05[valid] < mean[valid]).all() and (mean[valid] < p95[valid]).all()
        assert set(np.unique(aoa[valid])) <= {0.0, 1.0} and (di[valid] >= 0).all()

def test_pixel_equals_the_ensemble_called_directly(mapped):
    import tensorflow as tf
    _, names = fx.small_aoi_bbox(SIZE)
    name = names[-1]
    epsg, col, row = map(int, name.split("_"))
    tile = Tile(epsg, col, row, SIZE)
    preset = get_preset("quick")
    stack = fx.quick_source().tile_stack(tile, preset.start, preset.end)
    with rasterio.open(os.path.join(mapped, "tiles", f"{name}.tif")) as ds:
        mean, std, n_obs = ds.read()[:3]
    valid = np.flatnonzero((mean != cog.NODATA).ravel())
    picks = valid[np.linspace(0, valid.size - 1, 5).astype(int)]
    seqs = pixels.pixel_sequences(stack, picks)
    fn = tf.saved_model.load(os.path.join(fx.ensemble_dir(), "ensemble")).signatures["serving_default"]
    lon, lat = tile.pixel_centres_lonlat()
    for i, p in enumerate(picks):
        seq = seqs.sequence(i)
        out = fn(sequence=tf.constant(seq[None]), length=tf.constant([len(seq)], tf.int32),
                 coords=tf.constant([[lat.ravel()[p], lon.ravel()[p]]], tf.float32))
        assert mean.ravel()[p] == pytest.approx(float(out["clay_mean"][0]), abs=1e-3)
        assert std.ravel()[p] == pytest.approx(float(out["clay_std"][0]), abs=1e-3)
        assert n_obs.ravel()[p] == len(seq)


def test_map_level_outputs(mapped):
    _, names = fx.small_aoi_bbox(SIZE)
    mosaic = os.path.join(mapped, "mosaic.tif")
    assert cog.validate(mosaic)[0]
    vrt = os.path.join(mapped, "tiles_32632.vrt")
    with rasterio.open(mosaic) as m, rasterio.open(vrt) as v:
        assert m.shape == v.shape == (2 * SIZE, 2 * SIZE) and m.transform == v.transform
        assert v.descriptions == cog.BAND_NAMES and m.descriptions == cog.BAND_NAMES
        np.testing.assert_array_equal(m.read(), v.read())
        epsg, col, row = map(int, names[0].split("_"))      # lowest col, lowest row: bottom-left
        with rasterio.open(os.path.join(mapped, "tiles", f"{names[0]}.tif")) as t:
            np.testing.assert_array_equal(m.read()[:, SIZE:, :SIZE], t.read())
    with open(os.path.join(mapped, "quicklook.png"), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    import pystac
    item = pystac.Item.from_file(os.path.join(mapped, "map.stac.json"))
    assert {"mosaic", "tiles_32632", "quicklook", "manifest"} <= set(item.assets)
    assert item.assets["mosaic"].extra_fields["proj:code"] == "EPSG:32632"
    bands_ = item.assets["mosaic"].extra_fields["raster:bands"]
    assert [b["nodata"] for b in bands_] == [cog.NODATA] * 7 and bands_[0]["unit"] == "%"
    assert [b["name"] for b in bands_] == list(cog.BAND_NAMES) and "90 %" in bands_[3]["description"]
    assert item.properties["s2mos:intervals"]["level"] == 0.9 and item.properties["s2mos:aoa"]["threshold"] > 0
    assert item.properties["start_datetime"].startswith("2018-01-01")
    # The fixture's model records no extraction settings: the paper's, said so, everywhere.
    from s2mos_transforms.sequences import ExtractConfig
    settings = json.load(open(os.path.join(mapped, "map_settings.json")))
    assert settings["extraction"] == ExtractConfig().as_dict()
    assert "paper's defaults" in settings["extraction_from"]
    assert item.properties["s2mos:settings"]["extraction"] == settings["extraction"]
    with rasterio.open(os.path.join(mapped, "tiles", f"{names[0]}.tif")) as t:
        assert json.loads(t.tags()["extraction"]) == settings["extraction"]
    summary = json.load(open(os.path.join(mapped, "summary.json")))
    assert summary["written"] == 4 and summary["failed"] == 0
    rep = json.load(open(os.path.join(mapped, "map_report.json")))
    assert rep["pixels"]["n"] == sum(r["n_valid"] for r in _manifest(mapped).values())
    assert 0.5 < rep["pixels"]["share_mapped"] <= 1.0 and "rmse" in rep["pixels"]
    px = rep["pixels"]                 # the trust layer scored on every pixel against the truth
    assert px["reference"]["n"] == px["n"] and px["reference"]["clay"] == pytest.approx(rep["reference_clay"])
    assert px["interval"]["n"] == px["n"] and 0 <= px["interval"]["picp"] <= 1
    assert px["aoa"]["n_inside"] + px["aoa"]["n_outside"] == px["n"]
    pts = rep["sample_points"]       # a small AOI in a wide world: the preset's campaign, and its AOI
    assert pts["campaign"] == "drawn_in_bbox" and 0 < pts["n"] <= pts["points_in_aoi"] == 60   # draws, miss it


def test_a_zone_over_several_blocks_gets_a_vrt_of_block_vrts(mapped, tmp_path, monkeypatch):
    """A continental zone's VRT mosaics block VRTs, not its tiles (`write_zone_vrt`): with
    blocks of one tile, the 2 × 2 map's VRT points to four block VRTs and reads the same pixels,
    geotransform and bands as the flat VRT and the mosaic — on disk, and in Cloud Storage
    (tests/gcs_fake.py), where GDAL must resolve the block VRTs' ``../../tiles/`` itself,
    since object names are literal."""
    import shutil
    from gcs_fake import FakeGcs
    from s2mos_transforms.maps import outputs
    root, tmp_path = tmp_path, tmp_path / "bkt" / "map"
    shutil.copytree(os.path.join(mapped, "tiles"), tmp_path / "tiles")
    records = sorted(_manifest(mapped).values(), key=lambda r: r["tile"])
    records.append(dict(records[0], tile="32632_0_0", col=records[0]["col"] - 1, status="empty"))
    nested = outputs.write_zone_vrt(str(tmp_path), records, 32632, block_tiles=1)
    flat = outputs.write_zone_vrt(str(tmp_path / "flat"), records, 32632)   # one block: the tiles
    text = open(nested).read()
    assert text.count("<SourceFilename") == 4 * 7 and "tiles/" not in text
    assert sorted(os.listdir(tmp_path / "vrt" / "32632")) == sorted(
        f"{r['col']}_{r['row']}.vrt" for r in records if r["status"] == "written")
    assert open(flat).read().count("<SourceFilename") == 4 * 7 and 'relativeToVRT="1">tiles/' in open(flat).read()
    shutil.copytree(tmp_path / "tiles", tmp_path / "flat" / "tiles")
    with rasterio.open(nested) as n, rasterio.open(flat) as f, \
            rasterio.open(os.path.join(mapped, "mosaic.tif")) as m:
        assert n.shape == f.shape == (2 * SIZE, 3 * SIZE) and n.transform == f.transform
        assert n.descriptions == cog.BAND_NAMES and n.nodatavals == f.nodatavals
        both = n.read()
        np.testing.assert_array_equal(both, f.read())
        assert (both[:, :, :SIZE] == cog.NODATA).all()            # the empty tile's column
        np.testing.assert_array_equal(both[:, :, SIZE:], m.read())
    server = FakeGcs(str(root))
    try:
        for k, v in server.environment().items():
            monkeypatch.setenv(k, v)
        with rasterio.open("gs://bkt/map/tiles_32632.vrt") as g:
            np.testing.assert_array_equal(g.read(), both)
    finally:
        server.close()
    asked = {path for _, path, _ in server.requests}
    assert {f"/bkt/map/vrt/32632/{f}" for f in os.listdir(tmp_path / "vrt" / "32632")} <= asked
    assert all(".." not in p and os.path.isfile(os.path.join(root, p.lstrip("/"))) for p in asked)


def test_the_quicklook_of_a_map_without_mosaic_stops_at_its_tile_limit(mapped, tmp_path, monkeypatch):
    """Without a mosaic the quicklook reads every tile through the zone's VRT, so a map with
    more written tiles than `QUICKLOOK_MAX_TILES` gets none (the summary lists none)."""
    import shutil
    from shapely.geometry import box
    from s2mos_transforms.maps import outputs
    records = sorted(_manifest(mapped).values(), key=lambda r: r["tile"])
    for limit, made in ((4, True), (3, False)):
        out = tmp_path / f"limit{limit}"
        shutil.copytree(os.path.join(mapped, "tiles"), out / "tiles")
        monkeypatch.setattr(outputs, "QUICKLOOK_MAX_TILES", limit)
        paths = outputs.finalize(str(out), records, box(*fx.small_aoi_bbox(SIZE)[0]), start="2018-01-01",
                                 end="2019-12-31", model_dir=fx.trusted_dir(), mosaic_max_tiles=0)
        assert paths["mosaic"] is None and len(paths["vrt"]) == 1
        assert (paths["quicklook"] is not None) == made == (out / "quicklook.png").exists()


def test_each_zone_gets_an_overview_made_on_the_workers(mapped):
    """`ZoneOverviews`: ``overview_<epsg>.tif`` is a valid COG of every band, `OVERVIEW_PX`
    pixels a tile side, each the average of its map pixels (exact where all are mapped), on
    the map's grid; listed in the summary and in the STAC Item as an overview."""
    import pystac
    from s2mos_transforms.maps import outputs, overview
    path = os.path.join(mapped, "overview_32632.tif")
    assert cog.validate(path)[0]
    px, f = overview.OVERVIEW_PX, SIZE // overview.OVERVIEW_PX
    with rasterio.open(path) as o, rasterio.open(os.path.join(mapped, "mosaic.tif")) as m:
        assert o.descriptions == cog.BAND_NAMES and o.shape == (2 * px, 2 * px) and o.crs == m.crs
        assert o.transform.a == m.transform.a * f and (o.transform.c, o.transform.f) == (m.transform.c, m.transform.f)
        ov, full = o.read(), m.read()
    blocks = full.reshape(7, 2 * px, f, 2 * px, f)
    whole = (blocks != cog.NODATA).all(axis=(0, 2, 4))           # cells every pixel of which is mapped
    assert whole.sum() > 10
    np.testing.assert_allclose(ov[:, whole], blocks.mean(axis=(2, 4))[:, whole], rtol=1e-4, atol=1e-4)
    empty = (blocks == cog.NODATA).all(axis=(0, 2, 4))
    assert (ov[:, empty] == cog.NODATA).all()
    summary = json.load(open(os.path.join(mapped, "summary.json")))
    assert summary["outputs"]["overview"] == [path]
    asset = pystac.Item.from_file(os.path.join(mapped, "map.stac.json")).assets["overview_32632"]
    assert asset.roles == ["overview"] and asset.extra_fields["proj:shape"] == [2 * px, 2 * px]
    described = {b["name"]: b["description"] for b in asset.extra_fields["raster:bands"]}
    assert "share" in described["aoa"] and "share" not in outputs.BAND_DESCRIPTIONS["aoa"]
    assert 0.0 <= ov[6, whole].min() and ov[6, whole].max() <= 1.0     # a share, where the map's is 0/1


def test_a_map_too_large_for_its_vrt_draws_its_quicklook_from_the_overviews(mapped, tmp_path, monkeypatch):
    """Past `QUICKLOOK_MAX_TILES` the quicklook comes from the zone's overview; over several
    zones from their overviews reprojected onto one longitude/latitude grid."""
    import shutil
    from shapely.geometry import box
    from s2mos_transforms.maps import outputs, overview
    records = sorted(_manifest(mapped).values(), key=lambda r: r["tile"])
    monkeypatch.setattr(outputs, "QUICKLOOK_MAX_TILES", 1)
    out = tmp_path / "one"
    shutil.copytree(os.path.join(mapped, "tiles"), out / "tiles")
    ov = shutil.copy(os.path.join(mapped, "overview_32632.tif"), out)
    paths = outputs.finalize(str(out), records, box(*fx.small_aoi_bbox(SIZE)[0]), start="2018-01-01",
                             end="2019-12-31", model_dir=fx.trusted_dir(), mosaic_max_tiles=0, overviews=[ov])
    assert paths["quicklook"] and (out / "quicklook.png").read_bytes()[:4] == b"\x89PNG"
    # A second zone: the same previews placed in the next UTM zone (their values, its grid).
    previews = []
    with rasterio.open(ov) as ds:
        data = np.where(ds.read() == cog.NODATA, np.nan, ds.read())
    px = overview.OVERVIEW_PX
    for r in records:
        col, row = r["col"] - min(q["col"] for q in records), r["row"] - min(q["row"] for q in records)
        y = (1 - row) * px
        previews.append((r["col"] - 120, r["row"], data[:, y:y + px, col * px:(col + 1) * px]))
    other = overview.write_zone_overview(str(tmp_path / "two"), 32633, previews, SIZE, 10.0)
    merged = overview.geographic_mosaic([ov, other], str(tmp_path / "merged.tif"), max_pixels=256)
    with rasterio.open(merged) as m, rasterio.open(ov) as a, rasterio.open(other) as b:
        from rasterio.warp import transform_bounds
        assert m.crs.to_epsg() == 4326 and max(m.shape) == 256
        wa, ea = transform_bounds(a.crs, 4326, *a.bounds)[0::2]
        wb, eb = transform_bounds(b.crs, 4326, *b.bounds)[0::2]
        assert m.bounds.left == pytest.approx(min(wa, wb)) and m.bounds.right == pytest.approx(max(ea, eb))
        got = m.read(1)
        lon = m.transform.c + (np.arange(m.width) + 0.5) * m.transform.a
        for lo, hi in ((wa, ea), (wb, eb)):                  # each zone's pixels land in its own span
            cols = (lon > lo) & (lon < hi)
            assert (got[:, cols] != cog.NODATA).any()
        assert np.nanmax(np.where(got == cog.NODATA, np.nan, got)) <= np.nanmax(data[0]) + 1e-3
    out2 = tmp_path / "two-zones"
    recs2 = records + [dict(r, epsg=32633, col=r["col"] - 120, tile=f"32633_{r['col'] - 120}_{r['row']}")
                       for r in records]
    paths = outputs.finalize(str(out2), recs2, box(*fx.small_aoi_bbox(SIZE)[0]), start="2018-01-01",
                             end="2019-12-31", model_dir=fx.trusted_dir(), overviews=[ov, other])
    assert paths["mosaic"] is None and paths["quicklook"] and (out2 / "quicklook.png").exists()


def test_samples_a_model_was_recalibrated_on_are_not_scored(mapped):
    """Their corrected values are fits (kriged ones above all), not predictions: counted, not scored."""
    import shapely

    from s2mos_transforms.maps import report
    from s2mos_transforms.sources.synthetic import SyntheticSource

    records = list(_manifest(mapped).values())
    source = SyntheticSource("quick")
    bbox, _ = fx.small_aoi_bbox(SIZE)
    aoi = shapely.box(*bbox)
    every = report.point_scores(mapped, records, source, aoi, SIZE)
    used = frozenset(f"drawn{i}" for i in range(5))        # `drawn_in` names its points drawn0, drawn1, …
    rest = report.point_scores(mapped, records, source, aoi, SIZE, exclude=used)
    assert every["used_to_recalibrate"] == 0 and rest["used_to_recalibrate"] == 5
    assert 0 < rest["n"] < every["n"] and every["n"] - rest["n"] <= 5
    pixels = json.load(open(os.path.join(mapped, "map_report.json")))["pixels"]
    assert "5 used to recalibrate the model, not scored" in report.format_report(
        {"preset": "quick", "min_obs": 1, "pixels": pixels, "sample_points": rest})
    # the recalibration is named, with how sure its site offset is
    recal = {"kind": "bias", "a": 6.0, "b": 1.0, "n": 5, "interval_scale": 1.4, "kriging": None,
             "offset_uncertainty": {"residual_sd": 9.0, "offset_se": 4.02, "expected_abs_bias": 3.21,
                                    "target_abs_bias": 2.0, "samples_for_target": 13}}
    text = report.format_report({"preset": "quick", "min_obs": 1, "pixels": pixels, "sample_points": rest,
                                 "recalibration": recal})
    assert "recalibrated with 5 local samples: bias clay' = +6.00" in text
    assert "uncertain by ±4.0 % (1 s.e.): a site bias of about 3.2 % is expected; ≈ 13 samples for 2 %" in text


@pytest.mark.slow
def test_restart_skips_written_tiles_and_redoes_a_deleted_one(mapped, capsys):
    _, names = fx.small_aoi_bbox(SIZE)
    paths = {n: os.path.join(mapped, "tiles", f"{n}.tif") for n in names}
    before = {n: os.stat(p).st_mtime_ns for n, p in paths.items()}
    assert main(_args(fx.trusted_dir(), mapped, "--no-report")) == 0
    man = _manifest(mapped)
    assert all(r["status"] == "written" and r["reused"] for r in man.values())
    assert {n: os.stat(p).st_mtime_ns for n, p in paths.items()} == before
    os.remove(paths[names[1]])
    assert main(_args(fx.trusted_dir(), mapped, "--no-report")) == 0
    man = _manifest(mapped)
    assert not man[names[1]]["reused"] and all(man[n]["reused"] for n in names if n != names[1])
    assert cog.validate(paths[names[1]])[0]
    assert "written 4 (3 already there, 1 now)" in capsys.readouterr().out
    assert not [f for f in os.listdir(os.path.join(mapped, "tiles")) if ".tmp-" in f]


def test_rerun_with_other_settings_is_refused_before_any_work(mapped, capsys):
    before = sorted(os.listdir(os.path.join(mapped, "tiles")))
    assert main(_args(fx.trusted_dir(), mapped, "--min-obs", "3", "--no-report")) == 2
    err = capsys.readouterr().err.strip()
    assert "other settings (min_obs: 1 there, 3 now)" in err and "\n" not in err
    assert sorted(os.listdir(os.path.join(mapped, "tiles"))) == before


def test_coarser_resolution_samples_the_pixel_centre(mapped):
    """A 40 m map on the same tile grid (16 px × 40 m = 64 px × 10 m): each pixel is the 10 m
    pixel under its centre (row 4r+1, column 4c+2), so its prediction equals that pixel's."""
    out = fx.tmpdir("map40")
    q = SIZE // 4
    assert main(_args(fx.trusted_dir(), out, "--resolution", "40", "--tile-size", str(q), "--no-report")) == 0
    _, names = fx.small_aoi_bbox(SIZE)
    assert sorted(_manifest(out)) == names
    name = names[-1]
    epsg, col, row = map(int, name.split("_"))
    with rasterio.open(os.path.join(out, "tiles", f"{name}.tif")) as ds, \
            rasterio.open(os.path.join(mapped, "tiles", f"{name}.tif")) as fine:
        assert ds.res == (40.0, 40.0) and (ds.width, ds.height) == (q, q)
        assert ds.transform == Tile(epsg, col, row, q, 40.0).transform
        coarse, under = ds.read(), fine.read()[:, 1::4, 2::4]
    assert cog.validate(os.path.join(out, "tiles", f"{name}.tif"))[0]
    both = (coarse[0] != cog.NODATA) & (under[0] != cog.NODATA)
    assert both.sum() > 20 and (both == (coarse[0] != cog.NODATA)).all()
    np.testing.assert_allclose(coarse[0][both], under[0][both], atol=1e-3)
    np.testing.assert_array_equal(coarse[2][both], under[2][both])
    import pystac
    item = pystac.Item.from_file(os.path.join(out, "map.stac.json"))
    assert item.assets["mosaic"].extra_fields["raster:bands"][0]["spatial_resolution"] == 40.0


# A source module registered like any plug-in (S2MOS_SOURCE_MODULES): the quick world, except
# that the tile named by --flaky-bad-tile cannot be read (as a flaky remote source). The
# workers build it in their setup from its options, as they build every source.
FLAKY = textwrap.dedent('''
    from s2mos_transforms.sources.base import TILES, SourceError, SourcePlugin
    from s2mos_transforms.sources.synthetic import SyntheticSource


    class FlakySource:
        name = "flaky"

        def __init__(self, bad_tile: str):
            self.bad_tile = bad_tile
            self.inner = SyntheticSource("quick")

        def covers(self, lat, lon):
            return self.inner.covers(lat, lon)

        def tile_stack(self, tile, start=None, end=None):
            if tile.name == self.bad_tile:
                raise SourceError(f"HTTP 503 while reading {tile.name}")
            return self.inner.tile_stack(tile, start, end)


    def add_arguments(group):
        group.add_argument("--flaky-bad-tile", default="", help="the tile that cannot be read")


    PLUGIN = SourcePlugin(name="flaky", summary="the quick world with one unreadable tile",
                          serves=frozenset({TILES}), factory=FlakySource, add_arguments=add_arguments,
                          options=lambda args: {"bad_tile": args.flaky_bad_tile})
''')


@pytest.fixture()
def flaky(tmp_path, monkeypatch):
    from s2mos_transforms import sources
    module_dir = tmp_path / "plugins"
    module_dir.mkdir()
    (module_dir / "s2mos_flaky_source.py").write_text(FLAKY)
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.setenv("PYTHONPATH", f"{module_dir}:{':'.join(sys.path)}")
    monkeypatch.setenv(sources.ENV_MODULES, "s2mos_flaky_source")
    yield "flaky"
    sys.modules.pop("s2mos_flaky_source", None)


def test_a_failing_tile_and_empty_tiles_do_not_fail_the_job(flaky):
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter
    from pipelines import cli, predict_map
    from s2mos_transforms.beam_options import METRICS_NAMESPACE
    import shapely
    from s2mos_transforms.maps import finish as map_finish
    from s2mos_transforms.maps import pipeline as map_pipeline
    from s2mos_transforms.maps import plan as map_plan

    bbox, names = fx.small_aoi_bbox(SIZE)
    # Two tiles only: a narrow strip over the bottom row.
    w, s, e, n = bbox
    strip = (w, s, e, s + 0.2 * (n - s))
    tasks = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*strip), SIZE)
    assert len(tasks) == 2
    bad, other = tasks[0].name, tasks[1].name
    out = fx.tmpdir("fail")
    args, _ = cli.build_parser().parse_known_args(
        ["predict-map", "--model-dir", fx.ensemble_dir(), "--bbox", *map(str, strip), "--preset", "quick",
         "--source", "flaky", "--flaky-bad-tile", bad, "--tile-size", str(SIZE), "--out", out, "--min-obs", "999"])
    config, aoi, _, _, _ = predict_map.resolve(args)
    assert config.source == "flaky" and config.source_options == {"bad_tile": bad}
    tile_plan = map_plan.plan_tiles(aoi, SIZE, config.res)
    handler = model_handler.ClayEnsembleHandler(config.model_dir)
    spec = map_finish.MapFinishSpec(out=config.out, aoi_wkb=shapely.to_wkb(aoi), start=config.start,
                                    end=config.end, model_dir=config.model_dir)
    p = beam.Pipeline("DirectRunner")
    _ = p | map_pipeline.PredictMap(tile_plan, config, handler, finish=spec)
    result = p.run()                          # the job only: nothing of the launcher runs after it
    result.wait_until_finish()
    man = _manifest(out)
    # The job finished the map itself (a Flex Template launch never waits to do it).
    summary = json.load(open(os.path.join(out, "summary.json")))
    assert (summary["failed"], summary["empty"], summary["written"]) == (1, 1, 0)
    assert summary["outputs"]["stac_item"] == f"{out}/map.stac.json" and os.path.exists(summary["outputs"]["stac_item"])
    assert summary["outputs"]["mosaic"] is None and summary["outputs"]["vrt"] == []
    assert man[bad]["status"] == "failed" and "HTTP 503" in man[bad]["reason"]
    assert man[other]["status"] == "empty" and "999 bare observations" in man[other]["reason"]
    assert not os.path.exists(os.path.join(out, "tiles"))
    # Every counter in the one namespace.
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]}
    assert counters["map_tiles_planned"] == 2
    assert counters["map_tiles_failed"] == 1 and counters["map_tiles_empty"] == 1
    assert counters.get("map_tiles_written", 0) == 0


def test_the_plans_output_estimate_is_the_size_the_map_writes(mapped):
    """`plan.summarize`'s COG bytes (what --dry-run prints) against the tiles a real map of the
    same AOI wrote: every band counted (it once counted 3 of 7, a third of the size). Small
    64 px tiles carry more header per pixel than a continental map's, hence the loose bounds."""
    from s2mos_transforms.maps import plan as map_plan
    bbox, names = fx.small_aoi_bbox(SIZE)
    planned = map_plan.summarize(map_plan.plan_tiles(tiling.aoi_from_bbox(*bbox), SIZE, 10.0))
    written = sum(os.path.getsize(os.path.join(mapped, "tiles", f"{n}.tif")) for n in names)
    print(f"estimated {planned.output_bytes / 1e3:.0f} kB, written {written / 1e3:.0f} kB")
    assert 0.5 < written / planned.output_bytes < 2.0


def test_dry_run_plans_without_a_model_and_writes_nothing(tmp_path, capsys):
    bbox, names = fx.small_aoi_bbox(SIZE)
    out = str(tmp_path / "never")
    argv = ["predict-map", "--bbox", *map(str, bbox), "--preset", "quick", "--tile-size", str(SIZE), "--dry-run"]
    assert main(argv + ["--out", out]) == 0
    text = capsys.readouterr().out
    assert f"tiles: {len(names)} of {SIZE} px" in text and "core-hours" in text and "of COG tiles" in text
    assert "no --model-dir" in text and not os.path.exists(out)
    # With a model, its metadata (only) is read: the same plan, the model's settings (none recorded here).
    assert main(argv + ["--model-dir", fx.ensemble_dir()]) == 0
    text = capsys.readouterr().out
    assert f"tiles: {len(names)} of {SIZE} px" in text and "metadata records no extraction settings" in text


@pytest.mark.parametrize("case", ["unreadable", "point", "outside", "no-ensemble", "beam-flag", "unwritable-out"])
def test_bad_inputs_fail_in_one_line_before_any_work(tmp_path, capsys, case):
    out = str(tmp_path / "out")
    model_dir = fx.ensemble_dir()
    base = ["predict-map", "--model-dir", model_dir, "--preset", "quick", "--out", out]
    if case == "unreadable":
        argv, expect = base + ["--aoi", str(tmp_path / "missing.geojson")], "cannot read AOI"
    elif case == "point":
        (tmp_path / "p.geojson").write_text('{"type": "Point", "coordinates": [9.0, 48.5]}')
        argv, expect = base + ["--aoi", str(tmp_path / "p.geojson")], "Polygon"
    elif case == "outside":
        argv, expect = base + ["--bbox", "30.0", "-1.0", "30.1", "-0.9"], "does not overlap"
    elif case == "no-ensemble":
        argv = ["predict-map", "--model-dir", str(tmp_path), "--preset", "quick", "--out", out]
        expect = "ensemble/"
    elif case == "beam-flag":        # a typo in a Beam flag is found first, before the (missing) model
        argv = ["predict-map", "--model-dir", str(tmp_path), "--preset", "quick", "--out", out, "--num_worker", "2"]
        expect = "unknown option(s) --num_worker"
    else:
        (tmp_path / "afile").write_text("x")
        out = str(tmp_path / "afile" / "out")
        argv, expect = base[:-1] + [out], "--out"
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("s2mos: error:") and expect in err and "\n" not in err
    assert not os.path.exists(out)
