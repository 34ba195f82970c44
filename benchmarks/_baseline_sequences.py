"""Reference copy of the masks → pairing → sequences chain as it was before the element-wise
rewrite (commit 0b5bd49): dense ``(T, C, P)`` float64 masks, S1 pairing for every date and
pixel, dense ``s2s1`` then a gather.

Kept for two jobs only: `bench_map.py` times it beside the current code on the same tile
stacks (the speed-up is measured in one run), and `tests/test_sequences_fast.py` checks the
current code against it element for element. Nothing in the library imports it.
"""
from __future__ import annotations

import numpy as np

from s2mos_transforms import bands

_B = {name: i for i, name in enumerate(bands.S2_BANDS)}
SECONDS_PER_DAY = 86_400


# ---- masks.py -------------------------------------------------------------------------------

def to_reflectance(dn):
    return (np.asarray(dn, np.float32) / np.float32(bands.S2_SCALE)).astype(np.float32)


def _band(s2, name):
    return np.asarray(s2[:, _B[name]], np.float64)


def normalized_difference(a, b):
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, (a - b) / total, np.nan)


def _expand_time(values, like_ndim):
    values = np.asarray(values)
    return values.reshape(values.shape + (1,) * (like_ndim - values.ndim))


def scene_mask(scene_cloud_pct, max_pct):
    if scene_cloud_pct is None:
        return None
    pct = np.asarray(scene_cloud_pct, np.float64)
    return np.isnan(pct) | (pct < max_pct)


def scl_mask(scl):
    if scl is None:
        return None
    scl = np.asarray(scl, np.float64)
    return ~np.isin(scl, np.asarray(bands.SCL_MASKED, np.float64))


def bare_soil_mask(s2, ndvi_max, nbr2_max, band_order=True):
    s2 = np.asarray(s2)
    with np.errstate(invalid="ignore"):
        bare = ((normalized_difference(_band(s2, "B8"), _band(s2, "B4")) < ndvi_max)
                & (normalized_difference(_band(s2, "B11"), _band(s2, "B12")) < nbr2_max))
        if band_order:
            b2, b3, b4 = _band(s2, "B2"), _band(s2, "B3"), _band(s2, "B4")
            bare &= (b3 > b2) & (b4 > b3)
        return bare


def outlier_mask(values, keep, sigma):
    x = np.asarray(values, np.float64)
    keep = np.asarray(keep, bool)
    w = keep[:, None]
    n = w.sum(axis=0)
    safe_n = np.maximum(n, 1)
    xz = np.where(w, x, 0.0)
    mean = xz.sum(axis=0) / safe_n
    var = (np.where(w, (x - mean) ** 2, 0.0)).sum(axis=0) / safe_n
    sd = np.sqrt(var)
    with np.errstate(invalid="ignore"):
        inlier = (np.abs(x - mean) <= sigma * sd) | (sd == 0)
    return keep & inlier.all(axis=1)


def observation_masks(s2, scl, scene_cloud_pct, th):
    """(acquired, scene, clear, bare, kept), each (T, *S)."""
    s2 = np.asarray(s2)
    refl = to_reflectance(s2)
    acquired = np.isfinite(np.asarray(refl, np.float64)).all(axis=1)
    spatial_ndim = refl.ndim - 1
    scene = scene_mask(scene_cloud_pct, th.scene_cloud_max)
    scene_ok = acquired if scene is None else acquired & _expand_time(scene, spatial_ndim)
    clear_px = scl_mask(scl)
    clear = scene_ok if clear_px is None else scene_ok & clear_px
    bare = clear & bare_soil_mask(refl, th.ndvi_max, th.nbr2_max, th.band_order)
    kept = outlier_mask(refl, bare, th.outlier_sigma)
    return acquired, np.broadcast_to(scene_ok, acquired.shape).copy(), clear, bare, kept


# ---- pairing.py -----------------------------------------------------------------------------

def to_seconds(times):
    arr = np.asarray(times)
    if np.issubdtype(arr.dtype, np.datetime64):
        return arr.astype("datetime64[s]").astype(np.int64)
    if arr.dtype == object:
        return np.asarray(arr.astype("datetime64[s]"), np.int64)
    return arr.astype(np.int64)


def pair_candidates(s2_times, s1_times, max_days):
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
    cand = lo[:, None] + np.arange(k)[None, :]
    valid = cand < hi[:, None]
    cand_c = np.minimum(cand, max(t1s.size - 1, 0))
    dist = np.where(valid, np.abs(t1s[cand_c] - t2[:, None]), np.iinfo(np.int64).max)
    rank = np.argsort(dist, axis=1, kind="stable")
    cand_sorted = np.take_along_axis(cand_c, rank, axis=1)
    valid_sorted = np.take_along_axis(valid, rank, axis=1)
    return np.where(valid_sorted, order[cand_sorted], -1).astype(np.int64)


def pair_s1(s2_times, s1_times, s1_valid=None, max_days=bands.S1_PAIR_MAX_DAYS):
    cand = pair_candidates(s2_times, s1_times, max_days)
    t2n = cand.shape[0]
    if s1_valid is None:
        return cand[:, 0].copy() if cand.shape[1] else np.full(t2n, -1, np.int64)
    s1_valid = np.asarray(s1_valid, bool)
    spatial = s1_valid.shape[1:]
    out = np.full((t2n,) + spatial, -1, np.int64)
    if cand.shape[1] == 0 or s1_valid.shape[0] == 0:
        return out
    for j in range(cand.shape[1]):
        c = cand[:, j]
        ok = (c >= 0).reshape((t2n,) + (1,) * len(spatial)) & s1_valid[np.maximum(c, 0)]
        take = ok & (out < 0)
        out = np.where(take, c.reshape((t2n,) + (1,) * len(spatial)), out)
    return out


def paired_values(s1_values, pair_index):
    s1 = np.asarray(s1_values, np.float32)
    idx = np.asarray(pair_index, np.int64)
    t2n = idx.shape[0]
    spatial = s1.shape[2:]
    if s1.shape[0] == 0:
        return np.full((t2n, s1.shape[1]) + spatial, np.nan, np.float32)
    safe = np.maximum(idx, 0)
    if idx.ndim == 1:
        out = s1[safe]
        missing = (idx < 0).reshape((t2n, 1) + (1,) * len(spatial))
    else:
        gather = np.broadcast_to(safe[:, None], (t2n, s1.shape[1]) + spatial)
        out = np.take_along_axis(s1, gather, axis=0)
        missing = (idx < 0)[:, None]
    return np.where(missing, np.float32(np.nan), out).astype(np.float32)


# ---- sequences.py ---------------------------------------------------------------------------

def extract(s2_times, s2_dn, scl, scene_cloud_pct, s1_times, s1_db, config):
    """dict: s2_times, s2, s1, acquired/scene/clear/bare/kept, pair_index, paired, s2s1."""
    t2 = to_seconds(s2_times)
    order2 = np.argsort(t2, kind="stable")
    t2 = t2[order2]
    s2_dn = np.asarray(s2_dn, np.float32)[order2]
    scl = None if scl is None else np.asarray(scl)[order2]
    cloud = None if scene_cloud_pct is None else np.asarray(scene_cloud_pct, np.float64)[order2]
    acquired, scene, clear, bare, kept = observation_masks(s2_dn, scl, cloud, config.thresholds)
    s2_refl = to_reflectance(s2_dn)
    s1_db = np.asarray(s1_db, np.float32)
    t1 = to_seconds(s1_times)
    s1_valid = np.isfinite(s1_db).all(axis=1) if s1_db.size else np.zeros((t1.size,) + s1_db.shape[2:], bool)
    if s1_db.ndim == 2:
        good = np.flatnonzero(s1_valid)
        idx_good = pair_s1(t2, t1[good], max_days=config.s1_pair_max_days)
        pair_index = np.where(idx_good >= 0, good[np.maximum(idx_good, 0)] if good.size else -1, -1)
    else:
        pair_index = pair_s1(t2, t1, s1_valid, max_days=config.s1_pair_max_days)
    s1_paired = paired_values(s1_db, pair_index)
    return {"s2_times": t2, "s2": s2_refl, "s1": s1_paired, "acquired": acquired, "scene": scene,
            "clear": clear, "bare": bare, "kept": kept, "pair_index": pair_index,
            "paired": kept & (pair_index >= 0), "s2s1": np.concatenate([s2_refl, s1_paired], axis=1)}


def select_ranks(n, max_dates):
    n = np.asarray(n, np.int64)
    j = np.arange(max_dates, dtype=np.int64).reshape((max_dates,) + (1,) * n.ndim)
    if max_dates > 1:
        spread = np.floor(j * (np.maximum(n, 1) - 1) / (max_dates - 1) + 0.5).astype(np.int64)
    else:
        spread = np.zeros_like(j)
    return np.where(n > max_dates, spread, np.where(j < n, j, -1))


def select_dates(keep, max_dates):
    keep = np.asarray(keep, bool)
    n = keep.sum(axis=0)
    ranks = select_ranks(n, max_dates)
    order = np.argsort(~keep, axis=0, kind="stable")
    if keep.shape[0] == 0:
        return np.full((max_dates,) + keep.shape[1:], -1, np.int64), n.astype(np.int64)
    idx = np.take_along_axis(order, np.maximum(ranks, 0), axis=0)
    return np.where(ranks >= 0, idx, -1).astype(np.int64), np.minimum(n, max_dates).astype(np.int64)


def gather_sequences(values, keep, max_dates, pad_value=np.nan):
    values = np.asarray(values, np.float32)
    idx, lengths = select_dates(keep, max_dates)
    gather = np.broadcast_to(np.maximum(idx, 0)[:, None], (max_dates, values.shape[1]) + values.shape[2:])
    if values.shape[0] == 0:
        seq = np.full(gather.shape, pad_value, np.float32)
    else:
        seq = np.take_along_axis(values, gather, axis=0)
        seq = np.where((idx >= 0)[:, None], seq, np.float32(pad_value)).astype(np.float32)
    return seq, idx, lengths


def point_record(ex, max_dates):
    """The sequence fields of `sequences.point_record` (ids and coordinates left out)."""
    s2s1_seq, s2s1_idx, n_s2s1 = gather_sequences(ex["s2s1"], ex["paired"], max_dates)
    s2_seq, s2_idx, n_s2 = gather_sequences(ex["s2"], ex["kept"], max_dates)
    n_s2s1, n_s2 = int(n_s2s1), int(n_s2)
    return {"s2s1_length": n_s2s1, "s2s1_dates": ex["s2_times"][s2s1_idx[:n_s2s1]].astype(np.int64),
            "s2s1": s2s1_seq[:n_s2s1].astype(np.float32), "s2_length": n_s2,
            "s2_dates": ex["s2_times"][s2_idx[:n_s2]].astype(np.int64), "s2": s2_seq[:n_s2].astype(np.float32)}


# ---- maps/pixels.py -------------------------------------------------------------------------

def pixel_sequences(stack, pixels, with_s1, config, block=4096):
    """(lengths int32 (P,), values float32 (sum, C)) of the given flat pixels of an ImageStack."""
    h, w = stack.s2.shape[-2:]
    pixels = np.arange(h * w, dtype=np.int64) if pixels is None else np.asarray(pixels, np.int64)
    s2 = stack.s2.reshape(stack.s2.shape[:2] + (h * w,))
    scl = None if stack.scl is None else stack.scl.reshape(stack.scl.shape[:1] + (h * w,))
    s1 = stack.s1.reshape(stack.s1.shape[:2] + (h * w,))
    cloud = np.asarray(stack.scene_cloud_pct)            # (T2,), or per pixel (T2, H, W) since the
    if cloud.ndim > 1:                                   # tile contract gained it: gathered per block
        cloud = cloud.reshape(cloud.shape[:1] + (h * w,))
    lengths, values = [], []
    for start in range(0, pixels.size, block):
        px = pixels[start:start + block]
        ex = extract(stack.s2_times, s2[..., px], None if scl is None else scl[..., px],
                     cloud if cloud.ndim == 1 else cloud[..., px], stack.s1_times, s1[..., px], config)
        data, keep = (ex["s2s1"], ex["paired"]) if with_s1 else (ex["s2"], ex["kept"])
        idx, n = select_dates(keep, config.max_dates)
        lengths.append(n.astype(np.int32))
        p_idx, j = np.nonzero(idx.T >= 0)
        t = idx.T[p_idx, j]
        values.append(np.ascontiguousarray(data[t, :, p_idx], dtype=np.float32))
    n_ch = 12 if with_s1 else 10
    if not lengths:
        return np.zeros(0, np.int32), np.zeros((0, n_ch), np.float32)
    return np.concatenate(lengths), np.concatenate(values)
