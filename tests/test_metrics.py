"""Metrics against values computed by hand (paper Equations 1–3, Lin's CCC)."""
import math

import numpy as np
import pytest

from s2mos_transforms import metrics

OBS = [10.0, 20.0, 30.0, 40.0, 50.0]
PRED = [12.0, 18.0, 33.0, 37.0, 50.0]


def test_rmse_by_hand():
    # errors 2, -2, 3, -3, 0 → SSE 26 → sqrt(26/5)
    assert metrics.rmse(OBS, PRED) == pytest.approx(math.sqrt(26 / 5))


def test_r2_is_one_minus_sse_over_sst():
    # SST around mean 30: 400+100+0+100+400 = 1000
    assert metrics.r2(OBS, PRED) == pytest.approx(1 - 26 / 1000)
    # not the squared Pearson r: a perfectly correlated but offset prediction scores below 1
    assert metrics.r2(OBS, [o + 10 for o in OBS]) == pytest.approx(1 - 500 / 1000)


def test_r2_corr_is_the_squared_pearson_correlation():
    # deviations y: -20 -10 0 10 20 (Syy 1000); ŷ (mean 30): -18 -12 3 7 20 (Spp 926); Syp 950
    assert metrics.r2_corr(OBS, PRED) == pytest.approx(950 ** 2 / (1000 * 926))
    # blind to offset and scale, where r2 is not
    assert metrics.r2_corr(OBS, [2 * o + 10 for o in OBS]) == pytest.approx(1.0)
    assert math.isnan(metrics.r2_corr(OBS, [5.0] * 5))


def test_rpiq_uses_observed_quartiles():
    # observed Q1 = 20, Q3 = 40 (linear interpolation) → IQR 20; predicted quartiles must not matter
    assert metrics.rpiq(OBS, PRED) == pytest.approx(20 / math.sqrt(26 / 5))
    obs = [1.0, 2.0, 4.0, 8.0]          # Q1 = 1.75, Q3 = 5.0 (type 7)
    pred = [1.0, 2.0, 4.0, 10.0]        # RMSE = sqrt(4/4) = 1
    assert metrics.rpiq(obs, pred) == pytest.approx(3.25)
    assert metrics.rpiq(obs, pred) != pytest.approx(metrics.iqr(pred) / 1.0)


def test_ccc_by_hand():
    y, p = np.array(OBS), np.array(PRED)
    # means 30 and 30; population var y = 200, var p = (324+144+9+49+400)/5 - 900 ... computed explicitly
    var_p = np.mean((p - p.mean()) ** 2)
    cov = np.mean((y - 30) * (p - p.mean()))
    assert metrics.ccc(OBS, PRED) == pytest.approx(2 * cov / (200 + var_p + (30 - p.mean()) ** 2))
    assert metrics.ccc(OBS, OBS) == pytest.approx(1.0)
    # a constant offset lowers CCC but not Pearson's r
    assert metrics.ccc(OBS, [o + 10 for o in OBS]) == pytest.approx(2 * 200 / (200 + 200 + 100))


def test_bias_sign_is_predicted_minus_observed():
    assert metrics.bias(OBS, PRED) == pytest.approx(0.0)
    assert metrics.bias([1, 2], [2, 4]) == pytest.approx(1.5)


def test_summary_keys_and_validation():
    s = metrics.summary(OBS, PRED)
    assert set(s) == set(metrics.METRIC_NAMES)
    assert s["n"] == 5
    with pytest.raises(ValueError):
        metrics.summary([1, 2], [1])
    with pytest.raises(ValueError):
        metrics.summary([1, float("nan")], [1, 2])


def test_paired_bootstrap_r2_separates_a_real_gain_from_noise():
    rng = np.random.default_rng(3)
    y = rng.uniform(5, 60, 400)
    good = y + rng.normal(0, 4, y.size)
    bad = y + rng.normal(0, 8, y.size)
    twin = good + rng.normal(0, 0.5, y.size)      # about as good as `good`
    clear = metrics.paired_bootstrap_r2(y, good, bad, n_boot=500)
    assert clear["delta_r2"] == pytest.approx(metrics.r2(y, good) - metrics.r2(y, bad))
    assert 0 < clear["ci95_low"] < clear["delta_r2"] < clear["ci95_high"] and clear["p_not_better"] == 0.0
    tie = metrics.paired_bootstrap_r2(y, good, twin, n_boot=500)
    assert tie["ci95_low"] < 0 < tie["ci95_high"] and 0.05 < tie["p_not_better"] < 0.95
    assert metrics.paired_bootstrap_r2(y, good, bad, n_boot=500, seed=1) == \
        metrics.paired_bootstrap_r2(y, good, bad, n_boot=500, seed=1)
