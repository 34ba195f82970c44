"""The trust layer of a model: intervals, area of applicability and local recalibration.

Fitted by `s2mos train` (after the serving ensemble is exported) and stored with it in
ensemble/s2mos_model.json (+ ensemble/aoa.npz); applied by `evaluate` on the test split and
by predict-map on every pixel, through one function (`Trust.apply`) whatever the inference
path, so `fast` and `padded` maps differ only by their (self-checked) clay_mean/clay_std.

Bands it adds to a map: clay_p05, clay_p95 (90 % conformal interval, `trainer.intervals`),
di, aoa (Meyer & Pebesma 2021, `trainer.aoa`). A recalibration (`s2mos recalibrate`,
`trainer.recalibrate`) is a monotone map a + b·clay, plus the kriged residual of the local
samples at the pixel when it has one, applied to clay_mean and both bounds
(and b·clay_std), the interval widened by its `interval_scale`; recorded in the metadata and
shown in the STAC Item and the map report.

The AOA's feature space (`aoa_space`, recorded as ``aoa.space`` in the metadata): for the CNN
the temporal medians of its own input channels; for the whole-series model the temporal
composites of its S2 rows (`composites.series_composites`: per-band quantiles, index medians and
IQRs, number of bare dates, season), so every pixel with a bare date has a DI whether or not it
has an S1 pair. Why composites there: on spatial-block folds of the paper preset they mark the
larger errors better than the medians and flag part of a shifted clayey site that the medians
put wholly inside (docs/trainer.md "Area of applicability: feature space"). A model directory
written before ``aoa.space`` existed is read as ``medians``.
"""
from __future__ import annotations

import io

import numpy as np

from s2mos_transforms import bands, fileio
from trainer import aoa as aoa_mod
from trainer import intervals, model_dir

def aoa_channels(channels) -> list[int]:
    """The input channels whose medians span the AOA's feature space.

    Every channel of the CNN's sequences. Of the whole-series model's rows
    (``bands.CHANNELS_SERIES``) only the 10 S2 bands: VV/VH are NaN on the dates without an S1
    pair (a pixel without any would have no DI at all, though the model predicts it) and the
    median acquisition day describes the period mapped, not the soil."""
    channels = tuple(channels)
    if channels == bands.CHANNELS_SERIES:
        return list(range(len(bands.S2_BANDS)))
    return list(range(len(channels)))


def aoa_space(channels) -> str:
    """The AOA's feature space of a model reading `channels`: ``composites`` for the whole-series
    model, ``medians`` otherwise."""
    return "composites" if tuple(channels) == bands.CHANNELS_SERIES else "medians"


def aoa_features(values: np.ndarray, lengths: np.ndarray, coords: np.ndarray, use_coords: bool,
                 channels=None, space: str = "medians") -> np.ndarray:
    """The AOA's feature rows of ragged sequences: in ``medians`` space the median per channel of
    `aoa_channels`, in ``composites`` space (series rows only) `composites.series_composites`;
    + lat/lon if the model uses them. ``channels`` None: read from the width (13 = series rows)."""
    values = np.asarray(values)
    if channels is None:
        width = values.shape[-1] if values.ndim > 1 else 1
        channels = bands.CHANNELS_SERIES if width == len(bands.CHANNELS_SERIES) else tuple(range(width))
    if space == "composites":
        from trainer import composites
        return composites.series_composites(values, lengths, coords if use_coords else None)
    cols = aoa_channels(channels)
    if values.ndim > 1 and len(cols) < values.shape[-1]:
        values = values[:, cols]
    return aoa_mod.median_features(values, lengths, coords if use_coords else None)


def feature_names(channels, use_coords: bool, space: str = "medians") -> list[str]:
    if space == "composites":
        from trainer import composites
        return composites.series_composite_names(use_coords)
    channels = list(channels)
    return [f"median_{channels[i]}" for i in aoa_channels(channels)] + (["lat", "lon"] if use_coords else [])


def raw_sequences(split, feature: str) -> list[np.ndarray]:
    """A split's raw sequences of the model's feature (the series rows are built: `trainer.series`)."""
    if feature == "series":
        from trainer import series
        return series.raw_sequences(split)
    return split.sequences[feature]


def fit_and_store(root: str, cal, channels, feature: str, use_coords: bool, cal_bag_preds: np.ndarray,
                  bags: list[np.ndarray], seed: int = 0, log=print) -> dict:
    """Fit the conformal intervals and the AOA of the serving ensemble on the calibration split and
    write them into MODEL_DIR/ensemble. Returns the metadata added."""
    observed = cal.clay.astype(np.float64)
    iv = intervals.fit(observed, cal_bag_preds, bags)
    values, lengths = aoa_mod.ragged(raw_sequences(cal, feature), len(channels))
    space = aoa_space(channels)
    feats = aoa_features(values, lengths, cal.coords, use_coords, channels, space)
    a_meta, train = aoa_mod.fit(feats, observed, cal.coords, feature_names(channels, use_coords, space), seed)
    a_meta["space"] = space
    buf = io.BytesIO()
    np.savez_compressed(buf, train=train)
    fileio.write_bytes(f"{model_dir.ensemble_dir(root)}/{model_dir.AOA_FILE}", buf.getvalue())
    a_meta["file"] = model_dir.AOA_FILE
    added = {"intervals": iv, "aoa": a_meta, "calibration_clay_mean": float(observed.mean())}
    model_dir.update_meta(root, **added)
    log(f"[trust] 90 % conformal intervals: q {iv['q']:.2f}, eps {iv['eps']:.2f} % clay "
        f"({iv['n']} out-of-bag calibration points); AOA: {a_meta['n_training']} training points, "
        f"threshold DI {a_meta['threshold']:.3f}")
    return added


def correct(x: np.ndarray, recal: dict | None, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """a + b·x + shift of a recalibration as a map band (float32), x itself without one: the line
    is `trainer.recalibrate.line` (one definition); `shift` is the kriged residual of the local
    samples at each pixel (`spatial_shift`), computed once for clay_mean and both bounds."""
    from trainer import recalibrate
    return (recalibrate.line(x, recal) + shift).astype(np.float32)


def spatial_shift(recal: dict | None, coords: np.ndarray, n: int) -> np.ndarray | float:
    """The kriged local residual at each pixel (`trainer.recalibrate.kriging_term`), 0 without one.
    The same shift moves clay_mean and both interval bounds."""
    if not recal or not recal.get("kriging") or n == 0:
        return 0.0
    from trainer import recalibrate
    return recalibrate.kriging_term(np.asarray(coords, np.float64).reshape(-1, 2), recal["kriging"])


class Trust:
    """What a model directory says about how far to trust each prediction."""

    def __init__(self, meta: model_dir.EnsembleMeta, aoa: aoa_mod.AOA | None):
        self.meta, self.aoa = meta, aoa

    @classmethod
    def load(cls, root: str, meta: model_dir.EnsembleMeta | None = None) -> "Trust":
        meta = meta or model_dir.read_meta(root)
        area = None
        if meta.aoa:
            raw = fileio.read_bytes(f"{model_dir.ensemble_dir(root)}/{meta.aoa.get('file', model_dir.AOA_FILE)}")
            with np.load(io.BytesIO(raw)) as z:
                area = aoa_mod.AOA(meta.aoa, z["train"])
        return cls(meta, area)

    def apply(self, mean: np.ndarray, std: np.ndarray, values: np.ndarray, lengths: np.ndarray,
              coords: np.ndarray) -> dict[str, np.ndarray]:
        """Every band of the map for these pixels: clay_mean, clay_std (recalibrated if the model
        is), clay_p05, clay_p95, di, aoa (NaN where the model carries no such layer)."""
        n = np.asarray(mean).size
        nan = np.full(n, np.nan, np.float32)
        recal = self.meta.recalibration
        shift = spatial_shift(recal, coords, n)
        out = {"clay_mean": correct(mean, recal, shift),
               "clay_std": (np.asarray(std, np.float32) * np.float32(recal["b"] if recal else 1.0)).astype(np.float32)}
        if self.meta.intervals:
            params = dict(self.meta.intervals)
            if recal and recal.get("interval_scale"):      # the local samples' conformal widening
                params["q"] = params["q"] * float(recal["interval_scale"])
            lo, hi = intervals.bounds(mean, std, params)
            out["clay_p05"], out["clay_p95"] = correct(lo, recal, shift), correct(hi, recal, shift)
        else:
            out["clay_p05"], out["clay_p95"] = nan, nan.copy()
        if self.aoa is not None and n:
            di = self.aoa.di(aoa_features(values, lengths, coords, self.meta.use_coords, self.meta.channels,
                                          self.aoa.meta.get("space", "medians")))
            out["di"] = di
            out["aoa"] = np.where(np.isfinite(di), self.aoa.inside(di), np.nan).astype(np.float32)
        else:
            out["di"], out["aoa"] = nan.copy(), nan.copy()
        return out
