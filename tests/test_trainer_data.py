"""Input pipeline: reading through the schema, padding, thinning, composites, and the TF twin."""
import numpy as np
import pytest

import trainer_fixtures as fx
from s2mos_transforms import bands
from s2mos_transforms.normalize import MinMax, NormStats
from trainer import data, ensemble


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("trainer_data")
    recs = fx.write_dataset(str(out), n_calibration=20, n_test=6, seed=5, max_dates=200)
    return str(out), recs


def test_read_split_roundtrip(dataset):
    out, recs = dataset
    cal = data.read_split(out, "calibration")
    assert len(cal) == 20
    by_id = {r["point_id"]: r for r in recs["calibration"]}
    for i, pid in enumerate(cal.point_id):
        r = by_id[pid]
        assert cal.clay[i] == pytest.approx(r["clay"], rel=1e-6)
        assert cal.coords[i].tolist() == pytest.approx([r["lat"], r["lon"]], rel=1e-6)
        np.testing.assert_allclose(cal.sequences["s2s1"][i], r["s2s1"], rtol=1e-6)
        np.testing.assert_allclose(cal.sequences["s2"][i], r["s2"], rtol=1e-6)


def test_stats_from_calibration_match_saved(dataset):
    out, _ = dataset
    cal = data.read_split(out, "calibration")
    fitted = data.fit_stats(cal)
    assert data.stats_mismatch(NormStats.load(out), fitted) == []
    assert data.load_stats(out, cal, log=lambda m: None).groups.keys() == fitted.groups.keys()


def test_thin_index_keeps_all_or_evenly_spaced():
    assert data.thin_index(0, 150).tolist() == []
    assert data.thin_index(5, 150).tolist() == [0, 1, 2, 3, 4]
    assert data.thin_index(150, 150).tolist() == list(range(150))
    idx = data.thin_index(300, 150)                    # round(j · 299 / 149): first and last kept
    assert idx.size == 150 and idx[0] == 0 and idx[-1] == 299 and set(np.diff(idx).tolist()) == {2, 3}
    idx = data.thin_index(151, 150)
    assert np.unique(idx).size == 150 and idx[0] == 0 and idx[-1] == 150
    assert data.thin_index(9, 5).tolist() == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("n", [1, 149, 150, 151, 299, 300, 1000, 4321])
def test_one_thinning_rule_trainer_serving_graph_and_dataset(n):
    """trainer.data.thin_index, the SavedModel's graph thinning and sequences.select_ranks agree."""
    import tensorflow as tf
    from s2mos_transforms import sequences
    m = bands.MAX_DATES
    ranks = sequences.select_ranks(np.array(n), m)
    ref = ranks[ranks >= 0]
    assert ref.size == min(n, m) and ref[0] == 0 and ref[-1] == n - 1
    assert data.thin_index(n, m).tolist() == ref.tolist()
    graph = ensemble.thin_ranks(tf.constant([n]), m).numpy()[0]
    assert graph[:min(n, m)].tolist() == ref.tolist()
    # Through the serving graph's gather: a sequence whose values are its own date positions.
    seq = tf.reshape(tf.cast(tf.range(n), tf.float32), [1, n, 1])
    z, new_len = ensemble.normalise_and_pad(seq, tf.constant([n]), tf.zeros([1]), tf.fill([1], 2.0), m)
    assert int(new_len[0]) == min(n, m)
    assert (z.numpy()[0, :min(n, m), 0] + 1.0).astype(np.int64).tolist() == ref.tolist()   # z = v − 1


def test_graph_thinning_equals_select_ranks_for_every_length_to_10000():
    import tensorflow as tf
    from s2mos_transforms import sequences
    for m in (bands.MAX_DATES, 2, 5, 8):
        n = np.arange(0, 10001)
        ref = sequences.select_ranks(n, m).T                                       # (N, m), −1 padded
        graph = ensemble.thin_ranks(tf.range(0, 10001), m).numpy()
        valid = ref >= 0
        np.testing.assert_array_equal(graph[valid], ref[valid])
        assert np.array_equal(graph[~valid], np.broadcast_to(np.arange(m), ref.shape)[~valid])


def test_padding_zeroes_everything_past_length():
    mm = MinMax(np.zeros(2), np.ones(2) * 10)
    raw, lengths = data.pad_sequences([np.full((3, 2), 5.0), np.zeros((0, 2))], 2, max_dates=6)
    assert lengths.tolist() == [3, 0]
    raw[0, 3:] = 99.0                                   # garbage past length must not leak
    z = data.normalise_padded(raw, lengths, mm)
    assert z.shape == (2, 6, 2)
    assert np.all(z[0, :3] == 0.0)                      # 5 is the middle of [0, 10] → 0
    assert np.all(z[0, 3:] == 0.0) and np.all(z[1] == 0.0)
    z2 = data.normalise_padded(np.full((1, 6, 2), 10.0), np.array([2]), mm)
    assert z2[0, :2].tolist() == [[1.0, 1.0]] * 2 and np.all(z2[0, 2:] == 0)


def test_tf_twin_equals_numpy_padding_including_thinning():
    import tensorflow as tf
    rng = np.random.default_rng(0)
    lens = [0, 1, 7, 150, 151, 260]
    seqs = [rng.uniform(0, 1, (n, 12)).astype(np.float32) for n in lens]
    mm = MinMax(np.full(12, 0.1), np.full(12, 0.9))
    ref, ref_len = data.pad_sequences(seqs, 12)
    ref = data.normalise_padded(ref, ref_len, mm)
    raw, raw_len = data.pad_sequences(seqs, 12, max_dates=max(lens))       # unthinned, like a client
    raw[0, :5] = 7.0                                                          # junk past length 0
    z, new_len = ensemble.normalise_and_pad(tf.constant(raw), tf.constant(raw_len), tf.constant(mm.lo, tf.float32),
                                            tf.constant(mm.hi - mm.lo, tf.float32))
    assert new_len.numpy().tolist() == [0, 1, 7, 150, 150, 150]
    np.testing.assert_allclose(z.numpy(), ref, atol=1e-6)


def test_median_composite_and_per_date_rows(dataset):
    out, recs = dataset
    cal = data.read_split(out, "calibration")
    stats = data.fit_stats(cal)
    comp = data.median_composite(cal.sequences["s2"])
    np.testing.assert_allclose(comp[0], np.median(cal.sequences["s2"][0], 0), rtol=1e-6)
    assert np.isnan(data.median_composite([np.zeros((0, 10))])).all()
    feats = data.composite_features(cal, stats, use_coords=True)
    assert feats.shape == (20, 12) and np.all(np.abs(feats) <= 1.0 + 1e-6)
    rows, owner = data.per_date_rows(cal, stats, use_coords=True)
    assert rows.shape == (sum(len(s) for s in cal.sequences["s2s1"]), 14)
    assert np.array_equal(np.bincount(owner, minlength=20), [len(s) for s in cal.sequences["s2s1"]])
    pred = data.mean_per_point(np.arange(len(owner), dtype=float), owner, 21, fill=-5.0)
    assert pred[20] == -5.0 and pred[0] == pytest.approx(np.mean(np.flatnonzero(owner == 0)))


def test_target_roundtrip(dataset):
    out, _ = dataset
    cal = data.read_split(out, "calibration")
    stats = data.fit_stats(cal)
    z = data.target(cal, stats)
    assert z.min() == pytest.approx(-1.0) and z.max() == pytest.approx(1.0)
    np.testing.assert_allclose(data.clay_from_target(z, stats), cal.clay, rtol=1e-5)


def test_missing_data_is_a_user_error(tmp_path):
    from s2mos_transforms.errors import UserError
    with pytest.raises(UserError):
        data.split_files(str(tmp_path), "calibration")
