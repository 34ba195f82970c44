"""Observation masks against hand-computed cases, and point/pixel shape equivalence."""
import numpy as np
import pytest

from s2mos_transforms import bands, masks

# L2A integers of a bare dry soil: NDVI (1800-1200)/3000 = 0.2, NBR2 (2800-2500)/5300 = 0.0566.
SOIL = np.array([800, 1000, 1200, 1400, 1500, 1600, 1800, 1900, 2800, 2500], np.float32)
VEG = np.array([300, 600, 300, 1000, 2500, 3000, 3500, 3600, 2000, 1000], np.float32)
B = {b: i for i, b in enumerate(bands.S2_BANDS)}


def with_bands(base, **values):
    out = np.array(base, np.float32).copy()
    for name, v in values.items():
        out[B[name]] = v
    return out


def test_indices_hand_computed():
    s2 = np.stack([SOIL, VEG])
    np.testing.assert_allclose(masks.ndvi(s2), [0.2, (3500 - 300) / 3800])
    np.testing.assert_allclose(masks.nbr2(s2), [300 / 5300, 1000 / 3000])
    # Reflectance or integers: the same indices (ratios).
    np.testing.assert_allclose(masks.ndvi(masks.to_reflectance(s2)), masks.ndvi(s2), rtol=1e-6)
    # Zero denominators and missing bands give NaN, which fails every test.
    zero = with_bands(SOIL, B8=0, B4=0)
    assert np.isnan(masks.ndvi(zero[None]))[0]
    assert not masks.bare_soil_mask(zero[None])[0]


@pytest.mark.parametrize("obs, bare", [
    (SOIL, True),
    (VEG, False),                                                   # NDVI 0.84
    (with_bands(SOIL, B8=1800, B4=1080), False),                    # NDVI exactly 0.25: strict
    (with_bands(SOIL, B8=1790, B4=1080), True),                     # NDVI 0.2472
    (with_bands(SOIL, B11=2900, B12=2500), True),                   # NBR2 0.0741
    (with_bands(SOIL, B11=3000, B12=2500), False),                  # NBR2 0.0909 (residue)
    (with_bands(SOIL, B2=1000), False),                             # B3 − B2 = 0: not > 0
    (with_bands(SOIL, B3=1250), False),                             # B4 − B3 < 0
    (with_bands(SOIL, B5=np.nan), True),                            # B5 is not in the test …
])
def test_bare_soil_cases(obs, bare):
    assert bool(masks.bare_soil_mask(obs[None])[0]) is bare


def test_bare_thresholds_are_parameters():
    residue = with_bands(SOIL, B11=3000, B12=2500)                  # NBR2 0.0909
    assert not masks.bare_soil_mask(residue[None])[0]
    assert masks.bare_soil_mask(residue[None], nbr2_max=0.10)[0]
    assert not masks.bare_soil_mask(SOIL[None], ndvi_max=0.2)[0]    # NDVI 0.2 is not < 0.2


def test_scene_and_scl_masks():
    np.testing.assert_array_equal(masks.scene_mask([0.0, 9.99, 10.0, 55.0, np.nan]),
                                  [True, True, False, False, True])
    assert masks.scene_mask(None) is None
    scl = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, np.nan])
    keep = masks.scl_mask(scl)
    assert keep.tolist() == [False, False, True, False, True, True, True, True, False, False, False, False, True]
    # The tile stacks' uint8 classes (and any integer dtype) give the same answer as floats.
    for dtype in (np.uint8, np.int16, np.float32):
        assert masks.scl_mask(np.arange(12).astype(dtype)).tolist() == keep[:12].tolist()
    assert masks.scl_mask(np.array([255, 200], np.uint8)).tolist() == [True, True]
    assert masks.scl_mask(None) is None


def test_outlier_rule_hand_computed():
    # Ten 1s and one 10: mean 1.818, sd 2.587, |10 − mean| = 8.18 > 3 sd = 7.76 → dropped.
    x = np.ones((11, 1), np.float64)
    x[10, 0] = 10.0
    keep = masks.outlier_mask(x, np.ones(11, bool))
    assert keep.tolist() == [True] * 10 + [False]
    # Nine 1s and one 10: the spike is exactly sqrt(n − 1) = 3 sd away → kept (≤ 3 sd).
    keep9 = masks.outlier_mask(x[1:], np.ones(10, bool))
    assert keep9.all()
    # Dates outside `keep` neither count in the statistics nor come back.
    x12 = np.ones((12, 1), np.float64)
    x12[11, 0] = 10.0
    x12[3, 0] = 1e6                                 # a cloud: would inflate the sd if counted
    base = np.ones(12, bool)
    base[3] = False
    assert masks.outlier_mask(x12, base).tolist() == [True] * 3 + [False] + [True] * 7 + [False]
    # A constant band has no outliers; any band can flag a date.
    y = np.ones((12, 2))
    y[5, 1] = 50.0
    assert masks.outlier_mask(y, np.ones(12, bool)).tolist() == [True] * 5 + [False] + [True] * 6


def test_observation_masks_stages_hand_computed():
    s2 = np.stack([SOIL, SOIL, SOIL, VEG, SOIL, with_bands(SOIL, B2=np.nan)])
    cloud = np.array([1.0, 50.0, 1.0, 1.0, 1.0, 1.0])
    scl = np.array([5, 5, 9, 4, 5, 5])
    m = masks.observation_masks(s2, scl, cloud)
    assert m.acquired.tolist() == [True, True, True, True, True, False]
    assert m.scene.tolist() == [True, False, True, True, True, False]
    assert m.clear.tolist() == [True, False, False, True, True, False]
    assert m.bare.tolist() == [True, False, False, False, True, False]
    assert m.kept.tolist() == m.bare.tolist()
    assert m.counts() == {"acquired": 5, "scene": 4, "clear": 3, "bare": 2, "kept": 2}
    skipped = masks.observation_masks(s2, None, None)
    assert not skipped.scene_filter_applied and not skipped.scl_filter_applied
    assert skipped.clear.tolist() == [True, True, True, True, True, False]


def test_point_and_pixel_shapes_agree():
    rng = np.random.default_rng(3)
    t, h, w = 150, 3, 4
    # A stack mixing soil, vegetation and noise, per pixel.
    base = np.where(rng.random((t, 1, h, w)) < 0.6, SOIL[None, :, None, None], VEG[None, :, None, None])
    s2 = base * rng.uniform(0.8, 1.2, (t, 10, h, w))
    s2[:, B["B5"]] *= np.where(rng.random((t, h, w)) < 0.02, 3.0, 1.0)  # spikes for the 3σ rule
    scl = rng.choice([4, 5, 8, 9, 3], size=(t, h, w), p=[0.3, 0.5, 0.1, 0.05, 0.05])
    cloud = rng.uniform(0, 20, t)
    th = masks.MaskThresholds(ndvi_max=0.3, nbr2_max=0.1)
    stack = masks.observation_masks(s2, scl, cloud, th)
    flat = masks.observation_masks(s2.reshape(t, 10, h * w), scl.reshape(t, h * w), cloud, th)
    for i in range(h):
        for j in range(w):
            point = masks.observation_masks(s2[:, :, i, j], scl[:, i, j], cloud, th)
            for stage in ("acquired", "scene", "clear", "bare", "kept"):
                np.testing.assert_array_equal(getattr(stack, stage)[:, i, j], getattr(point, stage))
                np.testing.assert_array_equal(getattr(flat, stage)[:, i * w + j], getattr(point, stage))
    assert 0 < stack.kept.sum() < stack.bare.sum() < stack.clear.sum()
