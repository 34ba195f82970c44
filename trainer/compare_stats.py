"""The interval maths of `s2mos compare`: a nested (hierarchical) paired bootstrap of ΔR² and ΔRMSE.

What varies between two verdicts on "does X beat Y": the test points that happened to be drawn,
the training seed (bags, initialisation, shuffling) and the partition of the points into
calibration and test. The interval of the mean Δ over every run (partition × seed) resamples
all three, following how the runs were made:

1. split schemes (ks, random, spatial) are strata, never resampled: each keeps its runs;
2. within a scheme, its partitions are resampled with replacement (KS has one partition, which
   is deterministic: no partition variance, as there is none);
3. within each drawn partition, its seeds are resampled with replacement;
4. within each drawn partition, its common test points are resampled with replacement ONCE and
   that resample is used for every drawn seed and for both models (paired: the runs of one
   partition share their test points, and the two models are scored on the same points).

The statistic of each bootstrap replicate is the mean over the drawn runs of Δ = metric(X) −
metric(Y) on the resampled points (every run weighs the same); the 95 % interval is the 2.5 and
97.5 percentiles of the replicates. Point estimate: the same mean on the full data.

ΔR² > 0 and ΔRMSE < 0 favour X. Verdict (per metric): "X beats Y" when the interval lies wholly on
X's side of 0, "Y beats X" when it lies wholly on Y's side, else "no clear difference".
"""
from __future__ import annotations

import dataclasses

import numpy as np

from s2mos_transforms import metrics

METRICS: tuple[str, ...] = ("r2", "rmse")
BETTER_HIGH = {"r2": True, "rmse": False}


@dataclasses.dataclass
class PairGroup:
    """One partition's runs of a pair of models on their common test points (aligned by point)."""
    scheme: str
    observed: np.ndarray       # (n,)
    a: np.ndarray              # (S, n) model X's predictions, one row per seed
    b: np.ndarray              # (S, n) model Y's predictions


def score(observed: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """R² and RMSE (`s2mos_transforms.metrics`) of one run of one model."""
    return {"r2": metrics.r2(observed, predicted), "rmse": metrics.rmse(observed, predicted), "n": int(len(observed))}


def _delta_rows(y: np.ndarray, a: np.ndarray, b: np.ndarray, metric: str) -> np.ndarray:
    """Δ metric per row of resampled (m, n) arrays: y (m, n), a and b (m, n)."""
    sse_a = np.sum((y - a) ** 2, axis=1)
    sse_b = np.sum((y - b) ** 2, axis=1)
    n = y.shape[1]
    if metric == "r2":
        sst = np.sum((y - y.mean(axis=1, keepdims=True)) ** 2, axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sst > 0, (sse_b - sse_a) / sst, 0.0)
    if metric == "rmse":
        return np.sqrt(sse_a / n) - np.sqrt(sse_b / n)
    raise ValueError(f"unknown metric {metric!r}")


def run_deltas(group: PairGroup, metric: str) -> np.ndarray:
    """Δ metric of each seed of a partition on its full common test points, (S,)."""
    fn = metrics.r2 if metric == "r2" else metrics.rmse
    return np.asarray([fn(group.observed, a) - fn(group.observed, b) for a, b in zip(group.a, group.b)])


def nested_bootstrap(groups: list[PairGroup], metric: str = "r2", n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Mean Δ over every run and its nested-bootstrap interval (module docstring)."""
    if not groups:
        raise ValueError("no runs to compare")
    rng = np.random.default_rng(seed)
    schemes = list(dict.fromkeys(g.scheme for g in groups))
    n_runs = sum(len(g.a) for g in groups)
    total = np.zeros(n_boot)
    for scheme in schemes:
        members = [g for g in groups if g.scheme == scheme]
        picks = rng.integers(0, len(members), (n_boot, len(members)))     # partitions drawn per replicate
        for p, g in enumerate(members):
            rows = np.flatnonzero((picks == p).any(axis=1))
            counts = (picks[rows] == p).sum(axis=1)                          # times drawn in each replicate
            n, s = g.observed.size, g.a.shape[0]
            for k in range(int(counts.max()) if rows.size else 0):
                take = rows[counts > k]
                idx = rng.integers(0, n, (take.size, n))                       # one point resample per draw
                seeds = rng.integers(0, s, (take.size, s))                     # seeds drawn per draw
                yy = g.observed[idx]
                deltas = np.stack([_delta_rows(yy, g.a[j][idx], g.b[j][idx], metric) for j in range(s)], 1)
                total[take] += np.take_along_axis(deltas, seeds, axis=1).sum(axis=1)
    replicates = total / n_runs
    estimate = float(np.mean(np.concatenate([run_deltas(g, metric) for g in groups])))
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(replicates, [tail, 100.0 - tail])
    return {"metric": metric, "delta": estimate, "low": float(lo), "high": float(hi), "level": level,
            "n_boot": int(n_boot), "n_runs": int(n_runs), "n_partitions": len(groups),
            "sd_boot": float(np.std(replicates, ddof=1)) if n_boot > 1 else 0.0}


def verdict(interval: dict, name_a: str, name_b: str) -> str:
    """"A beats B" / "B beats A" when the interval excludes 0 on one side, else "no clear difference"."""
    better_high = BETTER_HIGH[interval["metric"]]
    if interval["low"] > 0 or interval["high"] < 0:
        a_better = (interval["low"] > 0) == better_high
        return f"{name_a} beats {name_b}" if a_better else f"{name_b} beats {name_a}"
    return "no clear difference"


def mean_sd(values) -> dict[str, float]:
    """Mean and sample sd (ddof 1; 0 for one value) of a model's scores over runs."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], np.float64)
    if not v.size:
        return {"mean": float("nan"), "sd": float("nan"), "n_runs": 0}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if v.size > 1 else 0.0, "n_runs": int(v.size)}
