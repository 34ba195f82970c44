"""Local recalibration of a trained model from a few samples of a new site (pure NumPy).

Why a correction of the output, not a new model: 1 to 20 local samples cannot refit a CNN,
but they measure well the systematic part of the error a model makes on a site it did not
see (a shift of clay and of the bare-soil filter's effect, e.g. the independent Greek site
under-predicted by ~20 %). Practitioners fix it with the local samples themselves
("spiking", Guerrero et al. 2016); the smallest such fix is an offset, the next a line.

Choice by n (the number of local samples):
  * n < 5: **bias**: clay' = clay + mean(y − ŷ). One parameter; the slope of 1–4 points is noise.
  * n ≥ 5: **linear with shrinkage**: clay' = a + b·clay, b the ridge estimate shrunk to 1,
    b = 1 + (Sxy − Sxx) / (Sxx + κ), Sxx = Σ(ŷ − ŷ̄)², Sxy = Σ(ŷ − ŷ̄)(y − ȳ), κ = n·SLOPE_PRIOR_SD²:
    as if n more samples with predictions spread by SLOPE_PRIOR_SD (5 % clay) said b = 1. A
    site whose predictions barely vary (most small sites) keeps b ≈ 1 (a bias); one whose
    predictions span tens of % learns its slope. b is kept in [0.25, 4] so the map stays
    monotone and the interval bounds stay ordered; a = ȳ − b·ŷ̄.
The 90 % interval bounds go through the same line (the conformal width scaled by b), and are
widened by `interval_scale` when the local samples say the site's errors are larger than the
training data's: the ⌈(n+1)·0.9⌉-th smallest ratio of a sample's leave-one-out residual (the
correction refitted without it) to its interval half-width — split-conformal on the local
samples — or the largest ratio below 9 samples, never below 1. The map report then measures
the coverage on the site.
"""
from __future__ import annotations

import numpy as np

SLOPE_PRIOR_SD = 5.0         # % clay: the spread of predictions at which the data and the prior weigh the same
MIN_LINEAR = 5               # below this many samples, a bias only
SLOPE_RANGE = (0.25, 4.0)


def fit(observed: np.ndarray, predicted: np.ndarray, kind: str = "auto") -> dict:
    """The correction {kind, a, b, n, …} of predictions `predicted` to match `observed`."""
    y, p = np.asarray(observed, np.float64), np.asarray(predicted, np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    n = int(y.size)
    if n == 0:
        raise ValueError("no local sample with a prediction to recalibrate on")
    if kind == "auto":
        kind = "bias" if n < MIN_LINEAR else "linear"
    if kind == "bias":
        a, b = float(np.mean(y - p)), 1.0
    elif kind == "linear":
        pm, ym = p.mean(), y.mean()
        sxx, sxy = float(np.sum((p - pm) ** 2)), float(np.sum((p - pm) * (y - ym)))
        kappa = n * SLOPE_PRIOR_SD ** 2
        b = float(np.clip(1.0 + (sxy - sxx) / (sxx + kappa), *SLOPE_RANGE))
        a = float(ym - b * pm)
    else:
        raise ValueError(f"unknown recalibration kind {kind!r} (auto, bias or linear)")
    fitted = a + b * p
    return {"kind": kind, "a": a, "b": b, "n": n, "slope_prior_sd": SLOPE_PRIOR_SD,
            "before": {"rmse": float(np.sqrt(np.mean((p - y) ** 2))), "bias": float(np.mean(p - y))},
            "after_in_sample": {"rmse": float(np.sqrt(np.mean((fitted - y) ** 2))),
                                "bias": float(np.mean(fitted - y))}}


def interval_scale(observed: np.ndarray, predicted: np.ndarray, half_width: np.ndarray, kind: str,
                   level: float = 0.9) -> float:
    """Factor (≥ 1) on the interval half-widths so that they cover the local samples' leave-one-out
    residuals at `level` (see the module docstring); 1 with fewer than 2 samples."""
    import math
    y, p, h = (np.asarray(a, np.float64) for a in (observed, predicted, half_width))
    n = y.size
    if n < 2:
        return 1.0
    ratios = []
    for i in range(n):
        rest = np.arange(n) != i
        c = fit(y[rest], p[rest], kind)
        ratios.append(abs(apply(p[i], c) - y[i]) / max(float(h[i]) * c["b"], 1e-6))
    r = np.sort(ratios)
    k = math.ceil((n + 1) * level)
    return float(max(1.0, r[min(k, n) - 1]))


def apply(x: np.ndarray, correction: dict | None) -> np.ndarray:
    if not correction:
        return np.asarray(x, np.float64)
    return correction["a"] + correction["b"] * np.asarray(x, np.float64)


def curve(observed: np.ndarray, predicted: np.ndarray, sizes=(1, 3, 5, 10, 20), repeats: int = 200,
          seed: int = 0, kind: str = "auto") -> list[dict]:
    """RMSE and bias on the held-back samples after recalibrating on n random ones, for each n:
    mean (and 10th/90th percentiles) over `repeats` draws; n = 0 is the model as it is."""
    y, p = np.asarray(observed, np.float64), np.asarray(predicted, np.float64)
    rng = np.random.default_rng(seed)
    rows = [{"n": 0, "rmse": float(np.sqrt(np.mean((p - y) ** 2))), "bias": float(np.mean(p - y)),
             "rmse_p10": None, "rmse_p90": None, "repeats": 1}]
    for n in sizes:
        if n >= y.size:
            continue
        rmse, bias = [], []
        for _ in range(repeats):
            pick = rng.choice(y.size, n, replace=False)
            rest = np.setdiff1d(np.arange(y.size), pick)
            c = fit(y[pick], p[pick], kind)
            e = apply(p[rest], c) - y[rest]
            rmse.append(np.sqrt(np.mean(e ** 2)))
            bias.append(np.mean(e))
        rows.append({"n": int(n), "rmse": float(np.mean(rmse)), "bias": float(np.mean(bias)),
                     "abs_bias": float(np.mean(np.abs(bias))),
                     "rmse_p10": float(np.percentile(rmse, 10)), "rmse_p90": float(np.percentile(rmse, 90)),
                     "repeats": repeats})
    return rows
