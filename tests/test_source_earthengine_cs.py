"""Cloud Score+ on the `earthengine` source's tiles, offline (tests/ee_fake.py serves ``cs_cdf``
from the embedded world's cloud field): the tile requests link ``cs_cdf``, stay under the 48 MB
limit with its bytes counted, and a pixel's SCL is masked exactly as the point at its centre."""
from __future__ import annotations

import numpy as np
import pytest

import ee_fake
from ee_fake import fake, key_file, world  # noqa: F401 — fixtures
from s2mos_transforms import bands
from s2mos_transforms.sources import ee_requests, ee_tiles
from s2mos_transforms.grid import Tile
from s2mos_transforms.sources.base import SamplePoint
from s2mos_transforms.sources.earthengine import EarthEngineSource

START, END = "2018-01-01", "2018-12-31"


@pytest.fixture(scope="module")
def tile():
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.world.presets import get_preset
    aoi = tiling.aoi_from_bbox(*get_preset("quick").aoi_bbox)
    tiles = tiling.tiles_for_aoi(aoi, 24)
    return tiles[len(tiles) // 2].tile


def test_cloud_score_scl_is_one_rule():
    scl = np.array([4, 4, 4, 0, 4, 4], np.uint8)
    cs = np.array([0.2, 0.6, 0.9, 0.1, np.nan, ee_requests.CS_MISSING])
    got = ee_requests.cloud_score_scl(scl, cs, 0.6)
    # below the threshold → cloud; at or above → kept; no data stays no data; unknown cs → kept
    assert got.tolist() == [bands.SCL_CLOUD_HIGH, 4, 4, 0, 4, 4] and got.dtype == np.uint8


def test_tile_with_cloud_score_plus_masks_like_the_points(fake, world, tile, monkeypatch):
    # A small request budget so the S2 images take several requests, cs_cdf bytes counted.
    per_px = ee_tiles.bytes_per_pixel(bands.SENSOR_S2, True)
    assert per_px == ee_tiles.S2_BYTES_PER_PIXEL + 5
    monkeypatch.setattr(ee_tiles, "REQUEST_BYTES_MAX", 30 * tile.size * tile.size * per_px)
    src = EarthEngineSource("s2mos-test-project", cloud_score_plus=True, cs_threshold=0.5, backoff_s=0.001)
    got = src.tile_stack(tile, START, END)
    plain = world.tile_stack(tile, START, END)

    # Everything but SCL is the world's; SCL turns to 9 where Cloud Score+ says cloud, only there.
    for f in ("s2_times", "s2", "scene_cloud_pct", "s1_times", "s1", "angle"):
        assert np.array_equal(np.asarray(getattr(got, f)), np.asarray(getattr(plain, f)), equal_nan=True), f
    changed = got.scl != plain.scl
    assert changed.any() and (got.scl[changed] == bands.SCL_CLOUD_HIGH).all()
    assert (plain.scl[changed] != bands.SCL_NO_DATA).all()

    # The S2 pixel requests link cs_cdf and fit the limit with its bytes.
    s2 = [b for b in fake.pixel_requests if "COPERNICUS/S2_SR_HARMONIZED" in
          ee_fake.parse_expression(b["expression"])["collections"]]
    assert len(s2) == -(-len(got.s2_times) // 30)
    for body in s2:
        asked = ee_fake.parse_expression(body["expression"])
        assert asked["linked"] == [["cs_cdf"]] and "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED" in asked["collections"]
        assert ["cs_cdf"] in asked["select"] and ee_requests.CS_MISSING in asked["unmask"]
        assert len(asked["in_list"][0][1]) * tile.size ** 2 * per_px <= ee_tiles.REQUEST_BYTES_MAX

    # Same semantics as points: the pixel's SCL is the SCL of the point at its centre.
    lon, lat = tile.pixel_centres_lonlat()
    picks = [(0, 0), (5, 17), (tile.size - 1, 3), (12, 12)]
    pts = [SamplePoint(f"px{r}_{c}", float(lat[r, c]), float(lon[r, c])) for r, c in picks]
    obs = EarthEngineSource("s2mos-test-project", cloud_score_plus=True, cs_threshold=0.5,
                            start=START, end=END).observations(pts)
    for (r, c), p in zip(picks, pts):
        rows = obs[(obs["point_id"] == p.point_id) & (obs["sensor"] == bands.SENSOR_S2)]
        when = rows["datetime"].dt.tz_convert(None).to_numpy().astype("datetime64[s]")
        slots = np.searchsorted(got.s2_times, when)
        assert np.array_equal(got.s2_times[slots], when)
        assert np.array_equal(got.scl[slots, r, c], rows["SCL"].to_numpy(dtype=np.uint8))


def test_without_cloud_score_plus_nothing_is_linked(fake, tile):
    EarthEngineSource("s2mos-test-project", backoff_s=0.001).tile_stack(tile, START, "2018-03-31")
    for body in fake.pixel_requests:
        asked = ee_fake.parse_expression(body["expression"])
        assert asked["linked"] == [] and "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED" not in asked["collections"]


def test_a_pixel_request_stays_under_the_band_cap_on_small_tiles():
    """At 32 px the 48 MB budget would take ~1 500 S2 images (16 000 bands): the band cap binds."""
    small, large = Tile(32634, 0, 0, 32), Tile(32634, 0, 0, 512)
    for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
        for cs in (False, True):
            n = ee_tiles.images_per_request(small, sensor, cs)
            assert n * ee_tiles.bands_per_image(sensor, cs) <= ee_tiles.MAX_BANDS_PER_REQUEST
            assert n * 32 * 32 * ee_tiles.bytes_per_pixel(sensor, cs) < ee_tiles.REQUEST_BYTES_MAX
    # At 512 px the bytes bind: 48 MB / (512² × 33 B) = 5 S2 images.
    assert ee_tiles.images_per_request(large, bands.SENSOR_S2) == 50_331_648 // (512 * 512 * 33) == 5
