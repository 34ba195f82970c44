"""Temporal-composite features (`trainer.composites`) on a hand-built Split, against NumPy's own
quantiles and the index formulas of `s2mos_transforms.masks`."""
import numpy as np
import pytest

from s2mos_transforms import bands, masks
from trainer import composites
from trainer.data import Split

N_B = len(bands.S2_BANDS)
T0 = 1483228800          # 2017-01-01T00:00:00Z


def _split():
    rng = np.random.default_rng(4)
    s2 = [rng.uniform(0.05, 0.5, (n, N_B)).astype(np.float32) for n in (7, 1, 12, 0)]
    paired = [np.concatenate([s[:k], rng.normal(-12, 2, (k, 2)).astype(np.float32)], 1)
              for s, k in zip(s2, (4, 0, 12, 0))]
    days = [np.sort(rng.choice(1000, len(s), replace=False)) for s in s2]
    dates = [(T0 + d * 86400).astype(np.int64) for d in days]
    pdates = [d[:len(p)] for d, p in zip(dates, paired)]
    return Split(np.array(["a", "b", "c", "d"]), np.array([[45.0, 2.0], [50.0, 10.0], [40.0, -3.0], [55.0, 20.0]],
                                                             np.float32),
                 np.array([10, 20, 30, 40], np.float32), {"s2": s2, "s2s1": paired}, {"s2": dates, "s2s1": pdates})


@pytest.fixture(scope="module")
def feats():
    split = _split()
    f = composites.strong_features(split, None, True)
    return split, f, {n: f[:, i] for i, n in enumerate(composites.feature_names(True))}


def test_names_match_columns_and_are_unique(feats):
    _, f, cols = feats
    assert f.dtype == np.float32 and f.shape == (4, len(composites.feature_names(True)))
    assert len(cols) == f.shape[1]
    assert len(composites.feature_names(False)) == f.shape[1] - 2
    assert composites.strong_features(_split(), None, False).shape == (4, f.shape[1] - 2)


def test_band_quantiles_equal_numpy(feats):
    split, _, cols = feats
    for i in (0, 1, 2):
        s = split.sequences["s2"][i].astype(np.float64)
        for b, name in enumerate(bands.S2_BANDS):
            for q in composites.QUANTILES:
                got = cols[f"{name}_q{int(round(q * 100)):02d}"][i]
                np.testing.assert_allclose(got, np.quantile(s[:, b], q), rtol=1e-6)


def test_index_composites_reuse_the_mask_formulas(feats):
    split, _, cols = feats
    s = split.sequences["s2"][2].astype(np.float64)
    ln = np.log(s[:, 9] / s[:, 8])                                      # ln(B12 / B11)
    np.testing.assert_allclose(cols["ln_b12_b11_median"][2], np.median(ln), rtol=1e-6)
    np.testing.assert_allclose(cols["ln_b12_b11_iqr"][2], np.subtract(*np.quantile(ln, [0.75, 0.25])), rtol=1e-5)
    np.testing.assert_allclose(cols["nbr2_median"][2], np.median(masks.nbr2(s)), rtol=1e-6)
    np.testing.assert_allclose(cols["ndvi_median"][2], np.median(masks.ndvi(s)), rtol=1e-6)
    np.testing.assert_allclose(cols["ln_b11_b8a_median"][2], np.median(np.log(s[:, 8] / s[:, 7])), rtol=1e-6)


def test_counts_s1_stats_and_nan_without_pairs(feats):
    split, _, cols = feats
    np.testing.assert_array_equal(cols["n_bare"], [7, 1, 12, 0])
    np.testing.assert_array_equal(cols["n_s1_paired"], [4, 0, 12, 0])
    p = split.sequences["s2s1"][0].astype(np.float64)
    vv, vh = p[:, 10], p[:, 11]
    np.testing.assert_allclose(cols["VV_q50"][0], np.median(vv), rtol=1e-6)
    np.testing.assert_allclose(cols["VH_q90"][0], np.quantile(vh, 0.9), rtol=1e-6)
    np.testing.assert_allclose(cols["VV_minus_VH_std"][0], np.std(vv - vh), rtol=1e-5)
    s1_cols = [n for n in cols if n.startswith(("VV", "VH"))]
    assert len(s1_cols) == 12
    for n in s1_cols:                                   # points 1 and 3 have no paired date
        assert np.isnan(cols[n][1]) and np.isnan(cols[n][3]) and np.isfinite(cols[n][0])
    assert np.isnan(cols["B2_q50"][3]) and np.isnan(cols["doy_sin_mean"][3])   # no bare date at all
    np.testing.assert_array_equal(cols["lat"], split.coords[:, 0])


def test_season_of_bareness(feats):
    split, _, cols = feats
    d = split.dates["s2"][0].astype("datetime64[s]")
    doy = (d.astype("datetime64[D]") - d.astype("datetime64[Y]")).astype(float)
    np.testing.assert_allclose(cols["doy_sin_mean"][0], np.mean(np.sin(2 * np.pi * doy / 365.25)), rtol=1e-5)


def test_group_quantiles_ignore_nan_and_chunking(monkeypatch):
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(n, 3)) for n in rng.integers(0, 9, 50)]
    seqs[3][0, 1] = np.nan
    monkeypatch.setattr(composites, "_CHUNK", 7)           # several chunks of different widths
    got = composites.group_quantiles(seqs, (0.1, 0.5, 0.9))
    for i, s in enumerate(seqs):
        want = np.full((3, 3), np.nan) if not len(s) else np.nanquantile(s, (0.1, 0.5, 0.9), axis=0)
        np.testing.assert_allclose(got[:, i], want, rtol=1e-12, equal_nan=True)


def test_random_forest_accepts_nan_features(feats):
    """scikit-learn's forests take the NaN S1 statistics as they are (missing-value splits)."""
    from sklearn.ensemble import RandomForestRegressor
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 3))
    x[::4, 1] = np.nan
    y = x[:, 0] + np.where(np.isnan(x[:, 1]), 2.0, 0.0)
    rf = RandomForestRegressor(20, random_state=0).fit(x, y)
    assert np.isfinite(rf.predict(x)).all()
    assert np.corrcoef(rf.predict(x), y)[0, 1] > 0.9
