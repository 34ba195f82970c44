"""`s2mos compare`'s pure parts: the split builders (exact partitions, whole spatial blocks, the
test fraction, the dataset's own KS rule) and the nested bootstrap's interval (it narrows with
more runs and points, and covers the true Δ on simulated runs with seed and split variance)."""
import numpy as np
import pytest

from s2mos_transforms import metrics
from s2mos_transforms.dataset import split as ks_split
from trainer import compare_splits as cs
from trainer import compare_stats as st


def _points(n=600, seed=0, held=0):
    rng = np.random.default_rng(seed)
    lat = rng.uniform(36.0, 60.0, n)
    lon = rng.uniform(-9.0, 28.0, n)
    feats = rng.normal(size=(n, 10))
    held_out = np.zeros(n, bool)
    held_out[n - held:] = True
    return lat, lon, feats, held_out


def _build(schemes, repeats=3, fraction=0.2, block_km=100.0, held=0, n=600):
    lat, lon, feats, held_out = _points(n, held=held)
    return cs.build_partitions(schemes, repeats, fraction, block_km, features=feats, lat=lat, lon=lon,
                               held_out=held_out, order=np.arange(n)), lat, lon, held_out


def test_partitions_cover_every_point_once_and_respect_the_fraction():
    parts, lat, lon, _ = _build(["ks", "random", "spatial"], repeats=3)
    assert [p.name for p in parts] == ["ks-0", "random-0", "random-1", "random-2",
                                       "spatial-0", "spatial-1", "spatial-2"]
    sizes = np.bincount(cs.block_ids(lat, lon, 100.0))
    for p in parts:
        cal, test = p.calibration_index, p.test_index
        assert np.array_equal(np.sort(np.concatenate([cal, test])), np.arange(600))
        assert not np.intersect1d(cal, test).size
        if p.scheme in ("ks", "random"):
            assert test.size == ks_split.n_test_for(600, 0.2) == 120
        else:                                        # whole blocks: within half the largest block
            assert abs(test.size - 120) <= sizes.max() / 2
    assert not np.array_equal(parts[1].is_test, parts[2].is_test)       # repeats differ
    again, *_ = _build(["random", "spatial"], repeats=3)
    assert all(np.array_equal(a.is_test, b.is_test) for a, b in zip(again, parts[1:]))   # seeded


def test_spatial_blocks_never_straddle_calibration_and_test():
    parts, lat, lon, _ = _build(["spatial"], repeats=4, block_km=150.0)
    ids = cs.block_ids(lat, lon, 150.0)
    for p in parts:
        for b in np.unique(ids):
            assert len(set(p.is_test[ids == b])) == 1, f"block {b} straddles in {p.name}"


def test_blocks_are_square_kilometres():
    # two points 40 km apart east–west at 60°N share a 50 km block only if longitude is scaled by cos(lat)
    d_lon = 40.0 / (cs.EARTH_KM_PER_DEG * np.cos(np.radians(60.0)))
    lat = np.array([60.01, 60.01, 60.01])
    lon = np.array([10.001, 10.001 + d_lon / 2, 10.001 + 3 * d_lon])
    ids = cs.block_ids(lat, lon, 50.0)
    assert ids[2] != ids[0]
    with pytest.raises(ValueError):
        cs.block_ids(lat, lon, 0.0)


def test_held_out_points_are_always_test():
    parts, *_, held_out = _build(["ks", "random", "spatial"], repeats=2, held=30)
    for p in parts:
        assert p.is_test[held_out].all()
        assert (p.is_test & ~held_out).sum() > 0


def test_ks_partition_is_the_dataset_rule():
    _, _, feats, held_out = _points(200, held=10)
    order = np.random.default_rng(3).permutation(200)        # the dataset's row order
    got = cs.ks_partition(feats, held_out, order, 0.25)
    labels = ks_split.assign_splits(feats[order], held_out[order], 0.25)
    assert np.array_equal(got[order], labels == ks_split.TEST)
    seqs = [np.full((k + 1, 10), float(k)) for k in range(3)]
    assert np.array_equal(cs.ks_features(seqs)[:, 0], [0.0, 1.0, 2.0])


def _simulate(rng, n_parts, n_seeds, n, seed_sd=0.08, part_sd=0.03, true_delta=0.1):
    """Model b: error variance 0.6; model a: 0.5 on average, moved by partition and seed effects.
    The population ΔR² (var y = 1) is `true_delta`."""
    groups = []
    for _ in range(n_parts):
        y = rng.normal(size=n)
        part = part_sd * rng.normal()
        va = np.clip(0.6 - true_delta + part + seed_sd * rng.normal(size=n_seeds), 0.05, None)
        a = np.stack([y + np.sqrt(v) * rng.normal(size=n) for v in va])
        b = np.stack([y + np.sqrt(0.6) * rng.normal(size=n) for _ in range(n_seeds)])
        groups.append(st.PairGroup("random", y, a, b))
    return groups


def test_interval_shrinks_with_more_runs_and_points():
    rng = np.random.default_rng(1)
    small = st.nested_bootstrap(_simulate(rng, 2, 2, 60), "r2", n_boot=500, seed=0)
    more_runs = st.nested_bootstrap(_simulate(rng, 6, 4, 60), "r2", n_boot=500, seed=0)
    more_points = st.nested_bootstrap(_simulate(rng, 2, 2, 1500), "r2", n_boot=500, seed=0)
    width = lambda r: r["high"] - r["low"]
    assert width(more_runs) < width(small) and width(more_points) < width(small)
    assert small["n_runs"] == 4 and more_runs["n_runs"] == 24 and more_runs["n_partitions"] == 6


@pytest.mark.slow
def test_interval_covers_the_true_delta_where_a_test_set_only_interval_does_not():
    rng = np.random.default_rng(7)
    covered, naive_covered, sims = 0, 0, 60
    for k in range(sims):
        groups = _simulate(rng, 4, 3, 800)
        r = st.nested_bootstrap(groups, "r2", n_boot=300, seed=k)
        covered += r["low"] <= 0.1 <= r["high"]
        g = groups[0]                                 # one split, one seed: the old single verdict
        naive = metrics.paired_bootstrap_r2(g.observed, g.a[0], g.b[0], n_boot=300, seed=k)
        naive_covered += naive["ci95_low"] <= 0.1 <= naive["ci95_high"]
    assert covered / sims >= 0.85
    assert naive_covered / sims < covered / sims - 0.15      # seed variance is real in this simulation


def test_estimate_and_verdicts():
    rng = np.random.default_rng(2)
    groups = _simulate(rng, 3, 3, 2000, seed_sd=0.01, part_sd=0.0, true_delta=0.15)
    r2 = st.nested_bootstrap(groups, "r2", n_boot=400)
    rmse = st.nested_bootstrap(groups, "rmse", n_boot=400)
    expected = np.mean([metrics.r2(g.observed, a) - metrics.r2(g.observed, b)
                        for g in groups for a, b in zip(g.a, g.b)])
    assert r2["delta"] == pytest.approx(expected) and r2["low"] < r2["delta"] < r2["high"]
    assert st.verdict(r2, "x", "y") == "x beats y" and rmse["high"] < 0
    assert st.verdict(rmse, "x", "y") == "x beats y"
    flipped = [st.PairGroup(g.scheme, g.observed, g.b, g.a) for g in groups]
    assert st.verdict(st.nested_bootstrap(flipped, "r2", n_boot=400), "x", "y") == "y beats x"
    same = [st.PairGroup(g.scheme, g.observed, g.b, g.b[::-1]) for g in groups]
    assert st.verdict(st.nested_bootstrap(same, "r2", n_boot=400), "x", "y") == "no clear difference"


def test_bootstrap_is_deterministic_and_strata_are_kept():
    rng = np.random.default_rng(4)
    groups = _simulate(rng, 2, 2, 100)
    groups[1] = st.PairGroup("ks", groups[1].observed, groups[1].a, groups[1].b)
    a = st.nested_bootstrap(groups, "r2", n_boot=200, seed=5)
    b = st.nested_bootstrap(groups, "r2", n_boot=200, seed=5)
    assert a == b and a["n_runs"] == 4
    stats = st.mean_sd([0.1, 0.3, float("nan")])
    assert stats["mean"] == pytest.approx(0.2) and stats["n_runs"] == 2
