"""RF and ANN baselines (paper Section 2.3.3 and Appendix A).

Inputs
  * ``composite``: normalised median composite of every bare S2 observation (10 bands), with
    or without normalised lat/lon — the state-of-the-art approach the CNN is compared with.
  * ``per_date`` (Appendix A, "RF and ANN including also the data from Sentinel-1 for each
    time step"): one row per S1-paired date (12 channels + lat/lon), target = the point's clay;
    a point's prediction is the mean of its dates' predictions (Figure A1: "the plotting values
    represent the mean value of the predicted values"). We chose rows per date over a flattened
    150 × 12 padded vector because a tree split on "date slot 37" mixes unrelated dates across
    points; the per-date rows keep every observation and let the model average the confounds.

RF hyper-parameters: the paper's 5-fold CV grid — mtry {6, 24} (sklearn `max_features`,
capped at the number of features), minimal node size {5, 10, 20, 50} (R randomForest's
`nodesize`, mapped by `node_params`), trees {500, 1000, 1500} — picked by CV RMSE on the
calibration set only; folds group rows by point so no point straddles a fold. Tree counts are
evaluated as growing prefixes of one forest (`warm_start`), which is exactly what separate
fits with the same seed would give, at a third of the cost.

`nodesize` in R randomForest (the paper's RF; CRAN source src/regTree.c, `regTree`): after a node
is split, each daughter is marked terminal when ``numPointsInEachNode <= nthsize`` (nthsize =
nodesize), otherwise it is split whenever some split lowers the squared error; nothing bounds
the size of the daughters themselves (a split may leave one sample on a side). The man page's
"minimum size of terminal nodes" is therefore loose: nodesize is a *split* threshold — a node
with ≤ nodesize samples is never split. In scikit-learn that is ``min_samples_split =
nodesize + 1`` (a node is a leaf when ``n_node_samples < min_samples_split``, sklearn
tree/_tree.pyx) with ``min_samples_leaf = 1``; ``min_samples_leaf = nodesize`` (the earlier
mapping) forbids leaves smaller than nodesize and grows much shallower trees. One difference
remains: R grows each tree on the bootstrap draws as rows (src/regrf.c copies the drawn rows
into xb, yb), so its count includes duplicates; scikit-learn passes the draws as sample
weights and counts distinct in-bag points (an in-bag point is drawn ≈ 1.58 times on
average), so at equal nodesize sklearn stops splitting slightly earlier. The table keys of
rf_cv.json keep the R name: ``min_node_size`` is R's nodesize.
"""
from __future__ import annotations

import dataclasses
import itertools
import time

import numpy as np


@dataclasses.dataclass(frozen=True)
class RFGrid:
    mtry: tuple[int, ...]
    min_node_size: tuple[int, ...]
    trees: tuple[int, ...]


PAPER_GRID = RFGrid(mtry=(6, 24), min_node_size=(5, 10, 20, 50), trees=(500, 1000, 1500))
QUICK_GRID = RFGrid(mtry=(6, 24), min_node_size=(5, 20), trees=(100,))


def node_params(nodesize: int) -> dict:
    """R randomForest's `nodesize` as scikit-learn tree parameters (module docstring)."""
    return {"min_samples_split": int(nodesize) + 1, "min_samples_leaf": 1}


def make_forest(trees: int, mtry: int, nodesize: int, seed: int, n_jobs: int = -1, warm_start: bool = False):
    """The paper's RF: `trees` trees, `mtry` features tried per split, R's `nodesize` rule."""
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=trees, max_features=mtry, random_state=seed, n_jobs=n_jobs,
                                 warm_start=warm_start, **node_params(nodesize))


def effective_mtry(mtry: tuple[int, ...], n_features: int) -> tuple[int, ...]:
    """mtry values capped at the number of features, duplicates removed (24 → 12 on 12 features)."""
    return tuple(sorted({max(1, min(m, n_features)) for m in mtry}))


def _fold_iter(n_rows: int, groups: np.ndarray | None, folds: int, seed: int):
    from sklearn.model_selection import GroupKFold, KFold

    if groups is None:
        return KFold(folds, shuffle=True, random_state=seed).split(np.zeros(n_rows))
    return GroupKFold(folds, shuffle=True, random_state=seed).split(np.zeros(n_rows), groups=groups)


def _point_rmse(pred: np.ndarray, y: np.ndarray, groups: np.ndarray | None) -> float:
    """RMSE per point: row predictions of a point are averaged first (per_date input)."""
    if groups is None:
        return float(np.sqrt(np.mean((pred - y) ** 2)))
    uniq, inv = np.unique(groups, return_inverse=True)
    p = np.bincount(inv, weights=pred) / np.bincount(inv)
    t = np.bincount(inv, weights=y) / np.bincount(inv)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def select_rf(x: np.ndarray, y: np.ndarray, grid: RFGrid = PAPER_GRID, folds: int = 5, seed: int = 0,
              groups: np.ndarray | None = None, n_jobs: int = -1, log=None,
              done: dict[str, dict[int, list[float]]] | None = None, on_cell=None) -> tuple[dict, list[dict]]:
    """k-fold CV grid search on calibration data; returns (best params, table of every cell).

    Resumable by cell: `done` maps "mtry/nodesize" to the per-fold RMSEs of each tree count of
    cells already scored (skipped); `on_cell(key, scores)` is called after each new cell."""
    done = done or {}
    n_feat = x.shape[1]
    n_units = len(np.unique(groups)) if groups is not None else len(x)
    folds = max(2, min(folds, n_units))
    splits = list(_fold_iter(len(x), groups, folds, seed))
    trees = tuple(sorted(grid.trees))
    table = []
    for mtry, node in itertools.product(effective_mtry(grid.mtry, n_feat), grid.min_node_size):
        t0 = time.perf_counter()
        cell = f"{mtry}/{node}"
        if cell in done:
            scores = {t: list(done[cell][t]) for t in trees}
        else:
            scores = {t: [] for t in trees}
            for train_idx, val_idx in splits:
                rf = make_forest(trees[0], mtry, node, seed, n_jobs, warm_start=True)
                for t in trees:
                    rf.set_params(n_estimators=t)
                    rf.fit(x[train_idx], y[train_idx])
                    g = groups[val_idx] if groups is not None else None
                    scores[t].append(_point_rmse(rf.predict(x[val_idx]), y[val_idx], g))
            if on_cell:
                on_cell(cell, scores)
        for t in trees:
            table.append({"mtry": int(mtry), "min_node_size": int(node), "trees": int(t),
                          "cv_rmse": float(np.mean(scores[t])), "cv_rmse_sd": float(np.std(scores[t]))})
        if log:
            best_t = min(trees, key=lambda t: np.mean(scores[t]))
            log(f"    mtry={mtry:<3d} min_node={node:<3d} best trees={best_t}: "
                f"cv rmse {np.mean(scores[best_t]):.4f} "
                + ("(resumed)" if cell in done else f"({time.perf_counter() - t0:.1f}s)"))
    # smallest CV RMSE; ties → fewer trees, then larger nodes (the simpler model)
    best = min(table, key=lambda r: (round(r["cv_rmse"], 12), r["trees"], -r["min_node_size"], r["mtry"]))
    return {k: best[k] for k in ("mtry", "min_node_size", "trees")}, table


def fit_rf(x: np.ndarray, y: np.ndarray, params: dict, seed: int, n_jobs: int = -1):
    rf = make_forest(params["trees"], min(params["mtry"], x.shape[1]), params["min_node_size"], seed, n_jobs)
    return rf.fit(x, y)


def per_date_batch_size(batch_size: int, rows: int, points: int) -> int:
    """Per-date models: a batch holds about `batch_size` points' worth of rows.

    Keeps the number of optimiser steps per epoch equal to the point-level models', so the
    same epoch budget means the same amount of training (batch 8 on ~100 000 date rows would
    take 12 500 steps an epoch).
    """
    return max(batch_size, int(round(batch_size * rows / max(points, 1))))
