"""The serving ensemble of the whole-series model: the CNN's signature, the series' inside.

``serving_default`` is the same contract as the CNN's (`trainer.ensemble`): ``sequence`` float32
[batch, T, 13] RAW rows in ``bands.CHANNELS_SERIES`` order (reflectance 0–1, VV/VH dB with NaN
where the date has no S1 pair, day = days since 1970-01-01 UTC), valid dates first in time
order; ``length`` int32 [batch]; ``coords`` float32 [batch, 2] lat, lon deg → ``clay_mean``,
``clay_std`` (% clay, mean and population std over the bags).

Inside: clip length to [0, T]; more than max_dates (150) dates are thinned to 150 spread evenly
(`ensemble.thin_ranks`, the rule of training and of the map); the batch is cut to its own
longest sequence (no padding to 150: the model does not depend on the pad width); the per-date
features are `series.date_features` (the training inputs' own function); every bag runs in
inference mode and its tanh output is mapped back to % clay.
"""
from __future__ import annotations

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.normalize import NormStats

PADDING_DOC = ("when longer than max_dates, keep max_dates dates spread evenly from first to last: "
               "rank round(j*(length-1)/(max_dates-1)), j = 0..max_dates-1 "
               "(s2mos_transforms.sequences.select_ranks); cut the batch to its longest sequence "
               "(no padding to max_dates: the model's output does not depend on the pad width); per-date "
               "features trainer.series.date_features (0 on every position >= length)")
BAG_MODEL_IO = {"inputs": {"series": "float32 [batch, T, 20] per-date features (trainer.series.date_features), "
                                     "0 past length, any T",
                           "coords": "float32 [batch, 2] normalised (only if use_coords)"},
                "output": "float32 [batch, 1] tanh, clay normalised to [-1, 1]"}


def prepare(sequence, length, lo, span, max_dates: int = bands.MAX_DATES):
    """Raw [b, T, 13] + length → (features [b, W, 20], lengths): thin, cut to the longest, featurise."""
    import tensorflow as tf
    from trainer import series
    from trainer.ensemble import thin_ranks

    t = tf.shape(sequence)[1]
    length = tf.clip_by_value(tf.cast(length, tf.int32), 0, t)
    seq = tf.pad(sequence, [[0, 0], [0, tf.maximum(0, 1 - t)], [0, 0]])                 # T' ≥ 1
    new_len = tf.minimum(length, max_dates)
    width = tf.maximum(tf.reduce_max(tf.concat([new_len, [0]], 0)), 1)                  # ≤ T'
    idx = thin_ranks(length, max_dates)[:, :width]
    seq = tf.gather(seq, tf.cast(idx, tf.int32), batch_dims=1)                         # [b, W, 13]
    return series.date_features(seq, new_len, lo, span), new_len


def make_module(bag_models: list, stats: NormStats, use_coords: bool, max_dates: int = bands.MAX_DATES):
    """A tf.Module whose `serve` is the serving signature (module docstring)."""
    import tensorflow as tf
    from trainer import series

    mm = series.series_minmax(stats)
    lo, span = mm.lo.astype(np.float32), np.where(mm.hi > mm.lo, mm.hi - mm.lo, 1.0).astype(np.float32)
    coord_mm, clay_mm = stats["coords"], stats["clay"]

    class ServingSeries(tf.Module):
        def __init__(self):
            super().__init__(name="s2mos_series_ensemble")
            self.bags = list(bag_models)
            self.coord_lo = tf.constant(coord_mm.lo, tf.float32)
            self.coord_span = tf.constant(np.where(coord_mm.hi > coord_mm.lo, coord_mm.hi - coord_mm.lo, 1.0),
                                          tf.float32)
            self.clay_lo = tf.constant(float(clay_mm.lo[0]), tf.float32)
            self.clay_span = tf.constant(float(max(clay_mm.hi[0] - clay_mm.lo[0], 0) or 1.0), tf.float32)

        @tf.function(input_signature=[
            tf.TensorSpec([None, None, len(bands.CHANNELS_SERIES)], tf.float32, name="sequence"),
            tf.TensorSpec([None], tf.int32, name="length"),
            tf.TensorSpec([None, 2], tf.float32, name="coords")])
        def serve(self, sequence, length, coords):
            feats, _ = prepare(sequence, length, lo, span, max_dates)
            inputs = {"series": feats}
            if use_coords:
                inputs["coords"] = 2.0 * (coords - self.coord_lo) / self.coord_span - 1.0
            preds = [(tf.reshape(m(inputs, training=False), [-1]) + 1.0) / 2.0 * self.clay_span + self.clay_lo
                     for m in self.bags]
            stacked = tf.stack(preds, axis=0)
            mean = tf.reduce_mean(stacked, axis=0)
            std = tf.sqrt(tf.reduce_mean(tf.square(stacked - mean[None, :]), axis=0))
            return {"clay_mean": tf.identity(mean, name="clay_mean"), "clay_std": tf.identity(std, name="clay_std")}

    return ServingSeries()
