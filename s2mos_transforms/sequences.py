"""From one location's acquisitions to the model's sequences; the same code for points and pixels.

The chain (paper Sections 2.1–2.2): S2 masks (`masks.observation_masks`) → S1 pairing
(`pairing.pair_s1`) → date selection (sorted by date, at most ``bands.MAX_DATES``) →
sequences. `extract` and `gather_sequences` take a spatial part ``*S`` after the time
(and channel) axes and return dense arrays (the dataset build, one point's ``(T, C)``).
Map inference calls `block_sequences`: the same masks (`masks.element_masks`), pairing rule
and `select_ranks`, run only on the observations that survive each stage and packed straight
into ragged sequences; `tests/test_sequences_fast.py` holds it to the dense chain bit for bit.

Which dates are kept when there are more than ``max_dates``: dates spread evenly over the
series by rank (``round(j · (n − 1) / (max_dates − 1))`` for j = 0 … max_dates − 1), so
the first and the last bare dates are always kept and every season and year stays
represented; keeping only the first 150 would drop the latest years. Each sequence (the
S1-paired one and the S2-only one) is selected on its own dates.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import numpy as np

from s2mos_transforms import bands, masks, pairing


@dataclasses.dataclass(frozen=True)
class ExtractConfig:
    """Every knob of the per-location chain, defaults from the paper (`bands`)."""

    thresholds: masks.MaskThresholds = masks.MaskThresholds()
    s1_pair_max_days: float = bands.S1_PAIR_MAX_DAYS
    max_dates: int = bands.MAX_DATES

    def as_dict(self) -> dict[str, Any]:
        return {**self.thresholds.as_dict(), "s1_pair_max_days": self.s1_pair_max_days,
                "max_dates": self.max_dates}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "ExtractConfig":
        """The inverse of `as_dict` (a dataset's summary.json, a model's metadata); missing
        keys take the paper's defaults, unknown keys are an error."""
        values = dict(values)
        fields = {f.name for f in dataclasses.fields(masks.MaskThresholds)}
        unknown = set(values) - fields - {"s1_pair_max_days", "max_dates"}
        if unknown:
            raise ValueError(f"unknown extraction setting(s): {', '.join(sorted(unknown))}")
        thresholds = masks.MaskThresholds(**{k: v for k, v in values.items() if k in fields})
        rest = {k: values[k] for k in ("s1_pair_max_days", "max_dates") if k in values}
        return cls(thresholds=thresholds, **rest)


@dataclasses.dataclass
class Extraction:
    """One location's (or a pixel block's) filtered, paired observations, all dates kept.

    ``s2``: float32 ``(T2, 10, *S)`` reflectance; ``s1``: float32 ``(T2, 2, *S)`` VV, VH (dB)
    of the paired S1 acquisition, NaN where unpaired; ``kept``: bare-soil, non-outlier dates
    ``(T2, *S)``; ``paired``: kept dates that also have an S1 pair.
    """

    s2_times: np.ndarray          # int64 (T2,) seconds since epoch, ascending
    s2: np.ndarray
    s1: np.ndarray
    masks: masks.ObservationMasks
    pair_index: np.ndarray        # int64 (T2, *S) index into the S1 input, −1 where unpaired
    paired: np.ndarray

    @property
    def kept(self) -> np.ndarray:
        return self.masks.kept

    @property
    def s2s1(self) -> np.ndarray:
        """The 12 CNN channels per date ``(T2, 12, *S)``: S2 reflectance then VV, VH."""
        return np.concatenate([self.s2, self.s1], axis=1)

    def counts(self) -> dict[str, int]:
        return {**self.masks.counts(), "paired": int(np.count_nonzero(self.paired))}


def extract(s2_times, s2_dn: np.ndarray, scl: np.ndarray | None, scene_cloud_pct: np.ndarray | None,
            s1_times, s1_db: np.ndarray, config: ExtractConfig = ExtractConfig()) -> Extraction:
    """Masks and S1 pairing for one location ``(T, C)`` or many pixels ``(T, C, *S)``.

    s2_times ``(T2,)``; s2_dn ``(T2, 10, *S)`` L2A integers (or reflectance × 10 000 as
    float, NaN = missing); scl ``(T2, *S)`` or None; scene_cloud_pct ``(T2,)`` or None;
    s1_times ``(T1,)``; s1_db ``(T1, 2, *S)`` VV, VH in dB (NaN = missing). Dates are sorted
    here (stable), so callers may pass them in any order.
    """
    t2 = pairing.to_seconds(s2_times)
    order2 = np.argsort(t2, kind="stable")
    t2 = t2[order2]
    s2_dn = np.asarray(s2_dn, np.float32)[order2]
    scl = None if scl is None else np.asarray(scl)[order2]
    cloud = None if scene_cloud_pct is None else np.asarray(scene_cloud_pct, np.float64)[order2]
    m = masks.observation_masks(s2_dn, scl, cloud, config.thresholds)
    s2_refl = masks.to_reflectance(s2_dn)

    s1_db = np.asarray(s1_db, np.float32)
    t1 = pairing.to_seconds(s1_times)
    s1_valid = np.isfinite(s1_db).all(axis=1) if s1_db.size else np.zeros((t1.size,) + s1_db.shape[2:], bool)
    if s1_db.ndim == 2:                       # a point: one validity flag per date; drop invalid
        good = np.flatnonzero(s1_valid)
        idx_good = pairing.pair_s1(t2, t1[good], max_days=config.s1_pair_max_days)
        pair_index = np.where(idx_good >= 0, good[np.maximum(idx_good, 0)] if good.size else -1, -1)
    else:
        pair_index = pairing.pair_s1(t2, t1, s1_valid, max_days=config.s1_pair_max_days)
    s1_paired = pairing.paired_values(s1_db, pair_index)
    paired = m.kept & (pair_index >= 0)
    return Extraction(s2_times=t2, s2=s2_refl, s1=s1_paired, masks=m, pair_index=pair_index, paired=paired)


def select_ranks(n: np.ndarray, max_dates: int) -> np.ndarray:
    """Ranks (0-based, among a location's kept dates) of the dates to keep: ``(max_dates, *S)``.

    All of them when n ≤ max_dates (−1 pads the rest), otherwise ``max_dates`` ranks
    spread evenly from the first to the last date.
    """
    n = np.asarray(n, np.int64)
    j = np.arange(max_dates, dtype=np.int64).reshape((max_dates,) + (1,) * n.ndim)
    if max_dates > 1:
        spread = np.floor(j * (np.maximum(n, 1) - 1) / (max_dates - 1) + 0.5).astype(np.int64)
    else:
        spread = np.zeros_like(j)
    return np.where(n > max_dates, spread, np.where(j < n, j, -1))


def thin_index(n: int, max_dates: int = bands.MAX_DATES) -> np.ndarray:
    """Positions kept from one sequence of ``n`` dates (1-D int64, ascending, no padding).

    All ``n`` when n ≤ max_dates, otherwise the ``max_dates`` ranks of `select_ranks` (the one
    definition of the rule); the trainer (`trainer.data.thin_index`) and the map engines use it.
    """
    ranks = select_ranks(np.asarray(int(n), np.int64), max_dates)
    return ranks[ranks >= 0]


def select_dates(keep: np.ndarray, max_dates: int = bands.MAX_DATES) -> tuple[np.ndarray, np.ndarray]:
    """Time indices of the dates to keep, in date order: ``(max_dates, *S)`` int64, −1 padded.

    ``keep`` is ``(T, *S)`` on dates sorted ascending. Returns (indices, lengths ``(*S)``).
    """
    keep = np.asarray(keep, bool)
    n = keep.sum(axis=0)
    ranks = select_ranks(n, max_dates)                                   # (M, *S)
    # Time positions of the kept dates first (in time order), then the others.
    order = np.argsort(~keep, axis=0, kind="stable")                    # (T, *S)
    if keep.shape[0] == 0:
        return np.full((max_dates,) + keep.shape[1:], -1, np.int64), n.astype(np.int64)
    idx = np.take_along_axis(order, np.maximum(ranks, 0), axis=0)     # ranks < n ≤ T
    return np.where(ranks >= 0, idx, -1).astype(np.int64), np.minimum(n, max_dates).astype(np.int64)


def gather_sequences(values: np.ndarray, keep: np.ndarray, max_dates: int = bands.MAX_DATES,
                     pad_value: float = np.nan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pack the kept dates of ``values`` ``(T, C, *S)`` into ``(max_dates, C, *S)``.

    Returns (sequences, time indices ``(max_dates, *S)`` with −1 on padding, lengths
    ``(*S)``). Padding is at the end, filled with ``pad_value``.
    """
    values = np.asarray(values, np.float32)
    idx, lengths = select_dates(keep, max_dates)
    gather = np.broadcast_to(np.maximum(idx, 0)[:, None], (max_dates, values.shape[1]) + values.shape[2:])
    if values.shape[0] == 0:
        seq = np.full(gather.shape, pad_value, np.float32)
    else:
        seq = np.take_along_axis(values, gather, axis=0)
        seq = np.where((idx >= 0)[:, None], seq, np.float32(pad_value)).astype(np.float32)
    return seq, idx, lengths


def _spatial(values, t: int, n: int, what: str) -> np.ndarray:
    """A per-date ``(T,)`` or per-pixel ``(T, *S)`` array as ``(T,)`` when it does not vary in
    space (also a broadcast view, stride 0) or else a ``(T, N)`` view, in its own dtype."""
    a = np.asarray(values)
    if a.ndim == 1:
        return a
    if a.shape[0] != t or int(np.prod(a.shape[1:], dtype=np.int64)) != n:
        raise ValueError(f"{what} must be shaped (T,) or (T, *S) like the S2 stack, got {a.shape}")
    if n and all(st == 0 for st in a.strides[1:]):
        return a.reshape(t, n)[:, 0]
    return a.reshape(t, n)


SECONDS_PER_DAY = 86400.0


def days_since_epoch(seconds) -> np.ndarray:
    """The ``day`` channel of ``bands.CHANNELS_SERIES``: float32 days since 1970-01-01 UTC of int64
    seconds since the epoch (one definition: the trainer's series rows and the map's agree bit for bit)."""
    return (np.asarray(seconds, np.int64) / SECONDS_PER_DAY).astype(np.float32)


class BlockSequences(NamedTuple):
    """Ragged sequences of a pixel block (see `block_sequences`)."""

    lengths: np.ndarray           # int32 (P,)
    values: np.ndarray            # float32 (sum(lengths), C), pixel-major, dates ascending
    times: np.ndarray             # int64 (sum(lengths),) the date of each row, seconds since epoch


def block_sequences(s2_times, s2_dn: np.ndarray, scl: np.ndarray | None, scene_cloud_pct: np.ndarray | None,
                    s1_times, s1_db: np.ndarray, pixels: np.ndarray | None = None, with_s1: bool = True,
                    config: ExtractConfig = ExtractConfig(), series: bool = False) -> BlockSequences:
    """Ragged model sequences of some pixels of a stack: what `extract` → `select_dates` →
    a gather of ``s2s1`` (``with_s1``) or ``s2`` give, value for value, without the dense arrays.

    Inputs as `extract` with a spatial part ``*S`` (``scene_cloud_pct`` ``(T2,)`` or
    ``(T2, *S)``); ``pixels`` are flat indices into ``*S`` (default all). Only the
    observations that pass the scene and SCL filters are gathered and converted, the spectral
    tests and the 3σ statistics run on those rows (`masks.element_masks`), and S1 pairs are
    looked up for the kept rows only (`pairing.pair_elements`). The values have 12 channels
    (S2 reflectance, VV, VH) with ``with_s1``, else 10. ``series`` (overrides ``with_s1``): every
    kept date with ``bands.CHANNELS_SERIES`` — reflectance, VV, VH of its S1 pair (NaN where it has
    none) and the day (`days_since_epoch`) — what `trainer.series.raw_sequences` builds from a
    point's ``s2``, ``s2s1`` and dates.
    """
    th = config.thresholds
    t2 = pairing.to_seconds(s2_times)
    order2 = np.argsort(t2, kind="stable")                      # sorted position → input row
    s2_dn = np.asarray(s2_dn)
    nt, n_all = s2_dn.shape[0], int(np.prod(s2_dn.shape[2:], dtype=np.int64))
    dn = s2_dn.reshape(nt, s2_dn.shape[1], n_all)
    px = np.arange(n_all, dtype=np.int64) if pixels is None else np.asarray(pixels, np.int64)
    rows = order2
    cloud = None if scene_cloud_pct is None else _spatial(scene_cloud_pct, nt, n_all, "scene_cloud_pct")
    if cloud is not None and cloud.ndim == 1:                   # per granule: drop whole dates first
        rows = order2[masks.scene_mask(cloud[order2], th.scene_cloud_max)]
    ok = np.ones((rows.size, px.size), bool)
    if cloud is not None and cloud.ndim == 2:
        ok &= masks.scene_mask(np.take(cloud, px, axis=1)[rows], th.scene_cloud_max)
    if scl is not None:
        scl = _spatial(scl, nt, n_all, "scl")
        ok &= masks.scl_mask(scl[rows][:, None] if scl.ndim == 1 else np.take(scl, px, axis=1)[rows])
    # Candidates in date-major order (memory order of the stack); within a pixel that is date
    # order, all the 3σ sums need. Pixel-major order only for the few rows finally kept.
    ti, pi = np.nonzero(ok)
    r = rows[ti]
    refl = masks.to_reflectance(dn[r, :, px[pi]])                # (K, 10) float32
    _, _, kept = masks.element_masks(refl, pi, px.size, th)
    pi, r, values = pi[kept], r[kept], refl[kept]
    if with_s1 or series:
        s1 = np.asarray(s1_db)
        s1 = s1.reshape(s1.shape[:2] + (int(np.prod(s1.shape[2:], dtype=np.int64)),))
        cand = pairing.pair_candidates(t2, s1_times, config.s1_pair_max_days)
        pair = pairing.pair_elements(cand[r], s1, px[pi])
        has = pair >= 0
        if series:                                              # every kept date, VV/VH where paired
            radar = np.full((pi.size, 2), np.nan, np.float32)
            if has.any():
                radar[has] = np.asarray(s1[pair[has], :, px[pi[has]]], np.float32)
            values = np.concatenate([values, radar, days_since_epoch(t2[r])[:, None]], axis=1)
        else:
            pi, r, pair, values = pi[has], r[has], pair[has], values[has]
            values = np.concatenate([values, np.asarray(s1[pair, :, px[pi]], np.float32)], axis=1)
    by_pixel = np.argsort(pi, kind="stable")                    # pixel-major, dates ascending
    pi, r, values = pi[by_pixel], r[by_pixel], values[by_pixel]
    n = np.bincount(pi, minlength=px.size)
    if px.size and n.max() > config.max_dates:                  # thin long series: `select_ranks`
        over = np.flatnonzero(n > config.max_dates)
        starts = np.cumsum(n) - n
        take = n[pi] <= config.max_dates
        take[(starts[over][None, :] + select_ranks(n[over], config.max_dates)).ravel()] = True
        pi, r, values = pi[take], r[take], values[take]
    return BlockSequences(np.minimum(n, config.max_dates).astype(np.int32),
                          np.ascontiguousarray(values, np.float32), t2[r])


def point_record(point_id: str, lat: float, lon: float, clay: float, ex: Extraction,
                 max_dates: int = bands.MAX_DATES) -> dict[str, Any]:
    """One point's dataset record (a dict with every feature of `schema.FEATURES`)."""
    if ex.s2.ndim != 2:
        raise ValueError("point_record takes one location's extraction, shaped (T, C)")
    s2s1_seq, s2s1_idx, n_s2s1 = gather_sequences(ex.s2s1, ex.paired, max_dates)
    s2_seq, s2_idx, n_s2 = gather_sequences(ex.s2, ex.kept, max_dates)
    n_s2s1, n_s2 = int(n_s2s1), int(n_s2)
    return {
        "point_id": str(point_id),
        "lat": float(lat),
        "lon": float(lon),
        "clay": float(clay),
        "s2s1_length": n_s2s1,
        "s2s1_dates": ex.s2_times[s2s1_idx[:n_s2s1]].astype(np.int64),
        "s2s1": s2s1_seq[:n_s2s1].astype(np.float32),
        "s2_length": n_s2,
        "s2_dates": ex.s2_times[s2_idx[:n_s2]].astype(np.int64),
        "s2": s2_seq[:n_s2].astype(np.float32),
    }


@dataclasses.dataclass
class PointObservations:
    """One point's acquisitions as arrays (the inputs of `extract`)."""

    s2_times: np.ndarray              # int64 (T2,) seconds since epoch
    s2_dn: np.ndarray                 # float32 (T2, 10), NaN where missing
    scl: np.ndarray | None            # float64 (T2,), NaN where unknown; None if no SCL at all
    scene_cloud_pct: np.ndarray | None
    s1_times: np.ndarray              # int64 (T1,)
    s1_db: np.ndarray                 # float32 (T1, 2)

    def extract(self, config: ExtractConfig = ExtractConfig()) -> Extraction:
        return extract(self.s2_times, self.s2_dn, self.scl, self.scene_cloud_pct,
                       self.s1_times, self.s1_db, config)


def _column(df, name: str, dtype) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan, dtype)
    return df[name].to_numpy(dtype=dtype, na_value=np.nan)


def _utc_seconds(values) -> np.ndarray:
    """A datetime column (naive = UTC, or tz-aware) → int64 seconds since the epoch."""
    import pandas as pd

    t = pd.to_datetime(values, utc=True)
    return t.dt.tz_localize(None).to_numpy(dtype="datetime64[s]").astype(np.int64)


def point_observations(obs) -> dict[str, PointObservations]:
    """Split a long observations DataFrame (`bands.OBS_COLUMNS`) into arrays per point_id."""
    if len(obs) == 0:
        return {}
    ids = obs["point_id"].astype(str).to_numpy(dtype=object)
    sensor = obs["sensor"].astype(str).to_numpy(dtype=object)
    times = _utc_seconds(obs["datetime"])
    s2_dn = np.stack([_column(obs, b, np.float32) for b in bands.S2_BANDS], axis=1)
    s1_db = np.stack([_column(obs, b, np.float32) for b in bands.S1_BANDS], axis=1)
    scl = _column(obs, "SCL", np.float64)
    cloud = _column(obs, "scene_cloud_pct", np.float64)
    order = np.argsort(ids, kind="stable")
    ids_sorted = ids[order]
    starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
    stops = np.r_[starts[1:], len(ids_sorted)]
    out: dict[str, PointObservations] = {}
    for a, b in zip(starts, stops):
        rows = order[a:b]
        is_s2 = sensor[rows] == bands.SENSOR_S2
        r2, r1 = rows[is_s2], rows[~is_s2]
        scl_p = scl[r2]
        cloud_p = cloud[r2]
        out[str(ids_sorted[a])] = PointObservations(
            s2_times=times[r2], s2_dn=s2_dn[r2],
            scl=None if np.isnan(scl_p).all() else scl_p,
            scene_cloud_pct=None if np.isnan(cloud_p).all() else cloud_p,
            s1_times=times[r1], s1_db=s1_db[r1])
    return out
