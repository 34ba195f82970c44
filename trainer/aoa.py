"""Area of applicability (Meyer & Pebesma 2021): the dissimilarity index DI and its threshold.

DI of a location = distance to the nearest training point in the standardised, importance-
weighted predictor space, divided by the mean pairwise distance of the training points. The
AOA is DI ≤ threshold, the threshold being the outlier-removed maximum (largest value below
Q75 + 1.5·IQR) of the training points' cross-validated DI: each training point's distance to
the nearest training point of the *other* folds (spatial blocks here, as a map extrapolates
in space).

Feature space. The CNN has no explicit feature space, so we use one that describes what it
sees and is cheap per pixel: the per-channel temporal median of the model's own input
sequence (the bare-soil S2 bands, and VV/VH where the model pairs S1: the median composite
the RF/ANN baselines use, extended to the radar channels), plus lat/lon when the model takes
coordinates. The weights are the impurity importances of a random forest fitted to clay on
exactly these features (Meyer & Pebesma weight by the model's variable importance; the CNN
has none, and this RF is the baseline the paper compares it with). The same `median_features`
runs on the training sequences and on the map's ragged pixel sequences, so the two agree.
For the whole-series model (`trainer.series`) the space is the temporal composites of its S2
rows instead (`trust.aoa_space`, `composites.series_composites`): per-band quantiles, index
medians and IQRs, the number of bare dates and the season, which describe the whole series it
reads better than medians do (measured: docs/trainer.md). `fit` and `AOA` take any feature rows.
"""
from __future__ import annotations

import numpy as np

METHOD = ("Meyer & Pebesma 2021: DI = nearest training distance / mean training distance in the "
          "standardised, RF-importance-weighted feature space (see `space`: per-channel temporal medians, "
          "or temporal composites of the whole series; + lat, lon); "
          "threshold = outlier-removed max of spatial-block CV DI")
MAX_TRAIN = 5000        # training points kept in the model directory (float32), drawn at random beyond
N_FOLDS = 5


def median_features(values: np.ndarray, lengths: np.ndarray, coords: np.ndarray | None = None) -> np.ndarray:
    """(P, C [+2]) float32: per-channel median of each ragged sequence (NaN where empty), then lat, lon.

    Vectorised: one sort of (segment, value) per channel, the middle one or two per segment.
    """
    values = np.asarray(values, np.float64).reshape(-1, np.shape(values)[-1] if np.ndim(values) > 1 else 1)
    lengths = np.asarray(lengths, np.int64)
    p, c = lengths.size, values.shape[1]
    out = np.full((p, c), np.nan)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    has = lengths > 0
    seg = np.repeat(np.arange(p), lengths)
    lo, hi = starts[has] + (lengths[has] - 1) // 2, starts[has] + lengths[has] // 2
    for j in range(c):
        col = values[:, j]
        srt = col[np.lexsort((col, seg))]
        out[has, j] = 0.5 * (srt[lo] + srt[hi])
    if coords is not None:
        out = np.concatenate([out, np.asarray(coords, np.float64).reshape(-1, 2)], axis=1)
    return out.astype(np.float32)


def ragged(seqs: list[np.ndarray], n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """A list of (L_i, C) sequences → (values (ΣL, C), lengths)."""
    lengths = np.array([len(s) for s in seqs], np.int64)
    parts = [np.asarray(s, np.float32).reshape(-1, n_channels) for s in seqs if len(s)]
    values = np.concatenate(parts) if parts else np.zeros((0, n_channels), np.float32)
    return values, lengths


def spatial_blocks(coords: np.ndarray, k: int = N_FOLDS, per_side: int | None = None) -> np.ndarray:
    """Block of each point: quantile blocks of lat × lon, m × m of them with m = `per_side` or, by
    default, ⌈√(4k)⌉ (about four blocks per fold)."""
    c = np.asarray(coords, np.float64)
    m = per_side or max(2, int(np.ceil(np.sqrt(4 * k))))
    ids = np.zeros(len(c), np.int64)
    for j in range(2):
        edges = np.quantile(c[:, j], np.linspace(0, 1, m + 1)[1:-1])
        ids = ids * m + np.searchsorted(edges, c[:, j], side="right")
    return ids


def spatial_folds(coords: np.ndarray, k: int = N_FOLDS, seed: int = 0, per_side: int | None = None) -> np.ndarray:
    """Fold of each point: the `spatial_blocks` (about 4k of them by default) dealt at random to k folds."""
    ids = spatial_blocks(coords, k, per_side)
    blocks = np.unique(ids)
    if len(blocks) < k:
        raise ValueError(f"{len(blocks)} spatial blocks cannot fill {k} folds: use more blocks per side")
    fold_of = np.random.default_rng(seed).permutation(len(blocks)) % k
    return fold_of[np.searchsorted(blocks, ids)]


def importance_weights(x: np.ndarray, y: np.ndarray, seed: int = 0) -> np.ndarray:
    """RF impurity importances of the features for clay (sum to 1)."""
    from sklearn.ensemble import RandomForestRegressor
    rf = RandomForestRegressor(n_estimators=200, min_samples_leaf=5, random_state=seed, n_jobs=2)
    w = rf.fit(x, y).feature_importances_
    return (w / w.sum()).astype(np.float64) if w.sum() > 0 else np.full(x.shape[1], 1.0 / x.shape[1])


def _mean_pairwise(z: np.ndarray, seed: int, cap: int = 3000) -> float:
    from scipy.spatial.distance import pdist
    if len(z) > cap:
        z = z[np.random.default_rng(seed).choice(len(z), cap, replace=False)]
    d = pdist(z)
    return float(d.mean()) if d.size else 1.0


def upper_whisker(values: np.ndarray) -> float:
    """Largest value not above Q75 + 1.5·IQR (the outlier-removed maximum of a boxplot)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    q25, q75 = np.percentile(v, [25, 75])
    return float(v[v <= q75 + 1.5 * (q75 - q25)].max())


def fit(features: np.ndarray, clay: np.ndarray, coords: np.ndarray, names: list[str], seed: int = 0,
        weights: np.ndarray | None = None, folds: np.ndarray | None = None) -> tuple[dict, np.ndarray]:
    """(metadata, weighted standardised training features float32) of the AOA of a training set."""
    from scipy.spatial import cKDTree

    x = np.asarray(features, np.float64)
    ok = np.all(np.isfinite(x), axis=1)
    x, y, xy = x[ok], np.asarray(clay, np.float64)[ok], np.asarray(coords, np.float64)[ok]
    if len(x) < 2 * N_FOLDS:
        raise ValueError(f"too few training points with features for the AOA ({len(x)})")
    center, scale = x.mean(axis=0), x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    w = importance_weights(x, y, seed) if weights is None else np.asarray(weights, np.float64)
    z = (x - center) / scale * w
    folds = spatial_folds(xy, N_FOLDS, seed) if folds is None else np.asarray(folds)[ok]
    dmean = _mean_pairwise(z, seed)
    cv_di = np.full(len(z), np.nan)
    for f in np.unique(folds):
        inside = folds == f
        if inside.all():
            continue
        d, _ = cKDTree(z[~inside]).query(z[inside], k=1)
        cv_di[inside] = d / dmean
    keep = np.arange(len(z))
    if len(z) > MAX_TRAIN:
        keep = np.sort(np.random.default_rng(seed).choice(len(z), MAX_TRAIN, replace=False))
    meta = {"method": METHOD, "features": list(names), "center": center.tolist(), "scale": scale.tolist(),
            "weights": w.tolist(), "dmean": dmean, "threshold": upper_whisker(cv_di),
            "n_training": int(len(z)), "n_stored": int(len(keep)), "cv": "spatial blocks, 5 folds"}
    return meta, z[keep].astype(np.float32)


class AOA:
    """The stored AOA of a model: DI and the in-AOA mask of new feature rows."""

    def __init__(self, meta: dict, train: np.ndarray):
        from scipy.spatial import cKDTree
        self.meta = meta
        self.center = np.asarray(meta["center"], np.float64)
        self.scale = np.asarray(meta["scale"], np.float64)
        self.weights = np.asarray(meta["weights"], np.float64)
        self.tree = cKDTree(np.asarray(train, np.float64))
        self.dmean, self.threshold = float(meta["dmean"]), float(meta["threshold"])

    def di(self, features: np.ndarray) -> np.ndarray:
        """float32 DI of each row (NaN where a feature is missing)."""
        x = np.asarray(features, np.float64)
        out = np.full(len(x), np.nan, np.float32)
        ok = np.all(np.isfinite(x), axis=1)
        if ok.any():
            d, _ = self.tree.query((x[ok] - self.center) / self.scale * self.weights, k=1)
            out[ok] = (d / self.dmean).astype(np.float32)
        return out

    def inside(self, di: np.ndarray) -> np.ndarray:
        return np.asarray(di) <= self.threshold


def split_errors(observed: np.ndarray, predicted: np.ndarray, di: np.ndarray, threshold: float) -> dict:
    """MAE (and n) inside and outside the AOA, and their ratio: does the DI mark larger errors?"""
    err = np.abs(np.asarray(predicted, np.float64) - np.asarray(observed, np.float64))
    di = np.asarray(di, np.float64)
    inside, outside = di <= threshold, di > threshold
    out = {"threshold": float(threshold), "n_inside": int(inside.sum()), "n_outside": int(outside.sum()),
           "mae_inside": float(err[inside].mean()) if inside.any() else None,
           "mae_outside": float(err[outside].mean()) if outside.any() else None,
           "mean_di": float(np.nanmean(di)) if np.isfinite(di).any() else None}
    out["ratio"] = (out["mae_outside"] / out["mae_inside"]
                    if out["mae_inside"] and out["mae_outside"] is not None else None)
    return out
