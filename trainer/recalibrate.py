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
From 3 samples on, the residuals left by that line are also **kriged** (regression kriging, the
digital-soil-mapping practice of Hengl et al. 2007, Geoderma 140:417): a map's errors at a site
are spatially correlated (the high-clay parts of a site are under-predicted together), so a
pixel near a local sample takes part of that sample's residual. Simple kriging (mean 0: the
line already removed the mean) with an exponential covariance C(d) = (1 − ν)·exp(−d / r) + ν·[d = 0]:
ν = KRIGING_NUGGET (30 % of the residual variance uncorrelated in space: lab error, point vs
pixel), r = the median nearest-neighbour distance of the samples (a handful of samples cannot
fit a variogram; their spacing is the scale they can resolve). The sill cancels out of the
weights. Far from every sample (d ≫ r) the term vanishes and only the line is left. On the
independent site of the embedded world (docs/trainer.md) it lowers the site RMSE at every n ≥ 3,
and the result hardly moves with r (0.5–4× the spacing) or ν (0.3–0.6).
The 90 % interval bounds go through the same line (the conformal width scaled by b), and are
widened by `interval_scale` when the local samples say the site's errors are larger than the
training data's: the ⌈(n+1)·0.9⌉-th smallest ratio of a sample's leave-one-out residual (the
correction refitted without it; 10-fold beyond LOO_MAX samples) to its interval half-width —
conformal on the local samples — or the largest ratio below 9 samples, never below 1. The map report then measures
the coverage on the site.

How far to trust the offset itself (`offset_uncertainty`): the site's mean error is estimated
from n samples whose residuals scatter by σ, so it is off by σ/√n (one standard error) and a
user with n samples is left, on average, with a site bias of σ·√(2/(πn)) (the mean of |N(0, σ²/n)|).
σ is the sd of the samples' leave-one-out residuals about the line (the kriged term does not move
the site's mean far from the samples); recorded with the samples needed for a mean |bias| ≤
BIAS_TARGET, so the user sees whether more samples are worth taking. On the independent site of
the embedded world σ ≈ 10–11 % clay: ≈ 3 % with 10 samples, and 16–21 samples for 2 %.
"""
from __future__ import annotations

import numpy as np

from trainer.compare_splits import EARTH_KM_PER_DEG   # the project's one km-per-degree

SLOPE_PRIOR_SD = 5.0         # % clay: the spread of predictions at which the data and the prior weigh the same
MIN_LINEAR = 5               # below this many samples, a bias only
SLOPE_RANGE = (0.25, 4.0)
KRIGING_NUGGET = 0.3         # share of the residual variance without spatial correlation
MIN_KRIGING = 3              # fewer samples: no spatial term (1–2 residuals of a fitted bias say nothing of space)
BIAS_TARGET = 2.0            # % clay: the site |bias| for which offset_uncertainty says how many samples it takes


def _km(coords: np.ndarray, origin: tuple[float, float]) -> np.ndarray:
    """(N, 2) lat/lon (deg) → (N, 2) km east/north of `origin` (equirectangular: exact to < 1 % over a
    few tens of km, the scale at which local samples correct a map)."""
    c = np.asarray(coords, np.float64).reshape(-1, 2)
    east = (c[:, 1] - origin[1]) * EARTH_KM_PER_DEG * np.cos(np.radians(origin[0]))
    return np.stack([east, (c[:, 0] - origin[0]) * EARTH_KM_PER_DEG], axis=1)


def _covariance(d_km: np.ndarray, range_km: float, nugget: float) -> np.ndarray:
    return (1.0 - nugget) * np.exp(-d_km / range_km)


def fit_kriging(coords: np.ndarray, residuals: np.ndarray, nugget: float = KRIGING_NUGGET) -> dict:
    """Simple kriging of `residuals` at `coords` (lat, lon): the weights α = C⁻¹·r that
    `kriging_term` needs, the range (median nearest-neighbour distance) and where the samples are."""
    from scipy.spatial.distance import cdist
    r = np.asarray(residuals, np.float64)
    origin = (float(np.mean(coords[:, 0])), float(np.mean(coords[:, 1])))
    xy = _km(coords, origin)
    d = cdist(xy, xy)
    nearest = np.where(np.eye(len(r), dtype=bool), np.inf, d).min(axis=1)
    range_km = max(float(np.median(nearest)), 1e-3)       # coincident samples: a pinpoint range
    cov = _covariance(d, range_km, nugget) + nugget * np.eye(len(r))
    alpha = np.linalg.solve(cov, r)
    return {"method": "simple kriging of the residuals, exponential covariance", "range_km": range_km,
            "nugget": nugget, "origin": list(origin), "points_km": xy.round(6).tolist(), "alpha": alpha.tolist()}


KRIGING_CHUNK = 1 << 22      # pixel × sample distances held at once (32 MiB of float64)


def kriging_term(coords: np.ndarray, krig: dict) -> np.ndarray:
    """The kriged residual (% clay) at each (lat, lon) of `coords`: c(x)ᵀ·α. Pixels go through in
    chunks so that a tile × hundreds of local samples never holds the whole distance matrix."""
    from scipy.spatial.distance import cdist
    xy = _km(coords, tuple(krig["origin"]))
    samples = np.asarray(krig["points_km"], np.float64).reshape(-1, 2)
    alpha = np.asarray(krig["alpha"], np.float64)
    step = max(1, KRIGING_CHUNK // max(len(samples), 1))
    out = np.empty(len(xy), np.float64)
    for i in range(0, len(xy), step):
        out[i:i + step] = _covariance(cdist(xy[i:i + step], samples), krig["range_km"], krig["nugget"]) @ alpha
    return out


def fit(observed: np.ndarray, predicted: np.ndarray, kind: str = "auto", coords: np.ndarray | None = None,
        kriging: bool = True) -> dict:
    """The correction {kind, a, b, n, kriging, …} of predictions `predicted` to match `observed`;
    with the samples' `coords` (lat, lon) and from MIN_KRIGING samples on, their residuals are kriged."""
    y, p = np.asarray(observed, np.float64), np.asarray(predicted, np.float64)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    xy = None if coords is None else np.asarray(coords, np.float64).reshape(-1, 2)[ok]
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
    krig = fit_kriging(xy, y - (a + b * p)) if kriging and xy is not None and n >= MIN_KRIGING else None
    fitted = a + b * p + (kriging_term(xy, krig) if krig else 0.0)
    return {"kind": kind, "a": a, "b": b, "n": n, "slope_prior_sd": SLOPE_PRIOR_SD, "kriging": krig,
            "before": {"rmse": float(np.sqrt(np.mean((p - y) ** 2))), "bias": float(np.mean(p - y))},
            "after_in_sample": {"rmse": float(np.sqrt(np.mean((fitted - y) ** 2))),
                                "bias": float(np.mean(fitted - y))}}


LOO_MAX = 100                # more local samples: 10-fold residuals instead of leave-one-out
CV_FOLDS = 10


def _held_out_folds(n: int) -> list[np.ndarray]:
    """Leave-one-out up to LOO_MAX samples; beyond, CV_FOLDS random folds (fixed seed): n refits of
    an n × n kriging system would cost O(n⁴), ten cost O(n³), and the residuals stay out-of-sample
    (CV+ in Barber et al. 2021, Ann. Stat. 49:486)."""
    if n <= LOO_MAX:
        return [np.array([i]) for i in range(n)]
    return np.array_split(np.random.default_rng(0).permutation(n), CV_FOLDS)


def held_out_residuals(observed: np.ndarray, predicted: np.ndarray, kind: str, coords: np.ndarray | None = None,
                       kriging: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Each local sample's signed residual y − ŷ' under the correction refitted without it (or without
    its fold, beyond LOO_MAX samples), and that refit's slope b; empty arrays with fewer than 2 samples."""
    y, p = np.asarray(observed, np.float64), np.asarray(predicted, np.float64)
    xy = None if coords is None else np.asarray(coords, np.float64).reshape(-1, 2)
    n = y.size
    if n < 2:
        return np.empty(0), np.empty(0)
    resid, slope = np.empty(n), np.empty(n)
    for held in _held_out_folds(n):
        rest = np.setdiff1d(np.arange(n), held)
        c = fit(y[rest], p[rest], kind, None if xy is None else xy[rest], kriging)
        resid[held] = y[held] - apply(p[held], c, None if xy is None else xy[held])
        slope[held] = c["b"]
    return resid, slope


def interval_scale(observed: np.ndarray, predicted: np.ndarray, half_width: np.ndarray, kind: str,
                   level: float = 0.9, coords: np.ndarray | None = None, kriging: bool = True) -> float:
    """Factor (≥ 1) on the interval half-widths so that they cover the local samples' held-out
    residuals at `level` (see the module docstring; the correction refitted without the sample —
    or its fold, beyond LOO_MAX samples — kriging included); 1 with fewer than 2 samples."""
    import math
    resid, slope = held_out_residuals(observed, predicted, kind, coords, kriging)
    n = resid.size
    if n < 2:
        return 1.0
    ratios = np.abs(resid) / np.maximum(np.asarray(half_width, np.float64) * slope, 1e-6)
    r = np.sort(ratios)
    k = math.ceil((n + 1) * level)
    return float(max(1.0, r[min(k, n) - 1]))


def offset_uncertainty(observed: np.ndarray, predicted: np.ndarray, kind: str,
                       target: float = BIAS_TARGET) -> dict | None:
    """How sure the site offset is (module docstring): the sd σ of the samples' leave-one-out residuals
    about the line, the offset's standard error σ/√n, the mean |bias| left with n samples
    σ·√(2/(πn)), and the samples for a mean |bias| ≤ `target`; None with fewer than 3 samples."""
    import math
    resid, _ = held_out_residuals(observed, predicted, kind, None, kriging=False)
    n = resid.size
    if n < 3:
        return None
    sd = float(np.std(resid, ddof=1))
    return {"residual_sd": sd, "offset_se": sd / math.sqrt(n),
            "expected_abs_bias": sd * math.sqrt(2.0 / (math.pi * n)), "target_abs_bias": float(target),
            "samples_for_target": int(math.ceil(2.0 / math.pi * (sd / target) ** 2))}


def line(x: np.ndarray, correction: dict | None) -> np.ndarray:
    """a + b·x of a correction (float64), x itself without one: the part that needs no coordinates."""
    if not correction:
        return np.asarray(x, np.float64)
    return correction["a"] + correction["b"] * np.asarray(x, np.float64)


def apply(x: np.ndarray, correction: dict | None, coords: np.ndarray | None = None) -> np.ndarray:
    """The corrected predictions; `coords` (lat, lon of each) are needed when the correction kriges."""
    out = line(x, correction)
    if correction and correction.get("kriging"):
        if coords is None:
            raise ValueError("this recalibration kriges its samples' residuals: the coordinates are needed")
        out = out + kriging_term(coords, correction["kriging"])
    return out


def curve(observed: np.ndarray, predicted: np.ndarray, sizes=(1, 3, 5, 10, 20), repeats: int = 200,
          seed: int = 0, kind: str = "auto", coords: np.ndarray | None = None) -> list[dict]:
    """RMSE and bias on the held-back samples after recalibrating on n random ones, for each n:
    mean (and 10th/90th percentiles) over `repeats` draws; n = 0 is the model as it is. With the
    samples' `coords` the correction is `s2mos recalibrate`'s (kriging included) and
    ``rmse_line`` is the same draws corrected by the line alone. ``stated_abs_bias`` is the mean
    over draws of what `offset_uncertainty` tells the user of that draw, beside the realised
    ``abs_bias``: whether the statement can be trusted."""
    y, p = np.asarray(observed, np.float64), np.asarray(predicted, np.float64)
    xy = None if coords is None else np.asarray(coords, np.float64).reshape(-1, 2)
    rng = np.random.default_rng(seed)
    rows = [{"n": 0, "rmse": float(np.sqrt(np.mean((p - y) ** 2))), "bias": float(np.mean(p - y)),
             "rmse_p10": None, "rmse_p90": None, "repeats": 1}]
    for n in sizes:
        if n >= y.size:
            continue
        rmse, bias, line_only, stated = [], [], [], []
        for _ in range(repeats):
            pick = rng.choice(y.size, n, replace=False)
            rest = np.setdiff1d(np.arange(y.size), pick)
            c = fit(y[pick], p[pick], kind, None if xy is None else xy[pick])
            e = apply(p[rest], c, None if xy is None else xy[rest]) - y[rest]
            rmse.append(np.sqrt(np.mean(e ** 2)))
            bias.append(np.mean(e))
            line_only.append(np.sqrt(np.mean((line(p[rest], c) - y[rest]) ** 2)))
            u = offset_uncertainty(y[pick], p[pick], c["kind"])
            stated.append(u["expected_abs_bias"] if u else np.nan)
        rows.append({"n": int(n), "rmse": float(np.mean(rmse)), "bias": float(np.mean(bias)),
                     "abs_bias": float(np.mean(np.abs(bias))),
                     "stated_abs_bias": None if np.all(np.isnan(stated)) else float(np.nanmean(stated)),
                     "rmse_p10": float(np.percentile(rmse, 10)), "rmse_p90": float(np.percentile(rmse, 90)),
                     "rmse_line": float(np.mean(line_only)), "kriged": xy is not None and n >= MIN_KRIGING,
                     "repeats": repeats})
    return rows
