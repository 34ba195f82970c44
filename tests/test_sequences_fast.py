"""The element-wise masks/sequences chain gives exactly what the dense one gave (bit for bit).

The reference is the pre-rewrite code, kept verbatim in `benchmarks/_baseline_sequences.py`
(the benchmark times it too). Compared on real tile stacks of the embedded world, on the tile
contract's nodata / per-pixel scene cloud / S1 NaN, and on points with missing values.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import pathlib

import numpy as np
import pytest

import test_map_fixtures as fx
from s2mos_transforms import bands, masks, sequences
from s2mos_transforms.maps import pixels

_PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "_baseline_sequences.py"
_spec = importlib.util.spec_from_file_location("_baseline_sequences", _PATH)
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)

STAGES = ("acquired", "scene", "clear", "bare", "kept")
CONFIGS = [
    sequences.ExtractConfig(),
    # Thinning (max_dates below the series length), more outliers, no band-order rule, a looser
    # scene filter, a shorter S1 window: every branch of the chain.
    sequences.ExtractConfig(thresholds=masks.MaskThresholds(scene_cloud_max=40.0, outlier_sigma=1.5,
                                                            band_order=False),
                            s1_pair_max_days=0.5, max_dates=7),
    # A wide S1 window: several candidates per S2 date, so the nearest-valid choice matters.
    sequences.ExtractConfig(s1_pair_max_days=8.0),
]


def bits(a: np.ndarray) -> np.ndarray:
    """float32 values as their bit patterns: equal means identical, NaN and −0 included."""
    return np.ascontiguousarray(a, np.float32).view(np.uint32)


def contract_variant(stack, seed: int = 0):
    """The real stack with what the tile contract allows on top: S2 slots that miss half of the
    pixels (SCL 0, reflectance 0), a per-pixel scene cloud with NaN, S1 NaN per pixel and date,
    and the dates in shuffled order."""
    rng = np.random.default_rng(seed)
    s2, scl, s1 = stack.s2.copy(), stack.scl.copy(), stack.s1.copy()
    t2, h, w = scl.shape
    missing = (rng.random((t2, 1, 1)) < 0.3) & (np.arange(w)[None, None, :] < w // 2)
    scl[np.broadcast_to(missing, scl.shape)] = bands.SCL_NO_DATA
    s2[np.broadcast_to(missing[:, None], s2.shape)] = 0
    cloud = np.broadcast_to(np.asarray(stack.scene_cloud_pct, np.float32), scl.shape).copy()
    cloud += rng.uniform(-8, 8, (t2, h, w)).astype(np.float32)
    cloud[rng.random(cloud.shape) < 0.1] = np.nan
    s1[np.broadcast_to((rng.random((s1.shape[0], 1, h, w)) < 0.25), s1.shape)] = np.nan
    p2, p1 = rng.permutation(t2), rng.permutation(s1.shape[0])
    return dataclasses.replace(stack, s2_times=stack.s2_times[p2], s2=s2[p2], scl=scl[p2],
                               scene_cloud_pct=cloud[p2], s1_times=stack.s1_times[p1], s1=s1[p1],
                               angle=stack.angle[p1])


def baseline_block(stack, with_s1: bool, config, **replace):
    """Lengths, values and dates of every pixel by the reference chain (``replace``: other
    inputs than the stack's, e.g. a per-date scene cloud, which an `ImageStack` refuses)."""
    h, w = stack.s2.shape[-2:]
    a = {"s2": stack.s2, "scl": stack.scl, "scene_cloud_pct": stack.scene_cloud_pct, **replace}
    ex = base.extract(stack.s2_times, a["s2"], a["scl"], a["scene_cloud_pct"], stack.s1_times, stack.s1, config)
    data, keep = (ex["s2s1"], ex["paired"]) if with_s1 else (ex["s2"], ex["kept"])
    idx, n = base.select_dates(keep.reshape(keep.shape[0], h * w), config.max_dates)
    p, j = np.nonzero(idx.T >= 0)
    t = idx.T[p, j]
    return n.astype(np.int32), data.reshape(data.shape[:2] + (h * w,))[t, :, p], ex["s2_times"][t]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("channels", [bands.CHANNELS_S2S1, bands.CHANNELS_S2])
def test_pixel_sequences_identical_on_a_real_tile(config, channels):
    stack = fx.quick_stack(32)
    new = pixels.pixel_sequences(stack, channels=channels, config=config, block=300)     # several blocks
    lengths, values = base.pixel_sequences(stack, None, channels == bands.CHANNELS_S2S1, config, block=300)
    assert lengths.sum() > 100 and values.shape[1] == len(channels)
    np.testing.assert_array_equal(new.lengths, lengths)
    np.testing.assert_array_equal(bits(new.values), bits(values))


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("with_s1", [True, False])
def test_block_sequences_identical_on_the_tile_contract(config, with_s1):
    stack = contract_variant(fx.quick_stack(32))
    lengths, values, times = baseline_block(stack, with_s1, config)
    new = sequences.block_sequences(stack.s2_times, stack.s2, stack.scl, stack.scene_cloud_pct,
                                    stack.s1_times, stack.s1, None, with_s1, config)
    assert lengths.sum() > 50
    np.testing.assert_array_equal(new.lengths, lengths)
    np.testing.assert_array_equal(bits(new.values), bits(values))
    np.testing.assert_array_equal(new.times, times)
    # Nodata as NaN reflectance instead of 0 (how a float source marks it): the same sequences.
    nan_s2 = stack.s2.astype(np.float32)
    nan_s2[np.broadcast_to((stack.scl == bands.SCL_NO_DATA)[:, None], nan_s2.shape)] = np.nan
    again = sequences.block_sequences(stack.s2_times, nan_s2, None, stack.scene_cloud_pct,
                                      stack.s1_times, stack.s1, None, with_s1, config)
    ref = baseline_block(stack, with_s1, config, s2=nan_s2, scl=None)
    np.testing.assert_array_equal(again.lengths, ref[0])
    np.testing.assert_array_equal(bits(again.values), bits(ref[1]))
    # A subset of pixels, in any order, and a per-date scene cloud.
    px = np.random.default_rng(1).permutation(32 * 32)[:200]
    per_date = stack.scene_cloud_pct[:, 0, 0]
    sub = sequences.block_sequences(stack.s2_times, stack.s2, stack.scl, per_date, stack.s1_times, stack.s1,
                                    px, with_s1, config)
    ref = baseline_block(stack, with_s1, config, scene_cloud_pct=per_date)
    offsets = np.concatenate([[0], np.cumsum(ref[0])])
    want = np.concatenate([np.arange(offsets[p], offsets[p + 1]) for p in px])
    np.testing.assert_array_equal(sub.lengths, ref[0][px])
    np.testing.assert_array_equal(bits(sub.values), bits(ref[1][want]))


@pytest.mark.parametrize("config", CONFIGS)
def test_observation_masks_identical_stage_by_stage(config):
    stack = contract_variant(fx.quick_stack(32), seed=2)
    rng = np.random.default_rng(4)
    s2 = stack.s2.astype(np.float32)
    s2[rng.random(s2.shape) < 0.01] = np.nan                      # single missing bands
    scl = stack.scl.astype(np.float64)
    scl[rng.random(scl.shape) < 0.05] = np.nan                    # unknown classes are kept
    for cloud in (stack.scene_cloud_pct, stack.scene_cloud_pct[:, 0, 0], None):
        new = masks.observation_masks(s2, scl, cloud, config.thresholds)
        ref = base.observation_masks(s2, scl, cloud, config.thresholds)
        for stage, want in zip(STAGES, ref):
            np.testing.assert_array_equal(getattr(new, stage), want, err_msg=stage)
    assert 0 < new.kept.sum() < new.bare.sum() < new.clear.sum()


def test_outlier_rule_identical_where_rounding_decides():
    """Ten dates, nine equal and one spike: the spike is exactly 3 sd away (sqrt(n − 1)), so
    the float64 rounding of the sums decides, spike by spike. Any other summation order (or
    a non-strict test) flips hundreds of these; the rewrite must flip none."""
    rng = np.random.default_rng(5)
    t, c, p = 10, 2, 4000
    for dtype in (np.float32, np.float64):       # reflectance (exact sums of means) and any float
        x = np.repeat(rng.uniform(0.01, 0.6, (1, c, p)).astype(dtype).astype(np.float64), t, axis=0)
        spike = rng.integers(0, t, p)
        x[spike, :, np.arange(p)] += rng.uniform(-0.3, 0.3, (p, c)).astype(dtype)
        keep = np.ones((t, p), bool)
        keep[:, : p // 4] = rng.random((t, p // 4)) < 0.9          # some pixels with fewer dates
        got = masks.outlier_mask(x, keep, 3.0)
        want = base.outlier_mask(x, keep, 3.0)
        np.testing.assert_array_equal(got, want)
        assert 500 < (keep & ~want).sum() < 0.9 * p                 # both outcomes occur, often
    # Values spanning 12 orders of magnitude, other sigmas, random keep masks.
    t, c, p = 60, 3, 500
    x = rng.normal(0, 1, (t, c, p)) * 10.0 ** rng.integers(-6, 6, (t, c, p))
    x[rng.random((t, c, p)) < 0.02] *= 50
    keep = rng.random((t, p)) < 0.7
    for sigma in (3.0, 1.0, 0.5):
        got = masks.outlier_mask(x, keep, sigma)
        np.testing.assert_array_equal(got, base.outlier_mask(x, keep, sigma))
        assert 0 < got.sum() < keep.sum()


def point_observations(n: int = 25):
    """Real observations of the quick world at sample points, with holes punched in them."""
    from s2mos_transforms.sources.base import SamplePoint
    from s2mos_transforms.sources.synthetic import SyntheticSource

    src = fx.quick_source() if hasattr(fx, "quick_source") else SyntheticSource("quick")
    df = src.sample_points(n)
    pts = [SamplePoint(str(r.point_id), float(r.lat), float(r.lon), float(r.clay)) for r in df.itertuples()]
    per_point = sequences.point_observations(src.observations(pts))
    rng = np.random.default_rng(6)
    out = {}
    for i, (pid, obs) in enumerate(sorted(per_point.items())):
        s2, s1 = obs.s2_dn.copy(), obs.s1_db.copy()
        s2[rng.random(s2.shape) < 0.03] = np.nan
        s1[rng.random(s1.shape) < 0.1] = np.nan
        scl = None if obs.scl is None or i % 5 == 4 else obs.scl.copy()
        if scl is not None:
            scl[rng.random(scl.shape) < 0.05] = np.nan
        cloud = None if obs.scene_cloud_pct is None or i % 7 == 6 else obs.scene_cloud_pct.copy()
        if cloud is not None:
            cloud[rng.random(cloud.shape) < 0.05] = np.nan
        p2 = rng.permutation(obs.s2_times.size)
        out[pid] = sequences.PointObservations(obs.s2_times[p2], s2[p2], None if scl is None else scl[p2],
                                               None if cloud is None else cloud[p2], obs.s1_times, s1)
    return out


@pytest.mark.parametrize("config", CONFIGS)
def test_point_records_identical_with_missing_values(config):
    records = 0
    for pid, obs in point_observations().items():
        ex = obs.extract(config)
        ref = base.extract(obs.s2_times, obs.s2_dn, obs.scl, obs.scene_cloud_pct, obs.s1_times, obs.s1_db, config)
        for stage in STAGES:
            np.testing.assert_array_equal(getattr(ex.masks, stage), ref[stage], err_msg=f"{pid} {stage}")
        np.testing.assert_array_equal(ex.pair_index, ref["pair_index"])
        new = sequences.point_record(pid, 0.0, 0.0, 0.0, ex, config.max_dates)
        want = base.point_record(ref, config.max_dates)
        for key in ("s2s1_length", "s2_length"):
            assert new[key] == want[key], (pid, key)
        for key in ("s2s1_dates", "s2_dates"):
            np.testing.assert_array_equal(new[key], want[key])
        for key in ("s2s1", "s2"):
            np.testing.assert_array_equal(bits(new[key]), bits(want[key]))
        records += new["s2s1_length"] > 0
    assert records > 5
