"""The `earthengine` source's tiles, offline: computePixels (NPY on the tile's exact grid)
through the real ``ee`` client over the fake transport of tests/ee_fake.py; the stack and a
predict-map COG equal the synthetic ones."""
from __future__ import annotations

import json

import numpy as np
import pytest

import ee_fake
from ee_fake import fake, key_file, world  # noqa: F401 — fixtures
from pipelines.cli import main
from s2mos_transforms import bands, sources
from s2mos_transforms.sources.earthengine import EarthEngineSource


def _source(**kw) -> EarthEngineSource:
    kw.setdefault("backoff_s", 0.001)
    return EarthEngineSource("s2mos-test-project", **kw)


# ---- tiles: computePixels on the tile's grid ------------------------------------------------

@pytest.fixture(scope="module")
def tile():
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.world.presets import get_preset
    aoi = tiling.aoi_from_bbox(*get_preset("quick").aoi_bbox)
    tiles = tiling.tiles_for_aoi(aoi, 32)
    return tiles[len(tiles) // 2].tile


def _same_stack(a, b) -> bool:
    return all(np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), equal_nan=True)
               for f in ("s2_times", "s2", "scl", "scene_cloud_pct", "s1_times", "s1", "angle"))


def test_tile_stack_equals_the_synthetic_tile_and_requests_fit(fake, world, tile, monkeypatch):
    from s2mos_transforms.sources import ee_tiles
    # A budget of 40 S2 / 80 S1 images per request at 32 px, so the stack takes several requests.
    monkeypatch.setattr(ee_tiles, "REQUEST_BYTES_MAX", 40 * 32 * 32 * ee_tiles.S2_BYTES_PER_PIXEL)
    src = _source()
    got = src.tile_stack(tile, "2018-01-01", "2019-12-31")
    want = world.tile_stack(tile, "2018-01-01", "2019-12-31")
    assert got.s2.dtype == np.int16 and got.scl.dtype == np.uint8 and got.s1.dtype == np.float32
    assert _same_stack(got, want)

    meta = [r for r in fake.requests if r["asked"]["rect"]]                 # one per sensor
    assert sorted(r["sensor"] for r in meta) == [bands.SENSOR_S1, bands.SENSOR_S2]
    x0, y0, x1, y1 = tile.bounds
    for r in meta:
        assert r["asked"]["rect"] == [[x0, y0, x1, y1]] and r["asked"]["crs"] == [f"EPSG:{tile.epsg}"]
        assert r["asked"]["dates"] == [("2018-01-01", "2020-01-01")]
    n_s2, n_s1 = len(want.s2_times), len(want.s1_times)
    per_request = {bands.SENSOR_S2: 40, bands.SENSOR_S1: 40 * 33 // 15}
    assert len(fake.pixel_requests) == -(-n_s2 // 40) + -(-n_s1 // per_request[bands.SENSOR_S1])
    for body in fake.pixel_requests:
        asked = ee_fake.parse_expression(body["expression"])
        s2 = "COPERNICUS/S2_SR_HARMONIZED" in asked["collections"]
        assert body["fileFormat"] == "NPY" and asked["to_bands"]
        assert body["grid"] == {"crsCode": f"EPSG:{tile.epsg}",
                                "affineTransform": {"scaleX": 10.0, "shearX": 0.0, "translateX": tile.x_min,
                                                    "shearY": 0.0, "scaleY": -10.0, "translateY": tile.y_max},
                                "dimensions": {"width": 32, "height": 32}}
        ids = asked["in_list"][0][1]
        assert asked["in_list"][0][0] == "system:index"
        assert asked["select"] == [list(bands.S2_BANDS) + ["SCL"]] if s2 else [["VV", "VH", "angle"]]
        per_px = ee_tiles.S2_BYTES_PER_PIXEL if s2 else ee_tiles.S1_BYTES_PER_PIXEL
        assert len(ids) * 32 * 32 * per_px <= ee_tiles.REQUEST_BYTES_MAX       # bands + mask bytes
        assert asked["unmask"] == ([0] if s2 else [ee_tiles.S1_FILL])           # masks explicit
    assert src.counters.totals["ee_bytes"] > 0


def test_an_oversize_pixel_request_is_halved(fake, world, tile):
    fake.pixel_faults.append(lambda body: (400, "Total request size (60000000 bytes) must be less than or equal "
                                                "to 50331648 bytes.")
                             if len(ee_fake.parse_expression(body["expression"])["in_list"][0][1]) > 50 else None)
    src = _source()
    assert _same_stack(src.tile_stack(tile, "2018-01-01", "2019-12-31"),
                       world.tile_stack(tile, "2018-01-01", "2019-12-31"))
    assert src.counters.totals["ee_splits"] >= 2


def test_a_permanent_pixel_error_names_the_tile(fake, tile):
    fake.pixel_faults.append(lambda body: (403, "Permission denied on asset COPERNICUS/S1_GRD."))
    with pytest.raises(sources.SourceError, match=f"tile {tile.name}: Earth Engine: HTTP 403: Permission denied"):
        _source().tile_stack(tile, "2018-01-01", "2019-12-31")


@pytest.mark.slow
def test_predict_map_with_earthengine_equals_synthetic(fake, key_file, tmp_path):
    import rasterio

    import test_map_fixtures as fx
    bbox, names = fx.small_aoi_bbox(32)
    common = ["predict-map", "--model-dir", fx.ensemble_dir(), "--bbox", *map(str, bbox), "--tile-size", "32",
              "--start", "2018-01-01", "--end", "2019-12-31", "--no-report"]
    ee_flags = ["--source", "earthengine", "--ee-project", "s2mos-test", "--ee-credentials", str(key_file[0]),
                "--ee-backoff", "0.001"]
    assert main(common + ["--out", str(tmp_path / "syn")]) == 0
    fake.pixel_faults.append(ee_fake.burst(503, "The service is currently unavailable.", 1, 2))
    assert main(common + ee_flags + ["--out", str(tmp_path / "ee")]) == 0
    for name in names:
        with rasterio.open(tmp_path / "syn" / "tiles" / f"{name}.tif") as a, \
                rasterio.open(tmp_path / "ee" / "tiles" / f"{name}.tif") as b:
            assert a.transform == b.transform and a.crs == b.crs
            assert np.array_equal(a.read(), b.read(), equal_nan=True)
            assert (b.read(1) != b.nodata).any()                             # a real map, not nodata
    assert len(fake.pixel_requests) >= 2 * len(names) + 2                   # the 503 burst was retried
    settings = (tmp_path / "ee" / "map_settings.json").read_text()
    assert "earthengine" in settings
    texts = [p for p in (tmp_path / "ee").rglob("*") if p.suffix in (".json", ".jsonl", ".md", ".txt")]
    assert any(p.name == "map_settings.json" for p in texts) and len(texts) >= 2   # settings, STAC, tiles.jsonl …
    for path in texts:                                  # credentials nowhere in the map's outputs
        text = path.read_text()
        assert key_file[1].splitlines()[1] not in text and "fake-access-token" not in text

    # A tile Earth Engine refuses is recorded as failed with the reason; the others are written.
    bad = names[0]
    fake.pixel_faults[:] = [lambda body: (403, "Permission denied.")
                            if ee_fake.tile_of(body["grid"]["crsCode"], body["grid"]["affineTransform"]["translateX"],
                                               body["grid"]["affineTransform"]["translateY"], 320).name == bad
                            else None]
    main(common + ee_flags + ["--out", str(tmp_path / "ee403")])
    records = {r["tile"]: r for r in map(json.loads, (tmp_path / "ee403" / "tiles.jsonl").read_text().splitlines())}
    assert records[bad]["status"] == "failed" and "HTTP 403: Permission denied" in records[bad]["reason"]
    assert all(records[n]["status"] == "written" for n in names if n != bad)


def test_granules_of_one_datatake_are_one_slot(fake, world, tile):
    """Every 4th S2 acquisition comes as two overlapping granule images (west 60 %, east 60 %):
    merged into one slot, the stack equals the world's."""
    fake.overlap_every = 4
    src = _source()
    got = src.tile_stack(tile, "2018-01-01", "2019-12-31")
    assert _same_stack(got, world.tile_stack(tile, "2018-01-01", "2019-12-31"))
    s2_meta = [r for r in fake.requests if r["asked"]["rect"] and r["sensor"] == bands.SENSOR_S2]
    assert len(s2_meta) == 1
    ids = [i for b in fake.pixel_requests if "COPERNICUS/S2_SR_HARMONIZED" in json.dumps(b["expression"])
           for i in ee_fake.parse_expression(b["expression"])["in_list"][0][1]]
    assert len(ids) == len(got.s2_times) + -(-len(got.s2_times) // 4)      # the twins were fetched too


def _fetched_ids(fake, collection: str) -> list[str]:
    return [i for b in fake.pixel_requests if collection in json.dumps(b["expression"])
            for i in ee_fake.parse_expression(b["expression"])["in_list"][0][1]]


def test_a_map_fetches_only_the_images_its_pixels_can_use(fake, world, tile):
    """With `needs` (what predict-map passes) the scenes the scene filter drops and the S1 images
    that cannot pair with what is left are listed but never fetched; the stack is the whole
    one trimmed, with datatakes of two granules kept or dropped whole."""
    from s2mos_transforms.sources.base import StackNeeds, trim_stack
    fake.overlap_every = 4
    whole = _source().tile_stack(tile, "2018-01-01", "2019-12-31")
    all_s2, all_s1 = _fetched_ids(fake, "S2_SR_HARMONIZED"), _fetched_ids(fake, "S1_GRD")
    fake.pixel_requests.clear()
    src = _source()
    needs = StackNeeds()
    got = src.tile_stack(tile, "2018-01-01", "2019-12-31", needs=needs)
    assert _same_stack(got, trim_stack(whole, needs))
    assert _same_stack(got, world.tile_stack(tile, "2018-01-01", "2019-12-31", needs=needs))
    s2_ids, s1_ids = _fetched_ids(fake, "S2_SR_HARMONIZED"), _fetched_ids(fake, "S1_GRD")
    assert len(s1_ids) == len(got.s1_times) < len(all_s1) / 2
    assert len(got.s2_times) < len(s2_ids) < len(all_s2) / 2                 # twins come with their datatake
    assert src.counters.totals["ee_images_skipped"] == len(all_s2) + len(all_s1) - len(s2_ids) - len(s1_ids)


def test_usable_images_keep_a_datatake_whole_and_unknown_cloud():
    """A datatake with one granule under the scene threshold keeps both granules (the first by
    index still wins where they overlap, as in the whole stack); a scene without
    CLOUDY_PIXEL_PERCENTAGE is kept; S1 images pair with the datatakes kept, window inclusive."""
    from s2mos_transforms.sources import ee_tiles
    from s2mos_transforms.sources.base import StackNeeds
    day = 86_400_000
    t0 = 1_546_681_439_000                                         # 2019-01-05T09:43:59Z
    s2 = [{"index": "20190105T094359_20190105T094400_T34TFL", "t": t0, "cloud": 35.0},
          {"index": "20190105T094359_20190105T094400_T34TGL", "t": t0, "cloud": 4.0},
          {"index": "20190110T094401_20190110T094402_T34TFL", "t": t0 + 5 * day, "cloud": 60.0},
          {"index": "20190115T094359_20190115T094400_T34TFL", "t": t0 + 10 * day, "cloud": None}]
    s1 = [{"index": f"S1A_{k}", "t": t0 + k * day} for k in (1, 5, 7, 11)]
    kept_s2, kept_s1 = ee_tiles.usable_meta(s2, s1, StackNeeds())
    assert kept_s2 == [s2[0], s2[1], s2[3]]
    assert [m["index"] for m in kept_s1] == ["S1A_1", "S1A_11"]
    kept_s2, kept_s1 = ee_tiles.usable_meta(s2, s1, StackNeeds(scene_cloud_max=3.0, s1_pair_max_days=2.0))
    assert kept_s2 == [s2[3]] and [m["index"] for m in kept_s1] == ["S1A_11"]
    assert ee_tiles.usable_meta([], s1, StackNeeds()) == ([], [])          # no S2 image: nothing to pair
