"""Maps read only the acquisitions a pixel can use (`sources.base.StackNeeds`): the scenes the
scene filter keeps and the S1 dates that can pair with them. A tile stack made that way (the
embedded world, Earth Engine) or trimmed after the read (any other source) must give every
pixel the very sequence the whole stack gives."""
from __future__ import annotations

import numpy as np
import pytest

from s2mos_transforms import bands, masks, sequences
from s2mos_transforms.grid import Tile, lonlat_to_xy, tile_containing, utm_epsg
from s2mos_transforms.maps import pixels
from s2mos_transforms.sources.base import ImageStack, SensorNeeds, StackNeeds, map_stack, takes_needs, trim_stack
from s2mos_transforms.sources.synthetic import SyntheticSource

FIELDS = ("s2_times", "s2", "scl", "scene_cloud_pct", "s1_times", "s1", "angle")
# Two ways to map: the paper's thresholds, and a looser scene filter with a wider S1 window.
CONFIGS = [sequences.ExtractConfig(),
           sequences.ExtractConfig(thresholds=masks.MaskThresholds(scene_cloud_max=40.0), s1_pair_max_days=2.0)]


def _same(a: ImageStack, b: ImageStack) -> bool:
    return all(np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), equal_nan=True) for f in FIELDS)


def _tile(lat: float, lon: float, size: int) -> Tile:
    epsg = utm_epsg(lat, lon)
    x, y = lonlat_to_xy(epsg, lon, lat)
    return tile_containing(epsg, float(x), float(y), size)


@pytest.fixture(scope="module")
def world():
    return SyntheticSource("quick")


@pytest.fixture(scope="module")
def straddling(world):
    """A 32 px tile across an orbit-band and a granule boundary (9° E, 49° N), whole."""
    tile = _tile(49.0, 9.0, 32)
    return tile, world.tile_stack(tile)


@pytest.mark.parametrize("extract", CONFIGS, ids=["paper", "loose"])
def test_the_world_leaves_out_exactly_what_trimming_removes(world, straddling, extract):
    tile, whole = straddling
    needs = StackNeeds.of(extract)
    made = world.tile_stack(tile, needs=needs)
    trimmed = trim_stack(whole, needs)
    assert all(np.array_equal(getattr(made, f), getattr(trimmed, f), equal_nan=True)
               for f in ("s2_times", "s2", "scl", "scene_cloud_pct"))
    # S1: the world pairs each orbit band's S1 with that band's S2 dates only, trimming with the
    # tile's S2 dates, so the world may leave out more; what it makes is the whole stack's
    slot = np.searchsorted(whole.s1_times, made.s1_times)
    assert np.isin(made.s1_times, trimmed.s1_times).all()
    assert np.array_equal(made.s1, whole.s1[slot], equal_nan=True) and np.array_equal(made.angle, whole.angle[slot])
    assert 0 < len(made.s2_times) < len(whole.s2_times) and 0 < len(made.s1_times) < len(whole.s1_times)
    # every S2 slot left has a scene that passes somewhere; every one dropped has none
    covered = ~np.all(whole.s2 == 0, axis=1)
    passes = (masks.scene_mask(whole.scene_cloud_pct, extract.thresholds.scene_cloud_max) & covered).any(axis=(1, 2))
    assert np.array_equal(np.isin(whole.s2_times, made.s2_times), passes)


@pytest.mark.parametrize("extract", CONFIGS, ids=["paper", "loose"])
@pytest.mark.parametrize("channels", [bands.CHANNELS_S2S1, bands.CHANNELS_S2, bands.CHANNELS_SERIES],
                         ids=["cnn", "s2", "series"])
def test_every_pixel_gets_the_sequence_of_the_whole_stack(world, straddling, extract, channels):
    tile, whole = straddling
    want = pixels.pixel_sequences(whole, None, channels, config=extract)
    got = pixels.pixel_sequences(map_stack(world, tile, None, None, StackNeeds.of(extract)), None, channels,
                                 config=extract)
    assert want.lengths.sum() > 0
    assert np.array_equal(got.lengths, want.lengths)
    assert np.array_equal(got.values, want.values, equal_nan=True)


def _hand_stack() -> ImageStack:
    """2 × 2 px, 3 S2 slots, 4 S1 dates:
    slot 0 (day 0): scene 5 % on the pixels it covers → kept;
    slot 1 (day 10): scene 50 % where it covers, unknown (NaN) where it does not → dropped;
    slot 2 (day 20): scene unknown on the pixels it covers → kept (the filter keeps unknowns).
    S1: day 0.5 (pairs with slot 0), day 10 (slot 1 only), day 15 (none), day 21 (slot 2, on the
    window's edge: the pairing's window is inclusive)."""
    day = np.timedelta64(86400, "s")
    t0 = np.datetime64("2019-05-01T10:00:00", "s")
    s2 = np.full((3, len(bands.S2_BANDS), 2, 2), 1500, np.int16)
    scl = np.full((3, 2, 2), 5, np.uint8)
    s2[1, :, 1, :], scl[1, 1, :] = 0, bands.SCL_NO_DATA          # slot 1 covers the top row only
    cloud = np.zeros((3, 2, 2), np.float32)
    cloud[0], cloud[1], cloud[2] = 5.0, 50.0, np.nan
    cloud[1, 1, :] = np.nan
    s1_times = np.array([t0 + day // 2, t0 + 10 * day, t0 + 15 * day, t0 + 21 * day], "datetime64[s]")
    s1 = np.arange(4 * 2 * 4, dtype=np.float32).reshape(4, 2, 2, 2) - 20
    return ImageStack(tile=Tile(32634, 0, 0, 2), s2_times=np.array([t0, t0 + 10 * day, t0 + 20 * day]), s2=s2,
                      scl=scl, scene_cloud_pct=cloud, s1_times=s1_times, s1=s1,
                      angle=np.array([31, 35, 39, 43], np.float32))


def test_trimming_judges_a_scene_on_the_pixels_it_covers():
    stack = _hand_stack()
    got = trim_stack(stack, StackNeeds())
    assert np.array_equal(got.s2_times, stack.s2_times[[0, 2]])
    assert np.array_equal(got.s1_times, stack.s1_times[[0, 3]])
    assert np.array_equal(got.s1, stack.s1[[0, 3]]) and np.array_equal(got.angle, [31, 43])
    assert np.array_equal(got.s2, stack.s2[[0, 2]]) and np.array_equal(got.scl, stack.scl[[0, 2]])
    # a looser scene filter keeps slot 1 and so its S1 date; a narrower window loses day 21
    loose = trim_stack(stack, StackNeeds(scene_cloud_max=60.0))
    assert len(loose.s2_times) == 3 and np.array_equal(loose.s1_times, stack.s1_times[[0, 1, 3]])
    narrow = trim_stack(stack, StackNeeds(s1_pair_max_days=0.9))
    assert np.array_equal(narrow.s1_times, stack.s1_times[[0]])
    # nothing left, then nothing to trim: empty stacks pass through
    empty = trim_stack(stack, StackNeeds(scene_cloud_max=0.0))
    assert len(empty.s2_times) == 1 and len(empty.s1_times) == 1                 # slot 2: unknown cloud
    none = trim_stack(stack.select([], []), StackNeeds())
    assert none.s2.shape == (0, len(bands.S2_BANDS), 2, 2) and none.s1.shape == (0, 2, 2, 2)


def test_a_one_scene_stack_stays_a_view_when_trimmed():
    stack = _hand_stack()
    per_date = np.array([5.0, 50.0, np.nan], np.float32)
    stack.scene_cloud_pct = np.broadcast_to(per_date[:, None, None], (3, 2, 2))
    stack.s2[1] = 1500
    stack.scl[1] = 5
    got = trim_stack(stack, StackNeeds())
    assert got.scene_cloud_pct.strides[1:] == (0, 0)
    assert np.array_equal(got.scene_cloud_pct[:, 0, 0], [5.0, np.nan], equal_nan=True)


def test_map_stack_asks_a_source_that_can_and_trims_for_one_that_cannot(world, straddling):
    tile, whole = straddling
    calls = []

    class Plain:                                     # the plugin contract: no `needs`
        def tile_stack(self, tile, start=None, end=None):
            calls.append(("plain", start, end))
            return world.tile_stack(tile, start, end)

    class Careful(Plain):
        def tile_stack(self, tile, start=None, end=None, needs=None):
            calls.append(("careful", needs))
            return world.tile_stack(tile, start, end, needs=needs)

    needs = StackNeeds()
    assert not takes_needs(Plain()) and takes_needs(Careful()) and takes_needs(world)
    a = map_stack(Plain(), tile, None, None, needs)
    b = map_stack(Careful(), tile, None, None, needs)
    assert calls == [("plain", None, None), ("careful", needs)]
    assert _same(a, b) and _same(a, trim_stack(whole, needs))
    assert _same(map_stack(Plain(), tile, None, None, None), whole)     # no needs: the whole stack


def test_one_sensor_at_a_time_gives_the_two_halves_of_the_whole_stack(world, straddling):
    """The world exports simulate a tile's S2, then its S1 (`SensorNeeds`): each half must be
    exactly that sensor's part of the whole stack, across orbit bands and granules."""
    tile, whole = straddling
    s2 = world.tile_stack(tile, needs=SensorNeeds(sensor=bands.SENSOR_S2))
    s1 = world.tile_stack(tile, needs=SensorNeeds(sensor=bands.SENSOR_S1))
    assert len(s2.s1_times) == 0 and s2.s1.shape[0] == 0 and len(s1.s2_times) == 0 and s1.s2.shape[0] == 0
    assert all(np.array_equal(np.asarray(getattr(s2, f)), np.asarray(getattr(whole, f)), equal_nan=True)
               for f in ("s2_times", "s2", "scl", "scene_cloud_pct"))
    assert all(np.array_equal(getattr(s1, f), getattr(whole, f), equal_nan=True) for f in ("s1_times", "s1", "angle"))
    assert s2.nbytes + s1.nbytes == pytest.approx(whole.nbytes, rel=1e-4) and max(s2.nbytes, s1.nbytes) < 0.7 * whole.nbytes


@pytest.mark.slow
def test_a_256_px_tile_holds_a_fraction_of_the_whole_stack(world):
    """The 256 px tile of the quick preset inside one orbit band (benchmarks/bench_world.py)."""
    tile = _tile(49.0, 8.9, 256)
    made = world.tile_stack(tile, needs=StackNeeds())
    whole = world.tile_stack(tile)
    assert _same(made, trim_stack(whole, StackNeeds()))
    assert made.nbytes < 0.35 * whole.nbytes


@pytest.mark.parametrize("extract", [
    sequences.ExtractConfig(thresholds=masks.MaskThresholds(scene_cloud_max=0.0)),     # no scene passes
    sequences.ExtractConfig(s1_pair_max_days=0.0)],                                  # no S1 date can pair
    ids=["no-scene", "no-pair"])
def test_a_stack_left_without_dates_still_gives_the_whole_stacks_sequences(world, straddling, extract):
    tile, whole = straddling
    made = world.tile_stack(tile, needs=StackNeeds.of(extract))
    assert len(made.s1_times) == 0
    for channels in (bands.CHANNELS_S2S1, bands.CHANNELS_S2, bands.CHANNELS_SERIES):
        want = pixels.pixel_sequences(whole, None, channels, config=extract)
        got = pixels.pixel_sequences(made, None, channels, config=extract)
        assert np.array_equal(got.lengths, want.lengths)
        assert np.array_equal(got.values, want.values, equal_nan=True) and got.values.shape == want.values.shape
