"""90 % prediction intervals: locally adaptive split-conformal on out-of-bag residuals.

Why this method. The bag spread (`clay_std`) is not an interval: it is the disagreement of
models trained on 80 % subsets of the same data, ~1 % clay against a ~9 % RMSE. Conformal
prediction turns any point predictor into intervals with a finite-sample coverage guarantee
under exchangeability, without distributional assumptions, and needs no new model. The
calibration residuals come for free from the bags: every calibration point is out of bag
for about 20 % of them, and the mean of those bags' predictions is a prediction from models
that never saw the point (the residual a new site would get). Points that are in every bag
(0.8^K of them, K bags) are left out.

Locally adaptive: the score is |y − ŷ_oob| / (σ + ε), σ the spread over all bags (what the
map computes per pixel), ε = the median σ of the calibration points (so a pixel whose bags
agree perfectly still gets a finite interval and σ only modulates the width). The interval is
ŷ ± q·(σ + ε), q the ⌈(n+1)·0.9⌉-th smallest score (split-conformal quantile). GlobalSoilMap
asks for the 90 % interval: lower bound = 5th, upper = 95th percentile (`clay_p05`, `clay_p95`).

Both ŷ_oob (a mean over ~K/5 bags rather than K) and σ at a calibration point (where 80 % of
the bags saw it, so they agree more) make the scores slightly larger than a new point's, so
the intervals err on the wide side; `evaluate` reports the coverage (PICP) on the test split.
"""
from __future__ import annotations

import math

import numpy as np

LEVEL = 0.9
METHOD = "split-conformal, locally adaptive: |y - oob mean| / (bag sd + eps), eps = median calibration bag sd"


def oob_mean(bag_preds: np.ndarray, bags: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(mean over the bags that did not train on each point, count of such bags); NaN where 0."""
    p = np.asarray(bag_preds, np.float64)
    out = np.ones(p.shape, bool)
    for k, bag in enumerate(bags):
        out[k, np.asarray(bag, np.int64)] = False
    count = out.sum(axis=0)
    total = np.where(out, p, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, count


def conformal_quantile(scores: np.ndarray, level: float = LEVEL) -> float:
    """The ⌈(n+1)·level⌉-th smallest score (inf when n is too small for the level)."""
    s = np.sort(np.asarray(scores, np.float64))
    k = math.ceil((s.size + 1) * level)
    return float(s[k - 1]) if 0 < k <= s.size else math.inf


METHOD_CONSTANT = "split-conformal, constant width: |y - oob mean| (forests: the bag sd is not comparable)"


def fit(observed: np.ndarray, bag_preds: np.ndarray, bags: list[np.ndarray], level: float = LEVEL,
        scale_by_spread: bool = True) -> dict:
    """Conformal parameters of a bagged model from its calibration-set bag predictions (% clay).

    ``scale_by_spread=False`` (random forests): a forest's in-bag predictions nearly reproduce
    its training targets, so the bag spread at a calibration point (in-bag and out-of-bag bags
    mixed) is far larger than at a new point and the scaled scores are no longer exchangeable
    with a new point's (measured: 0.54-0.64 coverage at 90 %); the plain out-of-bag residual is.
    """
    y = np.asarray(observed, np.float64)
    sd = np.asarray(bag_preds, np.float64).std(axis=0)
    oob, count = oob_mean(bag_preds, bags)
    use = count > 0
    if use.sum() < 2:
        raise ValueError("too few out-of-bag calibration points for conformal intervals")
    if scale_by_spread:
        eps = float(max(np.median(sd[use]), 1e-3))
        scores = np.abs(y[use] - oob[use]) / (sd[use] + eps)
    else:
        eps, scores = 1.0, np.abs(y[use] - oob[use])
    q = conformal_quantile(scores, level)
    return {"method": METHOD if scale_by_spread else METHOD_CONSTANT, "level": float(level), "q": q, "eps": eps,
            "scale_by_spread": bool(scale_by_spread), "n": int(use.sum()),
            "oob_rmse": float(np.sqrt(np.mean((y[use] - oob[use]) ** 2)))}


def bounds(mean: np.ndarray, sd: np.ndarray, params: dict) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of the interval around `mean` with bag spread `sd` (float32)."""
    spread = np.asarray(sd, np.float32) if params.get("scale_by_spread", True) else np.zeros_like(sd, np.float32)
    half = np.float32(params["q"]) * (spread + np.float32(params["eps"]))
    m = np.asarray(mean, np.float32)
    return (m - half).astype(np.float32), (m + half).astype(np.float32)


def coverage(observed: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> dict:
    """PICP (share of observations inside [lower, upper]) and mean interval width."""
    y = np.asarray(observed, np.float64)
    if y.size == 0:
        return {"picp": None, "mean_width": None, "n": 0}
    inside = (y >= lower) & (y <= upper)
    return {"picp": float(inside.mean()), "mean_width": float(np.mean(np.asarray(upper) - np.asarray(lower))),
            "n": int(y.size)}
