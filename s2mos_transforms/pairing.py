"""Sentinel-1 ↔ Sentinel-2 pairing (paper Section 2.1.3), vectorised.

Each S2 date is paired with the S1 acquisition nearest in time, at most
``bands.S1_PAIR_MAX_DAYS`` away (inclusive: exactly 24 h still pairs). Times carry the time
of day, so "1 day" means 86 400 s, not a calendar day.

Tie rule: when two S1 acquisitions are equally near (one before, one after the S2 date, or
two at the same instant), the **earlier** one wins — a fixed, documented choice so that
the same inputs always give the same pairs. Per pixel, a candidate whose VV or VH is
missing is skipped and the next nearest one inside the window is used.
"""
from __future__ import annotations

import numpy as np

from s2mos_transforms import bands

SECONDS_PER_DAY = 86_400


def to_seconds(times) -> np.ndarray:
    """datetime64 / pandas timestamps / integer seconds → int64 seconds since the epoch (UTC)."""
    arr = np.asarray(times)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[s]").astype(np.int64)
    if arr.dtype == object:
        return np.asarray(arr.astype("datetime64[s]"), np.int64)
    return arr.astype(np.int64)


def pair_candidates(s2_times, s1_times, max_days: float = bands.S1_PAIR_MAX_DAYS) -> np.ndarray:
    """S1 candidates of every S2 date, nearest first: int64 ``(T2, K)``, −1 where none.

    Indices refer to the ``s1_times`` array as given (it need not be sorted). Candidates are
    ordered by |Δt|, ties by earlier S1 time, then by position. K is the largest number of
    S1 acquisitions inside any window (0 when nothing pairs).
    """
    t2 = to_seconds(s2_times)
    t1 = to_seconds(s1_times)
    max_s = int(round(max_days * SECONDS_PER_DAY))
    order = np.argsort(t1, kind="stable")
    t1s = t1[order]
    lo = np.searchsorted(t1s, t2 - max_s, side="left")
    hi = np.searchsorted(t1s, t2 + max_s, side="right")
    k = int((hi - lo).max()) if t2.size else 0
    if k == 0:
        return np.full((t2.size, 0), -1, np.int64)
    cand = lo[:, None] + np.arange(k)[None, :]                  # (T2, K) sorted positions
    valid = cand < hi[:, None]
    cand_c = np.minimum(cand, max(t1s.size - 1, 0))
    dist = np.where(valid, np.abs(t1s[cand_c] - t2[:, None]), np.iinfo(np.int64).max)
    # Positions are already in time order, so a stable sort on |Δt| keeps the earlier on ties.
    rank = np.argsort(dist, axis=1, kind="stable")
    cand_sorted = np.take_along_axis(cand_c, rank, axis=1)
    valid_sorted = np.take_along_axis(valid, rank, axis=1)
    return np.where(valid_sorted, order[cand_sorted], -1).astype(np.int64)


def pair_s1(s2_times, s1_times, s1_valid: np.ndarray | None = None,
            max_days: float = bands.S1_PAIR_MAX_DAYS) -> np.ndarray:
    """Index of the paired S1 acquisition for each S2 date (and pixel); −1 where none.

    ``s1_valid`` (optional) is ``(T1, *S)``: whether VV and VH exist at that pixel; the result
    is then ``(T2, *S)``. Without it the result is ``(T2,)``.
    """
    cand = pair_candidates(s2_times, s1_times, max_days)          # (T2, K)
    t2n = cand.shape[0]
    if s1_valid is None:
        return cand[:, 0].copy() if cand.shape[1] else np.full(t2n, -1, np.int64)
    s1_valid = np.asarray(s1_valid, bool)
    spatial = s1_valid.shape[1:]
    out = np.full((t2n,) + spatial, -1, np.int64)
    if cand.shape[1] == 0 or s1_valid.shape[0] == 0:
        return out
    for j in range(cand.shape[1]):                                  # K is small (≈ 1–4)
        c = cand[:, j]
        ok = (c >= 0).reshape((t2n,) + (1,) * len(spatial)) & s1_valid[np.maximum(c, 0)]
        take = ok & (out < 0)
        out = np.where(take, c.reshape((t2n,) + (1,) * len(spatial)), out)
    return out


def paired_values(s1_values: np.ndarray, pair_index: np.ndarray) -> np.ndarray:
    """Gather S1 values ``(T1, 2, *S)`` at ``pair_index`` ``(T2,)`` or ``(T2, *S)`` → ``(T2, 2, *S)``.

    Unpaired dates (index −1) come back as NaN.
    """
    s1 = np.asarray(s1_values, np.float32)
    idx = np.asarray(pair_index, np.int64)
    t2n = idx.shape[0]
    spatial = s1.shape[2:]
    if s1.shape[0] == 0:
        return np.full((t2n, s1.shape[1]) + spatial, np.nan, np.float32)
    safe = np.maximum(idx, 0)
    if idx.ndim == 1:
        out = s1[safe]                                              # (T2, C, *S)
        missing = (idx < 0).reshape((t2n, 1) + (1,) * len(spatial))
    else:
        # Per-pixel indices: gather along time for each pixel.
        gather = np.broadcast_to(safe[:, None], (t2n, s1.shape[1]) + spatial)
        out = np.take_along_axis(s1, gather, axis=0)
        missing = (idx < 0)[:, None]
    return np.where(missing, np.float32(np.nan), out).astype(np.float32)


def pair_elements(candidates: np.ndarray, s1_values: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """`pair_s1` with per-pixel validity, for a flat list of (S2 date, pixel) observations.

    ``candidates`` ``(E, K)``: the `pair_candidates` row of each observation's S2 date;
    ``s1_values`` ``(T1, C, N)``; ``columns`` ``(E,)`` each observation's pixel in ``N``.
    Returns the index of the nearest candidate whose C values are all present (finite as
    float32) at that pixel, −1 where none: the same choice as `pair_s1`, looked up only
    where it is needed (the kept observations) instead of for every date and pixel.
    """
    cand = np.asarray(candidates, np.int64)
    cols = np.asarray(columns, np.int64)
    out = np.full(cand.shape[0], -1, np.int64)
    s1 = np.asarray(s1_values)
    if s1.shape[0] == 0:
        return out
    todo = np.arange(cand.shape[0])
    for j in range(cand.shape[1]):                                  # K is small (≈ 1–4)
        c = cand[todo, j]
        has = np.flatnonzero(c >= 0)
        ok = np.isfinite(np.asarray(s1[c[has], :, cols[todo[has]]], np.float32)).all(axis=1)
        out[todo[has[ok]]] = c[has[ok]]
        todo = todo[out[todo] < 0]
        if todo.size == 0:
            break
    return out
