"""S1 pairing: the ±1 day edge, nearest, the tie rule, per-pixel validity."""
import numpy as np

from s2mos_transforms import pairing, sequences

DAY = 86_400
T0 = int(np.datetime64("2018-06-01T10:30:00", "s").astype(np.int64))


def test_one_day_edge_is_inclusive():
    s2 = np.array([T0, T0 + 10 * DAY, T0 + 20 * DAY, T0 + 30 * DAY])
    s1 = np.array([T0 + DAY,                       # exactly +24 h → pairs
                   T0 + 10 * DAY - DAY - 1,         # 24 h 1 s before → does not
                   T0 + 20 * DAY - DAY,             # exactly −24 h → pairs
                   T0 + 30 * DAY + DAY + 1])        # 24 h 1 s after → does not
    assert pairing.pair_s1(s2, s1).tolist() == [0, -1, 2, -1]
    assert pairing.pair_s1(s2, s1, max_days=2).tolist() == [0, 1, 2, 3]


def test_nearest_and_tie_goes_to_earlier():
    s2 = np.array([T0, T0 + 10 * DAY])
    s1 = np.array([T0 + 3 * 3600, T0 - 3 * 3600, T0 + 2 * 3600,       # nearest: +2 h
                   T0 + 10 * DAY + 600, T0 + 10 * DAY - 600])          # tie ±10 min → earlier
    assert pairing.pair_s1(s2, s1).tolist() == [2, 4]
    # Same instant twice: the first one in the input.
    assert pairing.pair_s1(np.array([T0]), np.array([T0 + 60, T0 + 60])).tolist() == [0]


def test_datetime64_inputs_and_no_s1():
    s2 = np.array(["2018-06-01T10:30:00", "2018-06-05T10:30:00"], "datetime64[s]")
    s1 = np.array(["2018-06-02T05:00:00"], "datetime64[s]")
    assert pairing.pair_s1(s2, s1).tolist() == [0, -1]
    assert pairing.pair_s1(s2, np.array([], "datetime64[s]")).tolist() == [-1, -1]
    assert pairing.pair_candidates(s2, s1).shape == (2, 1)


def test_per_pixel_skips_missing_candidates():
    s2 = np.array([T0, T0 + 10 * DAY])
    s1_times = np.array([T0 + 3600, T0 + 7200, T0 + 10 * DAY + 5 * 3600])
    # Pixel 0: everything valid. Pixel 1: the nearest (+1 h) is missing → +2 h. Pixel 2: nothing.
    valid = np.array([[True, False, False], [True, True, False], [True, True, False]])
    idx = pairing.pair_s1(s2, s1_times, valid)
    assert idx.tolist() == [[0, 1, -1], [2, 2, -1]]
    vv = np.array([[-10.0, -11.0, np.nan], [-12.0, -13.0, np.nan], [-14.0, -15.0, np.nan]], np.float32)
    s1 = np.stack([vv, vv - 7], axis=1)                                 # (T1, 2, P)
    got = pairing.paired_values(s1, idx)
    assert got.shape == (2, 2, 3)
    np.testing.assert_array_equal(got[0, 0], [-10.0, -13.0, np.nan])
    np.testing.assert_array_equal(got[1, 1], [-21.0, -22.0, np.nan])


def test_point_extraction_skips_missing_s1_values():
    soil = np.array([800, 1000, 1200, 1400, 1500, 1600, 1800, 1900, 2800, 2500], np.float32)
    s2_dn = np.stack([soil, soil])
    s1_times = np.array([T0 + 600, T0 + 1200, T0 + 2 * DAY])
    s1_db = np.array([[np.nan, -18.0], [-9.5, -17.5], [-8.0, -16.0]], np.float32)
    ex = sequences.extract(np.array([T0, T0 + 5 * DAY]), s2_dn, None, None, s1_times, s1_db)
    assert ex.pair_index.tolist() == [1, -1]                  # +10 min has no VV → +20 min
    assert ex.paired.tolist() == [True, False]
    np.testing.assert_array_equal(ex.s1[0], [-9.5, -17.5])
    assert np.isnan(ex.s1[1]).all()


def test_pair_elements_is_pair_s1_at_each_observation():
    """The element-wise lookup of map inference picks what `pair_s1` picks for every date and
    pixel: nearest valid candidate, ties to the earlier, a missing VV or VH skipped."""
    rng = np.random.default_rng(0)
    s2 = T0 + np.sort(rng.integers(0, 60 * DAY, 40))
    s1_times = np.concatenate([T0 + rng.integers(0, 60 * DAY, 30), s2[:5] + 3600, s2[:5] - 3600])  # ties
    s1 = rng.normal(-12, 3, (s1_times.size, 2, 50)).astype(np.float32)
    s1[rng.random(s1.shape) < 0.3] = np.nan                              # VV or VH missing
    cand = pairing.pair_candidates(s2, s1_times, max_days=3)
    assert cand.shape[1] >= 3
    dense = pairing.pair_s1(s2, s1_times, np.isfinite(s1).all(axis=1), max_days=3)   # (T2, P)
    t, p = np.nonzero(np.ones(dense.shape, bool))
    got = pairing.pair_elements(cand[t], s1, p)
    np.testing.assert_array_equal(got, dense[t, p])
    assert (got >= 0).mean() > 0.5 and (got < 0).any()
    assert (pairing.pair_elements(cand[t], s1[:0], p) == -1).all()      # no S1 at all
