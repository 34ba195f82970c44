"""The whole-series model (`series`): every bare S2 date of a point, S1 where paired, the dates.

The paper's CNN sees only the bare dates that have an S1 pair, padded to 150, and never the
acquisition dates. This model reads a point's whole bare series:

Raw rows (`raw_sequences`, and the map's `sequences.block_sequences(series=True)`), one per
bare S2 date, in ``bands.CHANNELS_SERIES`` order: the 10 S2 reflectances, VV and VH (dB) of the
date's S1 pair (NaN where it has none) and ``day`` (days since 1970-01-01 UTC, float).

Per-date features (`date_features`, one TensorFlow function run by training and by the
serving SavedModel, so they cannot drift), ``N_FEATURES`` = 20 per date:
  0 valid flag (1 on a date, 0 on padding) · 1–10 S2 bands min–max scaled to [−1, 1] with the
  calibration ``s2`` stats · 11–12 VV, VH scaled with the ``s2s1`` stats, 0 where unpaired ·
  13 paired flag · 14 SWIR ratio ln(B12/B11) (clipped to ±2) · 15 NBR2 · 16 NDVI (the
  formulas of `masks.nbr2`/`masks.ndvi`) · 17–18 sin/cos of the phase of the year
  (day mod 365.2425) · 19 log(1 + days since the previous bare date)/log(366), 0 on the first.
Every feature is 0 on padding.

Network (`build_series`, ~15 k parameters): per-date Dense 32 (ReLU) → two temporal Conv1D
32 × 3 ('same', ReLU) → masked mean, max and std over the valid dates, plus
log(1 + n dates)/log(151) → [coords → Dense 8 → Dense 4] → Dense 64 → Dropout 0.2 → Dense 16 →
Dropout 0.2 → Dense 1 tanh (ELU + L2 0.002 as the CNN's head). After each layer every padded
position is set to 0 (`ZeroPadding`), and the 'same' convolutions pad with zeros at the
sequence ends, so a prediction does not depend on how many padded dates follow the last real
one: training batches are cut to their own longest sequence (`trim_batch`), the map pads each
batch to its own longest, and the numbers are the same as at any pad width
(`tests/test_series_model.py`).

The serving ensemble of this family is `trainer.series_serving`.
"""
from __future__ import annotations

import math

import numpy as np

from s2mos_transforms import bands, sequences
from s2mos_transforms.errors import UserError
from s2mos_transforms.normalize import MinMax, NormStats

N_RAW = len(bands.CHANNELS_SERIES)
N_FEATURES = 20
FEATURE_NAMES: tuple[str, ...] = (("valid",) + tuple(f"{b}_scaled" for b in bands.S2_BANDS)
                                  + ("VV_scaled", "VH_scaled", "paired", "ln_B12_B11", "NBR2", "NDVI",
                                     "doy_sin", "doy_cos", "log_gap"))
_B = {b: i for i, b in enumerate(bands.S2_BANDS)}
YEAR_DAYS = 365.2425
GAP_SCALE = math.log(366.0)
LENGTH_SCALE = math.log(1.0 + bands.MAX_DATES)
WIDTH = 32              # units of the per-date and temporal layers
PACKAGE = "s2mos_series"


# ---------------------------------------------------------------- raw rows and their stats

def raw_sequence(s2: np.ndarray, s2_dates: np.ndarray, s2s1: np.ndarray, s2s1_dates: np.ndarray) -> np.ndarray:
    """One point's series rows (L, 13): its bare dates joined with its paired dates on the date.

    Paired dates are a subset of the bare dates; each sequence was thinned to ≤ max_dates on its
    own, so in the rare point with more than max_dates bare dates a paired date may be missing
    from the kept bare dates (its radar is then not used) or a kept bare date's pair may have been
    thinned away (it then counts as unpaired)."""
    s2 = np.asarray(s2, np.float32).reshape(-1, len(bands.S2_BANDS))
    s2s1 = np.asarray(s2s1, np.float32).reshape(-1, len(bands.CHANNELS_S2S1))
    d2, d21 = np.asarray(s2_dates, np.int64), np.asarray(s2s1_dates, np.int64)
    radar = np.full((len(s2), 2), np.nan, np.float32)
    if len(d21) and len(d2):
        pos = np.clip(np.searchsorted(d21, d2), 0, len(d21) - 1)
        hit = d21[pos] == d2
        radar[hit] = s2s1[pos[hit], len(bands.S2_BANDS):]
    return np.concatenate([s2, radar, sequences.days_since_epoch(d2)[:, None]], axis=1)


def raw_sequences(split) -> list[np.ndarray]:
    """Every point's raw series rows (`raw_sequence`), in ``bands.CHANNELS_SERIES`` order."""
    if "s2" not in split.dates or "s2" not in split.sequences:
        raise UserError("the dataset has no s2 dates (s2_dates): rebuild it with `s2mos build-dataset` "
                        "to train the series model")
    n = len(split)
    s2s1 = split.sequences.get("s2s1") or [np.zeros((0, 12), np.float32)] * n
    d21 = split.dates.get("s2s1") or [np.zeros(0, np.int64)] * n
    return [raw_sequence(split.sequences["s2"][i], split.dates["s2"][i], s2s1[i], d21[i]) for i in range(n)]


def series_minmax(stats: NormStats) -> MinMax:
    """Min/max of the 13 raw channels: the S2 bands' (``s2``), VV/VH's (``s2s1``); the day is not
    min–max scaled (it enters as the phase of the year and the gaps), recorded as [0, 1]."""
    s2 = stats["s2"]
    if "s2s1" in stats.groups and np.size(stats["s2s1"].lo) == len(bands.CHANNELS_S2S1):
        r_lo, r_hi = stats["s2s1"].lo[len(bands.S2_BANDS):], stats["s2s1"].hi[len(bands.S2_BANDS):]
    else:
        r_lo, r_hi = np.zeros(2), np.zeros(2)
    lo = np.concatenate([s2.lo, r_lo, [0.0]]).astype(np.float64)
    hi = np.concatenate([s2.hi, r_hi, [1.0]]).astype(np.float64)
    return MinMax(np.nan_to_num(lo), np.nan_to_num(hi))


def with_series_stats(stats: NormStats) -> NormStats:
    """The stats plus the ``series`` group (what the exported model's metadata records)."""
    return NormStats({**stats.groups, "series": series_minmax(stats)})


# ---------------------------------------------------------------- per-date features (TF, shared)

def _span(mm: MinMax) -> np.ndarray:
    return np.where(mm.hi > mm.lo, mm.hi - mm.lo, 1.0)


def date_features(raw, length, lo, span):
    """(B, W, 13) raw rows (valid dates first) + lengths (B,) → (B, W, N_FEATURES) float32, 0 past length.

    ``lo``/``span``: the ``series`` min/max (`series_minmax`). Pure TensorFlow: the training inputs
    and the serving graph run this same function."""
    import tensorflow as tf

    raw = tf.convert_to_tensor(raw, tf.float32)
    w = tf.shape(raw)[1]
    valid = tf.range(w)[None, :] < tf.cast(tf.reshape(length, [-1]), tf.int32)[:, None]      # (B, W)
    lo, span = tf.constant(lo, tf.float32), tf.constant(span, tf.float32)
    z = 2.0 * (raw - lo) / span - 1.0
    s2, s1 = raw[..., :10], raw[..., 10:12]
    paired = valid & tf.reduce_all(tf.math.is_finite(s1), axis=-1)
    radar = tf.where(paired[..., None], z[..., 10:12], 0.0)

    def band(name):
        return s2[..., _B[name]]

    def nd(a, b):
        total = a + b
        return tf.where(tf.not_equal(total, 0.0), (a - b) / tf.where(tf.not_equal(total, 0.0), total, 1.0), 0.0)

    swir = tf.clip_by_value(tf.math.log(tf.maximum(band("B12"), 1e-4) / tf.maximum(band("B11"), 1e-4)), -2.0, 2.0)
    day = raw[..., 12]
    phase = 2.0 * math.pi * tf.math.floormod(day, YEAR_DAYS) / YEAR_DAYS
    prev = tf.concat([day[:, :1], day[:, :-1]], axis=1)
    gap = tf.math.log1p(tf.maximum(day - prev, 0.0)) / GAP_SCALE
    gap = tf.concat([tf.zeros_like(gap[:, :1]), gap[:, 1:]], axis=1)
    f = tf.concat([tf.ones_like(day)[..., None], z[..., :10], radar, tf.cast(paired, tf.float32)[..., None],
                   tf.stack([swir, nd(band("B11"), band("B12")), nd(band("B8"), band("B4")),
                             tf.sin(phase), tf.cos(phase), gap], axis=-1)], axis=-1)
    return tf.where(valid[..., None], f, 0.0)


def pad_raw(seqs: list[np.ndarray], max_dates: int = bands.MAX_DATES) -> tuple[np.ndarray, np.ndarray]:
    """Raw rows → (N, W, 13) NaN-padded to the longest (≤ max_dates, thinned by the project's rule), lengths."""
    kept = [np.asarray(s, np.float32).reshape(-1, N_RAW)[sequences.thin_index(len(s), max_dates)] for s in seqs]
    width = max([len(s) for s in kept] + [1])
    out = np.full((len(kept), width, N_RAW), np.nan, np.float32)
    lengths = np.zeros(len(kept), np.int32)
    for i, s in enumerate(kept):
        out[i, :len(s)] = s
        lengths[i] = len(s)
    return out, lengths


def model_inputs(split, stats: NormStats, use_coords: bool, chunk: int = 2048) -> dict[str, np.ndarray]:
    """The Keras inputs of a split: ``series`` (N, W, 20) with W its longest series (≤ 150), ``coords``."""
    return rows_inputs(raw_sequences(split), split.coords, stats, use_coords, chunk)


def rows_inputs(rows: list[np.ndarray], coords: np.ndarray, stats: NormStats, use_coords: bool,
                chunk: int = 2048) -> dict[str, np.ndarray]:
    """`model_inputs` of raw series rows (`raw_sequence`) and their lat/lon: what fine-tuning
    feeds for local samples, which arrive as rows (`s2mos recalibrate`)."""
    raw, lengths = pad_raw(rows)
    mm = series_minmax(stats)
    lo, span = mm.lo, _span(mm)
    feats = np.concatenate([date_features(raw[s:s + chunk], lengths[s:s + chunk], lo, span).numpy()
                            for s in range(0, len(raw), chunk)] or [np.zeros((0,) + raw.shape[1:2] + (N_FEATURES,))])
    x = {"series": feats.astype(np.float32)}
    if use_coords:
        x["coords"] = stats["coords"].scale(np.asarray(coords, np.float32).reshape(-1, 2))
    return x


def trim_batch(x, *rest):
    """A tf.data map: cut a batch's ``series`` to its own longest sequence (the valid flag, feature 0)."""
    import tensorflow as tf

    seq = x["series"]
    n = tf.cast(tf.reduce_max(tf.reduce_sum(seq[..., 0], axis=1)), tf.int32)
    x = dict(x, series=seq[:, :tf.maximum(n, 1)])
    return (x, *rest) if rest else x


# ---------------------------------------------------------------- layers and model

def _layers():
    """The three weightless layers (registered, so saved bags load once this module is imported)."""
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class ValidMask(keras.layers.Layer):
        """(B, T, F) features → (B, T, 1) the valid flag (feature 0)."""
        def call(self, x):
            return x[..., :1]

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class ZeroPadding(keras.layers.Layer):
        """[x (B, T, U), mask (B, T, 1)] → x with every padded position 0."""
        def call(self, inputs):
            x, mask = inputs
            return x * mask

    @keras.saving.register_keras_serializable(package=PACKAGE)
    class MaskedPool(keras.layers.Layer):
        """[x (B, T, U), mask] → (B, 3U + 1): mean, max, std over the valid dates, log(1+n)/log(151)."""
        def call(self, inputs):
            x, mask = inputs
            n = ops.sum(mask, axis=1)                                         # (B, 1)
            safe = ops.maximum(n, 1.0)
            mean = ops.sum(x * mask, axis=1) / safe
            var = ops.sum(ops.square(x - mean[:, None, :]) * mask, axis=1) / safe
            std = ops.sqrt(var + 1e-6)
            big = ops.max(ops.where(mask > 0, x, -1e9), axis=1)
            top = ops.where(n > 0, big, 0.0)
            return ops.concatenate([mean, top, std, ops.log1p(n) / LENGTH_SCALE], axis=-1)

    return ValidMask, ZeroPadding, MaskedPool


ValidMask, ZeroPadding, MaskedPool = _layers()


def build_series(n_features: int = N_FEATURES, use_coords: bool = True, name: str = "series"):
    """The whole-series model; inputs {'series': (T, F) any T, 'coords': (2,)}, output clay in [−1, 1]."""
    import keras
    from keras import layers
    from trainer.models import coords_and_head

    seq_in = keras.Input((None, n_features), name="series")
    mask = ValidMask(name="valid_mask")(seq_in)
    x = layers.Dense(WIDTH, activation="relu", name="date_dense")(seq_in)
    x = ZeroPadding(name="zero_pad0")([x, mask])
    for k in (1, 2):
        x = layers.Conv1D(WIDTH, 3, padding="same", activation="relu", name=f"tconv{k}")(x)
        x = ZeroPadding(name=f"zero_pad{k}")([x, mask])
    x = MaskedPool(name="masked_pool")([x, mask])
    return coords_and_head(x, {"series": seq_in}, use_coords, name)
