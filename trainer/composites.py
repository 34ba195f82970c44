"""Temporal composites of the bare series: the features of the strong tree baselines
(``rf_strong``, ``qrf_strong``).

Practitioners' baselines for soil properties from Sentinel-2 are random forests on temporal
composites of the bare-soil dates, not on a single median composite: SCMaP (Rogge et al. 2018,
"Mapping of NMC/bare soil composites", Remote Sens. Environ. 205) builds per-pixel statistics
over every bare observation; GEOS3 (Demattê et al. 2018, Remote Sens. Environ. 212) a
temporal bare-soil composite with the bare-date frequency. The features, per point:

  * per-band temporal quantiles (10/25/50/75/90 %) of the bare S2 dates (the bright, dry
    end of the distribution carries less moisture darkening than the median);
  * per-date index composites (median and inter-quartile range over the dates):
      - ``ln_b12_b11`` = ln(B12 / B11): the 2.2 µm Al-OH absorption of clay minerals relative
        to the 1.6 µm shoulder (the SWIR clay index, e.g. Gomez et al. 2019; Castaldi et al.
        2019 use B11/B12 on S2 bare soils);
      - ``nbr2`` (B11 − B12)/(B11 + B12) and ``ndvi`` (B8 − B4)/(B8 + B4), the paper's bare-soil
        tests (`s2mos_transforms.masks`, reused, not rewritten): residue and green cover;
      - ``ln_b11_b8a`` = ln(B11 / B8A): the SWIR/NIR ratio, which falls with surface moisture;
  * the number of bare dates, and the season of bareness (mean sine/cosine of the day of year:
    spring- vs autumn-sown fields);
  * S1 statistics over the S1-paired dates (10/50/90 % quantiles and standard deviation of VV,
    VH, VV − VH in dB) and the number of paired dates; NaN where a point has no paired date;
  * lat, lon (degrees) with ``use_coords``.

Every value is raw (reflectance, dB, degrees): trees split on thresholds and are invariant to
monotone rescaling, so no normalisation is applied (`stats` is accepted for the shared
`trainer.inputs.prepare` signature and unused). Missing values stay NaN: scikit-learn's random
forests (≥ 1.4) learn at each split which side NaN goes to. Quantiles are NumPy's default
(linear interpolation, `np.quantile(..., method="linear")`) over a point's finite values.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from s2mos_transforms import bands, masks

QUANTILES: tuple[float, ...] = (0.10, 0.25, 0.50, 0.75, 0.90)     # per-band temporal quantiles
S1_QUANTILES: tuple[float, ...] = (0.10, 0.50, 0.90)
_B = {name: i for i, name in enumerate(bands.S2_BANDS)}
_CHUNK = 1024          # points sorted at once (bounds the padded array's memory)


def _log_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log(np.asarray(num, np.float64) / np.asarray(den, np.float64))
    return np.where(np.isfinite(out), out, np.nan)


# per-date indices of a (R, 10) reflectance array → (R,); the one definition of each index
INDICES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ln_b12_b11": lambda s2: _log_ratio(s2[:, _B["B12"]], s2[:, _B["B11"]]),
    "nbr2": masks.nbr2,
    "ndvi": masks.ndvi,
    "ln_b11_b8a": lambda s2: _log_ratio(s2[:, _B["B11"]], s2[:, _B["B8A"]]),
}
S1_CHANNELS: tuple[str, ...] = bands.S1_BANDS + ("VV_minus_VH",)


def _pct(q: float) -> str:
    return f"q{int(round(q * 100)):02d}"


def feature_names(use_coords: bool) -> list[str]:
    """Column names of `strong_features`, in order."""
    names = [f"{b}_{_pct(q)}" for b in bands.S2_BANDS for q in QUANTILES]
    names += [f"{i}_{stat}" for i in INDICES for stat in ("median", "iqr")]
    names += ["n_bare", "doy_sin_mean", "doy_cos_mean"]
    names += [f"{c}_{stat}" for c in S1_CHANNELS for stat in [_pct(q) for q in S1_QUANTILES] + ["std"]]
    names += ["n_s1_paired"]
    return names + (["lat", "lon"] if use_coords else [])


def group_quantiles(seqs: list[np.ndarray], qs: tuple[float, ...]) -> np.ndarray:
    """Quantiles over each point's rows, NaN ignored: (len(qs), N, C); NaN where a point has none.

    Equal to ``np.nanquantile(seq, qs, axis=0)`` per point (linear interpolation), computed by
    sorting NaN-padded chunks of points along the date axis (NaN sorts last).
    """
    n = len(seqs)
    n_ch = seqs[0].shape[1] if n else 0
    out = np.full((len(qs), n, n_ch), np.nan)
    q = np.asarray(qs, np.float64)[:, None, None]
    for start in range(0, n, _CHUNK):
        part = seqs[start:start + _CHUNK]
        longest = max([len(s) for s in part] + [1])
        pad = np.full((len(part), longest, n_ch), np.nan)
        for i, s in enumerate(part):
            pad[i, :len(s)] = s
        pad.sort(axis=1)
        count = np.isfinite(pad).sum(1)                               # (P, C)
        h = q * np.maximum(count - 1, 0)[None]                        # (Q, P, C)
        lo = np.floor(h).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(count - 1, 0)[None])
        rows = np.broadcast_to(pad[None], (len(qs),) + pad.shape)
        v_lo = np.take_along_axis(rows, lo[:, :, None, :], 2)[:, :, 0]
        v_hi = np.take_along_axis(rows, hi[:, :, None, :], 2)[:, :, 0]
        val = v_lo + (h - lo) * (v_hi - v_lo)
        out[:, start:start + len(part)] = np.where(count[None] > 0, val, np.nan)
    return out


def group_std(seqs: list[np.ndarray], n_ch: int) -> np.ndarray:
    """Population standard deviation over each point's finite rows, (N, C); NaN where none."""
    lengths = np.asarray([len(s) for s in seqs], np.int64)
    if not lengths.sum():
        return np.full((len(seqs), n_ch), np.nan)
    rows = np.concatenate([np.asarray(s, np.float64).reshape(-1, n_ch) for s in seqs])
    owner = np.repeat(np.arange(len(seqs)), lengths)
    ok = np.isfinite(rows)
    out = np.empty((len(seqs), n_ch))
    for c in range(n_ch):
        w = ok[:, c]
        cnt = np.bincount(owner[w], minlength=len(seqs))
        s1 = np.bincount(owner[w], rows[w, c], minlength=len(seqs))
        mean = s1 / np.maximum(cnt, 1)
        dev = np.bincount(owner[w], (rows[w, c] - mean[owner[w]]) ** 2, minlength=len(seqs))
        out[:, c] = np.where(cnt > 0, np.sqrt(dev / np.maximum(cnt, 1)), np.nan)
    return out


def per_date_s2(s2: np.ndarray) -> np.ndarray:
    """One bare date's values: the 10 bands then every index of `INDICES`, (R, 10 + n_indices)."""
    s2 = np.asarray(s2, np.float64).reshape(-1, len(bands.S2_BANDS))
    return np.concatenate([s2] + [np.asarray(f(s2), np.float64).reshape(-1, 1) for f in INDICES.values()], 1)


def per_date_s1(s2s1: np.ndarray) -> np.ndarray:
    """VV, VH, VV − VH (dB) of the paired dates, (R', 3)."""
    s2s1 = np.asarray(s2s1, np.float64).reshape(-1, len(bands.CHANNELS_S2S1))
    vv, vh = s2s1[:, len(bands.S2_BANDS)], s2s1[:, len(bands.S2_BANDS) + 1]
    return np.stack([vv, vh, vv - vh], 1)


def season(dates: list[np.ndarray] | None, n: int) -> np.ndarray:
    """Mean sine and cosine of the day of year of each point's bare dates, (N, 2); NaN if none."""
    if not dates:
        return np.full((n, 2), np.nan)
    lengths = np.asarray([len(d) for d in dates], np.int64)
    if not lengths.sum():
        return np.full((n, 2), np.nan)
    secs = np.concatenate(dates).astype("datetime64[s]")
    doy = (secs.astype("datetime64[D]") - secs.astype("datetime64[Y]")).astype(np.float64)
    angle = 2.0 * np.pi * doy / 365.25
    owner = np.repeat(np.arange(n), lengths)
    cnt = np.maximum(lengths, 1)
    out = np.stack([np.bincount(owner, np.sin(angle), minlength=n) / cnt,
                    np.bincount(owner, np.cos(angle), minlength=n) / cnt], 1)
    return np.where((lengths > 0)[:, None], out, np.nan)


def s2_composites(s2_rows: list[np.ndarray]) -> np.ndarray:
    """(N, 10·5 + 2·n_indices + 1): the per-band quantiles, the index medians and IQRs and the
    number of bare dates of each point's bare S2 rows (`feature_names` order, before the season)."""
    n = len(s2_rows)
    n_idx, n_b = len(INDICES), len(bands.S2_BANDS)
    s2 = [per_date_s2(s) for s in s2_rows]
    qv = group_quantiles(s2, QUANTILES) if n else np.full((len(QUANTILES), 0, n_b + n_idx), np.nan)
    band_q = np.transpose(qv[:, :, :n_b], (1, 2, 0)).reshape(n, -1)        # band-major, then quantile
    iq = {q: k for k, q in enumerate(QUANTILES)}
    idx_median, idx_iqr = qv[iq[0.50], :, n_b:], qv[iq[0.75], :, n_b:] - qv[iq[0.25], :, n_b:]
    index_stats = np.stack([idx_median, idx_iqr], 2).reshape(n, -1)         # index-major, then stat
    n_bare = np.asarray([len(s) for s in s2], np.float64)[:, None]
    return np.concatenate([band_q, index_stats, n_bare], 1)


def series_composites(values: np.ndarray, lengths: np.ndarray, coords: np.ndarray | None = None) -> np.ndarray:
    """(P, 61 [+2]) float32: the S2 temporal composites of whole-series rows (``bands.CHANNELS_SERIES``,
    ragged: (ΣL, 13) and lengths) — `s2_composites`, the season from the ``day`` channel, + lat, lon.

    The S2 columns of `strong_features` computed from the rows the whole-series model reads, so
    the trainer (on its calibration rows) and predict-map (on a tile's pixel rows) share one
    definition; the AOA of the whole-series model lives in this space (`trainer.trust`)."""
    n_b = len(bands.S2_BANDS)
    values = np.asarray(values, np.float64).reshape(-1, len(bands.CHANNELS_SERIES))
    lengths = np.asarray(lengths, np.int64)
    rows = np.split(values, np.cumsum(lengths)[:-1]) if lengths.size else []
    day = [r[:, -1] for r in rows]
    secs = [np.round(d * 86400.0).astype(np.int64) for d in day]
    cols = [s2_composites([r[:, :n_b] for r in rows]), season(secs, len(rows))]
    if coords is not None:
        cols.append(np.asarray(coords, np.float64).reshape(-1, 2))
    return np.concatenate(cols, 1).astype(np.float32)


def series_composite_names(use_coords: bool) -> list[str]:
    """Column names of `series_composites`: `feature_names` without the S1 columns."""
    return [f for f in feature_names(use_coords) if not f.startswith(("VV", "VH")) and f != "n_s1_paired"]


def strong_features(split, stats=None, use_coords: bool = True) -> np.ndarray:
    """(N, F) float32 temporal-composite features of every point (`feature_names` order)."""
    n = len(split)
    cols = [s2_composites(split.sequences["s2"]), season(split.dates.get("s2"), n)]

    paired = split.sequences.get("s2s1", [np.zeros((0, len(bands.CHANNELS_S2S1)))] * n)
    s1 = [per_date_s1(s) for s in paired]
    n_s1 = len(S1_CHANNELS)
    s1q = group_quantiles(s1, S1_QUANTILES) if n else np.full((len(S1_QUANTILES), 0, n_s1), np.nan)
    s1_stats = np.concatenate([np.transpose(s1q, (1, 2, 0)), group_std(s1, n_s1)[:, :, None]], 2)
    cols += [s1_stats.reshape(n, -1), np.asarray([len(s) for s in s1], np.float64)[:, None]]
    if use_coords:
        cols.append(np.asarray(split.coords, np.float64).reshape(n, 2))
    return np.concatenate(cols, 1).astype(np.float32)
