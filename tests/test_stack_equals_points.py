"""The tile contract: every pixel of a tile stack equals the point fan-out at its centre.

A 32 × 32 tile (10 m) of the quick world at 9° E, 49° N straddles an orbit-band boundary (the
two halves have their own S1/S2 dates) and a granule boundary (their own scene cloud). All
1 024 pixels are checked: their S2 and S1 dates, values and scene cloud against
`SyntheticSource.observations` of points at the pixel centres, then the per-pixel sequences of
`maps.pixels.pixel_sequences` against the dataset's `sequences.point_record`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from s2mos_transforms import bands, pairing, sequences
from s2mos_transforms.grid import lonlat_to_xy, tile_containing, utm_epsg
from s2mos_transforms.maps import pixels
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.sources.base import S2_NODATA, s2_missing
from s2mos_transforms.sources.synthetic import SyntheticSource
from s2mos_transforms.world.simulator import GRANULE_DEG, orbit_band

SIZE = 32


@pytest.fixture(scope="module")
def world():
    src = SyntheticSource("quick")
    epsg = utm_epsg(49.0, 9.0)
    x, y = lonlat_to_xy(epsg, 9.0, 49.0)
    tile = tile_containing(epsg, float(x), float(y), SIZE)
    stack = src.tile_stack(tile)
    lon, lat = tile.pixel_centres_lonlat()
    points = [SamplePoint(f"p{i:04d}", float(a), float(o)) for i, (a, o) in enumerate(zip(lat.ravel(), lon.ravel()))]
    obs = src.observations(points)
    return src, tile, stack, points, obs


def _flat(stack):
    n = SIZE * SIZE
    return (stack.s2.reshape(-1, len(bands.S2_BANDS), n), stack.scl.reshape(-1, n),
            stack.scene_cloud_pct.reshape(-1, n), stack.s1.reshape(-1, 2, n))


def test_tile_straddles_two_orbit_bands_and_two_granules(world):
    src, tile, stack, _, _ = world
    lon, lat = tile.pixel_centres_lonlat()
    assert np.unique(orbit_band(lon)).size == 2
    granules = {(a, o) for a, o in zip(np.floor(lat.ravel() / GRANULE_DEG), np.floor(lon.ravel() / GRANULE_DEG))}
    assert len(granules) >= 2 and np.unique(np.floor(lat / GRANULE_DEG)).size == 2
    s2, scl, cloud, s1 = _flat(stack)
    # The union: more slots than any pixel has; each slot covers some pixels and not others.
    covered = ~s2_missing(s2, scl)
    assert covered.sum(axis=0).max() < len(stack.s2_times)
    assert covered.any(axis=1).all() and not covered.all(axis=1).any()
    assert (s2[~np.broadcast_to(covered[:, None], s2.shape)] == S2_NODATA).all()
    assert np.isnan(cloud[~covered]).all() and np.isfinite(cloud[covered]).all()
    s1_cov = np.isfinite(s1).all(axis=1)
    assert s1_cov.any(axis=1).all() and not s1_cov.all(axis=1).any()
    assert np.all(np.diff(stack.s2_times.astype(np.int64)) >= 0) and stack.s2_times.dtype == "datetime64[s]"
    assert np.isfinite(stack.angle).all() and np.unique(stack.angle).size >= 4   # 2 bands × 2–4 orbits
    # Per-pixel scene cloud: on some dates the two granules fall on either side of the filter.
    c = np.where(covered, cloud, np.nan)
    assert ((np.nanmin(c, axis=1) < bands.SCENE_CLOUD_MAX_PCT) & (np.nanmax(c, axis=1) >= bands.SCENE_CLOUD_MAX_PCT)).any()


def test_every_pixel_equals_the_point_fan_out(world):
    _, _, stack, points, obs = world
    s2, scl, cloud, s1 = _flat(stack)
    code = pd.Categorical(obs["point_id"], categories=[p.point_id for p in points]).codes
    assert (code >= 0).all()
    # S2: the covered slots of each pixel, pixel-major then time (the order of `observations`).
    o2 = obs[obs["sensor"] == bands.SENSOR_S2]
    px, t = np.nonzero(~s2_missing(s2, scl).T)
    np.testing.assert_array_equal(px, code[obs["sensor"].to_numpy() == bands.SENSOR_S2])
    times = o2["datetime"].dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    np.testing.assert_array_equal(stack.s2_times[t], times)
    np.testing.assert_array_equal(s2[t, :, px], o2[list(bands.S2_BANDS)].to_numpy(np.int16))
    np.testing.assert_array_equal(scl[t, px], o2["SCL"].to_numpy(np.uint8))
    np.testing.assert_array_equal(cloud[t, px], o2["scene_cloud_pct"].to_numpy(np.float32))
    # S1: the finite slots of each pixel, and each acquisition's incidence angle.
    o1 = obs[obs["sensor"] == bands.SENSOR_S1]
    px, t = np.nonzero(np.isfinite(s1).all(axis=1).T)
    np.testing.assert_array_equal(px, code[obs["sensor"].to_numpy() == bands.SENSOR_S1])
    np.testing.assert_array_equal(stack.s1_times[t], o1["datetime"].dt.tz_convert(None).to_numpy().astype("datetime64[s]"))
    np.testing.assert_array_equal(s1[t, :, px], o1[["VV", "VH"]].to_numpy(np.float32))
    np.testing.assert_array_equal(stack.angle[t], o1["angle"].to_numpy(np.float32))


def test_nodata_is_masked_and_never_paired(world):
    _, _, stack, _, _ = world
    s2, scl, cloud, s1 = _flat(stack)
    missing = s2_missing(s2, scl)
    ex = sequences.extract(stack.s2_times, s2, scl, cloud, stack.s1_times, s1)
    assert ex.kept.any() and not ex.kept[missing].any() and not ex.masks.clear[missing].any()
    s1_ok = np.isfinite(s1).all(axis=1)
    i, p = np.nonzero(ex.pair_index >= 0)
    assert i.size and s1_ok[ex.pair_index[i, p], p].all()
    # Not vacuous: kept dates whose nearest S1 slot is another band's (NaN here) exist.
    nearest = pairing.pair_candidates(stack.s2_times, stack.s1_times)[:, 0]
    assert (ex.kept & (nearest[:, None] >= 0) & ~s1_ok[np.maximum(nearest, 0)]).any()


@pytest.mark.parametrize("channels, key", [(bands.CHANNELS_S2S1, "s2s1"), (bands.CHANNELS_S2, "s2")])
def test_pixel_sequences_equal_the_dataset_records(world, channels, key):
    _, _, stack, points, obs = world
    seqs = pixels.pixel_sequences(stack, channels=channels, block=300)
    per_point = sequences.point_observations(obs)
    assert seqs.lengths.size == len(points) and (seqs.lengths > 0).sum() > 100
    for i, p in enumerate(points):
        rec = sequences.point_record(p.point_id, p.lat, p.lon, 0.0, per_point[p.point_id].extract())
        assert seqs.lengths[i] == rec[f"{key}_length"], p.point_id
        np.testing.assert_array_equal(seqs.sequence(i), rec[key], err_msg=p.point_id)


def test_union_stack_does_not_depend_on_date_blocks(world, monkeypatch):
    """The straddling tile is simulated band by band in date blocks; the blocks change nothing."""
    from s2mos_transforms.world import simulator
    src, tile, stack, _, _ = world
    monkeypatch.setattr(simulator, "CHUNK_ELEMENTS", SIZE * SIZE * 7)           # 7-date blocks
    small = src.tile_stack(tile)
    for name in ("s2_times", "s2", "scl", "scene_cloud_pct", "s1_times", "s1", "angle"):
        np.testing.assert_array_equal(getattr(small, name), getattr(stack, name), err_msg=name)
