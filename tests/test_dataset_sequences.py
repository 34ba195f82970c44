"""Sequence building: date selection, the 150 cap, and point/pixel equivalence of the chain."""
import numpy as np
import pytest

from s2mos_transforms import sequences

from s2mos_transforms.dataset import schema

DAY = 86_400
T0 = int(np.datetime64("2018-01-01T10:30:00", "s").astype(np.int64))
SOIL = np.array([800, 1000, 1200, 1400, 1500, 1600, 1800, 1900, 2800, 2500], np.float32)
VEG = np.array([300, 600, 300, 1000, 2500, 3000, 3500, 3600, 2000, 1000], np.float32)


def test_select_ranks_rule():
    assert sequences.select_ranks(np.array(3), 5).tolist() == [0, 1, 2, -1, -1]
    assert sequences.select_ranks(np.array(5), 5).tolist() == [0, 1, 2, 3, 4]
    # 9 dates into 5: round(j · 8 / 4) = 0, 2, 4, 6, 8.
    assert sequences.select_ranks(np.array(9), 5).tolist() == [0, 2, 4, 6, 8]
    r = sequences.select_ranks(np.array(151), 150)
    assert r[0] == 0 and r[-1] == 150 and len(set(r.tolist())) == 150
    r = sequences.select_ranks(np.array(1000), 150)
    assert r[0] == 0 and r[-1] == 999 and np.all(np.diff(r) >= 6) and np.all(np.diff(r) <= 7)


def test_thin_index_and_map_engines_use_select_ranks():
    """One rule: sequences.thin_index (trainer) and maps.engines.thin_ragged (map engines)."""
    from s2mos_transforms.maps import engines
    for n in (0, 1, 149, 150, 151, 299, 300, 1000, 4321):
        r = sequences.select_ranks(np.array(n), 150)
        assert sequences.thin_index(n, 150).tolist() == r[r >= 0].tolist()
    lengths = np.array([3, 0, 9, 5, 12], np.int64)             # max_dates 5: pixels 2 and 4 thinned
    values = np.arange(int(lengths.sum()), dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    thinned, new_len = engines.thin_ragged(values, lengths, 5)
    assert new_len.tolist() == [3, 0, 5, 5, 5]
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    want = np.concatenate([offsets[i] + sequences.thin_index(int(n), 5) for i, n in enumerate(lengths)])
    np.testing.assert_array_equal(thinned, values[want])
    assert (want[3:8] - offsets[2]).tolist() == [0, 2, 4, 6, 8]    # round(j · 8 / 4), not the first 5
    same, same_len = engines.thin_ragged(values, lengths, 12)
    assert same is values and same_len.tolist() == lengths.tolist()


def test_gather_sequences_points_and_pixels():
    rng = np.random.default_rng(0)
    t, c, p = 30, 3, 5
    values = rng.random((t, c, p)).astype(np.float32)
    keep = rng.random((t, p)) < 0.5
    keep[:, 0] = False                                    # a pixel with nothing
    keep[:, 1] = True                                     # a pixel with more than the cap
    seq, idx, lengths = sequences.gather_sequences(values, keep, max_dates=8)
    assert seq.shape == (8, c, p) and idx.shape == (8, p)
    assert lengths.tolist() == [min(8, int(k)) for k in keep.sum(axis=0)]
    assert np.isnan(seq[:, :, 0]).all() and (idx[:, 0] == -1).all()
    assert idx[:, 1].tolist() == [int(np.floor(j * 29 / 7 + 0.5)) for j in range(8)]
    for px in range(p):
        one, one_idx, n = sequences.gather_sequences(values[:, :, px], keep[:, px], max_dates=8)
        np.testing.assert_array_equal(one, seq[:, :, px])
        np.testing.assert_array_equal(one_idx, idx[:, px])
        assert int(n) == lengths[px]


def test_extract_on_a_pixel_stack_equals_per_point():
    rng = np.random.default_rng(1)
    t2, t1, h, w = 60, 50, 2, 3
    s2_times = T0 + np.arange(t2) * 5 * DAY
    s1_times = T0 + np.arange(t1) * 6 * DAY + rng.integers(-20, 20, t1) * 3600
    s2 = np.where(rng.random((t2, 1, h, w)) < 0.7, SOIL[None, :, None, None], VEG[None, :, None, None])
    s2 = (s2 * rng.uniform(0.9, 1.1, (t2, 10, h, w))).astype(np.float32)
    scl = rng.choice([4, 5, 9], size=(t2, h, w), p=[0.2, 0.7, 0.1]).astype(np.uint8)
    cloud = rng.uniform(0, 15, t2)
    s1 = rng.normal(-12, 2, (t1, 2, h, w)).astype(np.float32)
    s1[rng.random((t1, 2, h, w)) < 0.1] = np.nan
    stack = sequences.extract(s2_times, s2, scl, cloud, s1_times, s1)
    s2s1, _, n = sequences.gather_sequences(stack.s2s1, stack.paired, 150)
    assert n.max() > 0
    for i in range(h):
        for j in range(w):
            point = sequences.extract(s2_times, s2[:, :, i, j], scl[:, i, j], cloud, s1_times, s1[:, :, i, j])
            np.testing.assert_array_equal(point.kept, stack.kept[:, i, j])
            np.testing.assert_array_equal(point.paired, stack.paired[:, i, j])
            np.testing.assert_array_equal(point.pair_index, stack.pair_index[:, i, j])
            rec = sequences.point_record("p", 45.0, 5.0, 20.0, point)
            assert rec["s2s1_length"] == n[i, j]
            np.testing.assert_array_equal(rec["s2s1"], s2s1[: n[i, j], :, i, j])


def test_point_record_round_trips_through_the_schema():
    s2_times = T0 + np.array([10, 0, 5]) * DAY                 # unsorted on purpose
    s2 = np.stack([SOIL * 1.1, SOIL, VEG])
    ex = sequences.extract(s2_times, s2, None, None, np.array([T0 + 3600]), np.array([[-9.0, -16.0]], np.float32))
    rec = sequences.point_record("x1", 45.5, 6.25, 33.0, ex)
    assert {f.name for f in schema.FEATURES} == set(rec)
    assert rec["s2_dates"].tolist() == [T0, T0 + 10 * DAY] and rec["s2s1_dates"].tolist() == [T0]
    back = schema.decode_example(schema.encode_example(rec))
    np.testing.assert_allclose(back["s2s1"], [[*(SOIL / 1e4), -9.0, -16.0]], rtol=1e-6)
    np.testing.assert_allclose(back["s2"][1], SOIL * 1.1 / 1e4, rtol=1e-6)
    assert back["s2_length"] == 2 and back["point_id"] == "x1"
    # Same record, same bytes (reproducible shards).
    assert schema.encode_example(rec) == schema.encode_example(dict(reversed(list(rec.items()))))


def test_map_engines_thin_long_sequences_like_the_savedmodel():
    """A ragged sequence longer than 150 gives what the SavedModel gives on it raw (same rule)."""
    import tensorflow as tf
    import test_map_fixtures as mfx
    from s2mos_transforms.maps import engines
    d = mfx.ensemble_dir()
    padded = engines.PaddedEnsemble(d)
    meta = padded.meta
    rng = np.random.default_rng(1)
    lengths = np.array([40, 151, 4321, 300], np.int64)
    lo, hi = meta.seq_stats.lo, meta.seq_stats.hi
    values = (lo + (hi - lo) * rng.random((int(lengths.sum()), len(meta.channels)))).astype(np.float32)
    coords = np.tile(np.array([[45.0, 5.0]], np.float32), (lengths.size, 1))
    m0, _ = padded.predict(values, lengths, coords)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    for i, n in enumerate(lengths):
        out = padded._fn(sequence=tf.constant(values[None, offsets[i]:offsets[i + 1]]),
                         length=tf.constant([n], tf.int32), coords=tf.constant(coords[i:i + 1]))
        assert float(out["clay_mean"].numpy()[0]) == pytest.approx(float(m0[i]), abs=1e-4)
    m1, _ = engines.FastEnsemble(d).predict(values, lengths, coords)
    np.testing.assert_allclose(m1, m0, atol=1e-3)
