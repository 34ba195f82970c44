"""Calibration / test partition (paper Section 2.3.4): Kennard–Stone on the mean S2 spectrum.

Kennard & Stone (1969): start with the two points farthest apart (Euclidean distance),
then repeatedly add the point whose distance to its nearest already-selected point is the
largest. The selected points form the calibration set, so calibration covers the spectral
space evenly; the rest is the test set. Deterministic: ties go to the lowest index, and
the caller feeds points in a fixed order (input row order).

Cost: the farthest pair is O(n²·d) with BLAS in blocks, the selection O(n·n_cal·d);
about a second for 10⁴ points, about a minute for 10⁵.
"""
from __future__ import annotations

import math

import numpy as np

CALIBRATION = "calibration"
TEST = "test"


def _max_pair_blocked(x: np.ndarray) -> tuple[float, int, int]:
    """Largest squared distance among rows of x and its pair (row-major first on ties)."""
    n = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    best, pair = -1.0, (0, min(1, n - 1))
    block = max(1, (1 << 22) // max(n, 1))
    for start in range(0, n, block):
        stop = min(n, start + block)
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        i, j = np.unravel_index(int(np.argmax(d2)), d2.shape)
        if d2[i, j] > best:
            best, pair = float(d2[i, j]), (start + int(i), int(j))
    return best, pair[0], pair[1]


def _farthest_pair(x: np.ndarray) -> tuple[int, int]:
    """The two most distant rows, lowest index first (exact, with pruning).

    A lower bound L on the largest distance comes from a few farthest-point hops; a point
    whose distance r to the centroid satisfies r + r_max < L cannot be in the farthest
    pair (d(i, j) ≤ r_i + r_j), so only the few extreme points enter the O(m²) search.
    """
    r = np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1))
    i = int(np.argmax(r))
    lower = 0.0
    for _ in range(3):
        d = np.sqrt(((x - x[i]) ** 2).sum(axis=1))
        j = int(np.argmax(d))
        lower = max(lower, float(d[j]))
        i = j
    keep = np.flatnonzero(r + r.max() >= lower * (1.0 - 1e-9))   # ascending original indices
    _, a, b = _max_pair_blocked(x[keep])
    a, b = int(keep[a]), int(keep[b])
    return (min(a, b), max(a, b))                     # the lower index is selected first


def kennard_stone(x: np.ndarray, n_select: int) -> np.ndarray:
    """Indices of the ``n_select`` rows chosen by Kennard–Stone, in selection order."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"kennard_stone expects (n, d) features, got shape {x.shape}")
    n = x.shape[0]
    n_select = int(n_select)
    if not 0 <= n_select <= n:
        raise ValueError(f"cannot select {n_select} of {n} points")
    if n_select == 0:
        return np.zeros(0, np.int64)
    if not np.isfinite(x).all():
        raise ValueError("kennard_stone features contain NaN or infinite values")
    if n == 1:
        return np.zeros(1, np.int64)
    a, b = _farthest_pair(x)
    selected = [a, b][:n_select]
    if n_select <= 2:
        return np.asarray(selected, np.int64)
    # Squared distance of every point to its nearest selected point (Gram form: one matrix-
    # vector product per step, in-place updates); selected points get −1 so they are never
    # picked again.
    xt = np.ascontiguousarray(x.T)
    sq = np.einsum("ij,ij->i", x, x)
    dmin = np.minimum(sq - 2.0 * (x[a] @ xt) + sq[a], sq - 2.0 * (x[b] @ xt) + sq[b])
    dmin[[a, b]] = -1.0
    d = np.empty_like(dmin)
    for _ in range(n_select - 2):
        k = int(np.argmax(dmin))                      # first maximum: lowest index on ties
        selected.append(k)
        np.matmul(-2.0 * x[k], xt, out=d)
        d += sq
        d += sq[k]
        np.minimum(dmin, d, out=dmin)
        dmin[k] = -1.0
    return np.asarray(selected, np.int64)


def n_test_for(n: int, test_fraction: float) -> int:
    """Test-set size: round half up of n × fraction (0.2 of 6136 → 1227)."""
    if not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test fraction must be in [0, 1), got {test_fraction}")
    return int(math.floor(n * test_fraction + 0.5)) if n > 1 else 0


def kennard_stone_split(x: np.ndarray, test_fraction: float = 0.2) -> np.ndarray:
    """Boolean ``is_test`` per row: the Kennard–Stone selection is calibration, the rest test."""
    x = np.asarray(x, np.float64)
    n = x.shape[0]
    n_cal = n - n_test_for(n, test_fraction)
    is_test = np.ones(n, bool)
    is_test[kennard_stone(x, n_cal)] = False
    return is_test


def assign_splits(features: np.ndarray, held_out: np.ndarray, test_fraction: float = 0.2) -> np.ndarray:
    """Split labels per point: held-out points (an independent site) all go to test; the
    others are split by Kennard–Stone with ``test_fraction``. Returns an array of
    `CALIBRATION` / `TEST` strings in the input order.
    """
    features = np.asarray(features, np.float64)
    held_out = np.asarray(held_out, bool)
    labels = np.full(features.shape[0], TEST, dtype=object)
    main = np.flatnonzero(~held_out)
    if main.size:
        is_test = kennard_stone_split(features[main], test_fraction)
        labels[main[~is_test]] = CALIBRATION
    return labels
