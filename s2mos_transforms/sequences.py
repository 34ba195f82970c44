"""From one location's acquisitions to the model's sequences; the same code for points and pixels.

The chain (paper Sections 2.1–2.2): S2 masks (`masks.observation_masks`) → S1 pairing
(`pairing.pair_s1`) → date selection (sorted by date, at most ``bands.MAX_DATES``) →
sequences. `extract` and `gather_sequences` take a spatial part ``*S`` after the time
(and channel) axes, so map inference runs them on ``(T, C, H, W)`` / ``(T, C, P)`` pixel
stacks exactly as the dataset build runs them on one point's ``(T, C)`` arrays.

Which dates are kept when there are more than ``max_dates``: dates spread evenly over the
series by rank (``round(j · (n − 1) / (max_dates − 1))`` for j = 0 … max_dates − 1), so
the first and the last bare dates are always kept and every season and year stays
represented; keeping only the first 150 would drop the latest years. Each sequence (the
S1-paired one and the S2-only one) is selected on its own dates.
"""
from __future__ import annotations

import dataclasses
from typing import Any

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
