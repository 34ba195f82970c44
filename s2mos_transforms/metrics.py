"""Regression metrics of the paper (Section 2.3.5), pure NumPy, shared by training and map reports.

* RMSE = sqrt(mean((y − ŷ)²))                         (Equation 1)
* R²   = 1 − SSE / SST, SST around the observed mean    (Equation 2; not the squared Pearson r)
* RPIQ = (Q3 − Q1 of the *observed* values) / RMSE      (Equation 3)
* Lin's concordance correlation coefficient (CCC) and bias = mean(ŷ − y), not in the paper but
  what a soil scientist asks next (agreement with the 1:1 line, systematic offset).

Quartiles use NumPy's default linear interpolation (type 7, as R's `quantile`, which the
paper's R/caret workflow used). Population moments (ddof = 0) throughout, as in Lin (1989).
"""
from __future__ import annotations

import numpy as np

METRIC_NAMES: tuple[str, ...] = ("r2", "rmse", "rpiq", "ccc", "bias", "r2_corr", "n")


def _pair(observed, predicted) -> tuple[np.ndarray, np.ndarray]:
    """Validated float64 copies; NaN pairs are an error, not silently dropped."""
    y = np.asarray(observed, np.float64).ravel()
    p = np.asarray(predicted, np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"observed and predicted differ in length: {y.size} vs {p.size}")
    if y.size == 0:
        raise ValueError("no values to score")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(p))):
        raise ValueError("observed/predicted contain NaN or inf")
    return y, p


def rmse(observed, predicted) -> float:
    y, p = _pair(observed, predicted)
    return float(np.sqrt(np.mean((y - p) ** 2)))


def r2(observed, predicted) -> float:
    """1 − SSE/SST; negative when the model is worse than predicting the observed mean."""
    y, p = _pair(observed, predicted)
    sst = float(np.sum((y - y.mean()) ** 2))
    if sst == 0.0:
        return float("nan")
    return float(1.0 - np.sum((y - p) ** 2) / sst)


def r2_corr(observed, predicted) -> float:
    """Squared Pearson correlation: blind to bias and scale, unlike `r2`.

    Reported beside `r2` because many soil-mapping papers call this R². The paper's Greek
    site figures (R² 0.51 with RMSE 19.8 % on clay between 10.9 and 60 %) are only possible
    as a squared correlation: 1 − SSE/SST = 0.51 would need a standard deviation of 28 %.
    """
    y, p = _pair(observed, predicted)
    if y.std() == 0.0 or p.std() == 0.0:
        return float("nan")
    return float(np.corrcoef(y, p)[0, 1] ** 2)


def iqr(values) -> float:
    q1, q3 = np.percentile(np.asarray(values, np.float64), [25.0, 75.0])
    return float(q3 - q1)


def rpiq(observed, predicted) -> float:
    """Interquartile range of the observed values over RMSE (Bellon-Maurel et al. 2010)."""
    e = rmse(observed, predicted)
    return float("inf") if e == 0.0 else iqr(np.asarray(observed, np.float64)) / e


def ccc(observed, predicted) -> float:
    """Lin's CCC = 2·cov(y, ŷ) / (var y + var ŷ + (ȳ − mean ŷ)²)."""
    y, p = _pair(observed, predicted)
    cov = float(np.mean((y - y.mean()) * (p - p.mean())))
    denom = float(y.var() + p.var() + (y.mean() - p.mean()) ** 2)
    return float("nan") if denom == 0.0 else 2.0 * cov / denom


def bias(observed, predicted) -> float:
    """Mean error, predicted − observed: positive means over-prediction."""
    y, p = _pair(observed, predicted)
    return float(np.mean(p - y))


def summary(observed, predicted) -> dict[str, float | int]:
    """All metrics of the report for one model, keyed as in report.json."""
    y, p = _pair(observed, predicted)
    return {"r2": r2(y, p), "rmse": rmse(y, p), "rpiq": rpiq(y, p), "ccc": ccc(y, p),
            "bias": bias(y, p), "r2_corr": r2_corr(y, p), "n": int(y.size)}


def paired_bootstrap_r2(observed, predicted_a, predicted_b, n_boot: int = 2000,
                        seed: int = 0) -> dict[str, float]:
    """Is model a better than model b on this test set? R²(a) − R²(b) with a 95 % interval
    from resampling the test points with replacement (the same points for both models), and
    the share of resamples where a is not better. Vectorised: (n_boot, n) index matrix."""
    y, a = _pair(observed, predicted_a)
    _, b = _pair(observed, predicted_b)
    idx = np.random.default_rng(seed).integers(0, y.size, (n_boot, y.size))
    yy = y[idx]
    sst = np.sum((yy - yy.mean(axis=1, keepdims=True)) ** 2, axis=1)
    ok = sst > 0
    diff = (np.sum((yy - b[idx]) ** 2, axis=1) - np.sum((yy - a[idx]) ** 2, axis=1))[ok] / sst[ok]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    return {"delta_r2": r2(y, a) - r2(y, b), "ci95_low": float(lo), "ci95_high": float(hi),
            "p_not_better": float(np.mean(diff <= 0.0)), "n_boot": int(diff.size)}
