"""The serving ensemble: one TF SavedModel wrapping the bag CNNs, normalisation and padding.

(The whole-series model, family "series", is served with the same signature by
`trainer.series_serving`: 13 raw channels `bands.CHANNELS_SERIES`, no padding to 150; `export`
picks the module by family.)

Contract (the map pipeline codes against it; see docs/trainer.md):

``tf.saved_model.load(MODEL_DIR/ensemble).signatures["serving_default"]`` takes
  * ``sequence`` float32 [batch, T, C] RAW values (S2 reflectance 0–1, VV/VH dB) in the
    channel order of ``s2mos_model.json["channels"]``; valid dates first, in time order;
    any T ≥ 0 (more than 150 valid dates are thinned to 150 spread evenly from first to last,
    rank round(j·(n−1)/149), j = 0…149 — `sequences.select_ranks`, as in training);
  * ``length`` int32 [batch]: number of valid dates (clipped to [0, T]);
  * ``coords`` float32 [batch, 2]: (lat, lon) in degrees (ignored when use_coords is false);
and returns ``{"clay_mean": float32 [batch], "clay_std": float32 [batch]}`` in % clay: mean and
population standard deviation over the bags.

Inside: thin to ≤ 150 dates (`thin_ranks`, the graph twin of `sequences.select_ranks`), min–max
scale each channel to [−1, 1] with the calibration stats, zero every position ≥ length, right-pad
with zeros to 150 dates, run every bag CNN (inference mode), map tanh outputs back to % clay,
mean/std over bags.

Beside it, ``ensemble/s2mos_model.json`` (channels, use_coords, max_dates, bags, family,
stats, padding, extraction: the dataset's extraction settings) and ``ensemble/stats.json``;
the bag Keras models are in MODEL_DIR/bags/ (`trainer.model_dir`, the layout defined once).
"""
from __future__ import annotations

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.normalize import STATS_FILE, NormStats
from s2mos_transforms import fileio
from trainer.model_dir import BAGS_DIR, MODEL_META, bag_file

META_FILE = MODEL_META
PADDING_DOC = ("when longer than max_dates, keep max_dates dates spread evenly from first to last: "
               "rank round(j*(length-1)/(max_dates-1)), j = 0..max_dates-1 "
               "(s2mos_transforms.sequences.select_ranks); "
               "min-max scale each channel to [-1, 1] with the calibration stats; zero every position "
               ">= length; right-pad with zeros to max_dates")


def _span(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.where(hi > lo, hi - lo, 1.0)


def make_module(bag_models: list, stats: NormStats, sequence_feature: str, n_channels: int,
                use_coords: bool, max_dates: int = bands.MAX_DATES):
    """A tf.Module whose `serve` is the serving signature (see module docstring)."""
    import tensorflow as tf

    seq_mm, coord_mm, clay_mm = stats[sequence_feature], stats["coords"], stats["clay"]

    class ServingEnsemble(tf.Module):
        def __init__(self):
            super().__init__(name="s2mos_ensemble")
            self.bags = list(bag_models)
            self.seq_lo = tf.constant(seq_mm.lo, tf.float32)
            self.seq_span = tf.constant(_span(seq_mm.lo, seq_mm.hi), tf.float32)
            self.coord_lo = tf.constant(coord_mm.lo, tf.float32)
            self.coord_span = tf.constant(_span(coord_mm.lo, coord_mm.hi), tf.float32)
            self.clay_lo = tf.constant(float(clay_mm.lo[0]), tf.float32)
            self.clay_span = tf.constant(float(_span(clay_mm.lo, clay_mm.hi)[0]), tf.float32)

        @tf.function(input_signature=[
            tf.TensorSpec([None, None, n_channels], tf.float32, name="sequence"),
            tf.TensorSpec([None], tf.int32, name="length"),
            tf.TensorSpec([None, 2], tf.float32, name="coords")])
        def serve(self, sequence, length, coords):
            z, _ = normalise_and_pad(sequence, length, self.seq_lo, self.seq_span, max_dates)
            inputs = {"sequence": z}
            if use_coords:
                inputs["coords"] = 2.0 * (coords - self.coord_lo) / self.coord_span - 1.0
            preds = []
            for model in self.bags:
                out = tf.reshape(model(inputs, training=False), [-1])
                preds.append((out + 1.0) / 2.0 * self.clay_span + self.clay_lo)
            stacked = tf.stack(preds, axis=0)
            mean = tf.reduce_mean(stacked, axis=0)
            std = tf.sqrt(tf.reduce_mean(tf.square(stacked - mean[None, :]), axis=0))
            return {"clay_mean": tf.identity(mean, name="clay_mean"),
                    "clay_std": tf.identity(std, name="clay_std")}

    return ServingEnsemble()


def thin_ranks(length, max_dates: int = bands.MAX_DATES):
    """TF twin of `s2mos_transforms.sequences.select_ranks` (the one definition of the rule).

    ``length`` int [b] → int64 [b, max_dates]: where length > max_dates the ranks
    round(j · (length − 1) / (max_dates − 1)) = floor(x + 0.5), j = 0 … max_dates − 1, computed
    exactly in int64 as (2·j·(length − 1) + max_dates − 1) // (2·(max_dates − 1)) (no float
    rounding for any length); otherwise j (positions ≥ length are padding, masked by the caller).
    """
    import tensorflow as tf

    r = tf.range(max_dates, dtype=tf.int64)[None, :]
    n = tf.cast(tf.reshape(length, [-1]), tf.int64)[:, None]
    if max_dates > 1:
        spread = (2 * r * (tf.maximum(n, 1) - 1) + (max_dates - 1)) // (2 * (max_dates - 1))
    else:
        spread = tf.zeros_like(r)
    return tf.where(n > max_dates, spread, r)


def normalise_and_pad(sequence, length, lo, span, max_dates: int = bands.MAX_DATES):
    """TF twin of data.pad_sequences + data.normalise_padded (thin, scale, mask, pad)."""
    import tensorflow as tf

    t = tf.shape(sequence)[1]
    length = tf.clip_by_value(tf.cast(length, tf.int32), 0, t)
    seq = tf.pad(sequence, [[0, 0], [0, tf.maximum(0, max_dates - t)], [0, 0]])   # T' ≥ max_dates
    idx = thin_ranks(length, max_dates)                                          # [b, max_dates]
    seq = tf.gather(seq, tf.cast(idx, tf.int32), batch_dims=1)                  # [b, max_dates, C]
    new_len = tf.minimum(length, max_dates)
    z = 2.0 * (seq - lo) / span - 1.0
    valid = tf.range(max_dates)[None, :] < new_len[:, None]
    z = tf.where(valid[:, :, None], z, tf.zeros_like(z))
    return tf.ensure_shape(z, [None, max_dates, sequence.shape[-1]]), new_len


def metadata(channels: tuple[str, ...], sequence_feature: str, use_coords: bool, n_bags: int,
             stats: NormStats, max_dates: int = bands.MAX_DATES, extraction: dict | None = None,
             extraction_source: str | None = None, family: str = "cnn",
             bag_models: list[str] | None = None) -> dict:
    """s2mos_model.json. `extraction`: the dataset's `ExtractConfig.as_dict` (the map applies it);
    `extraction_source`: where those settings came from (the dataset, or the paper's defaults)."""
    groups = (sequence_feature, "coords", "clay")
    if family == "series":            # the raw channels' min/max (`series.series_minmax`) and its own inside
        from trainer import series, series_serving
        stats = series.with_series_stats(stats)
    meta = {
        "channels": list(channels), "use_coords": bool(use_coords), "max_dates": int(max_dates),
        "bags": int(n_bags), "family": family, "sequence_feature": sequence_feature,
        "stats": {g: {"min": stats[g].lo.tolist(), "max": stats[g].hi.tolist()} for g in groups},
        "signature": {"inputs": {"sequence": "float32 [batch, T, C] raw", "length": "int32 [batch]",
                                 "coords": "float32 [batch, 2] lat, lon deg"},
                      "outputs": {"clay_mean": "float32 [batch] % clay",
                                  "clay_std": "float32 [batch] % clay, population std over bags"}},
        "padding": PADDING_DOC,
        "bag_models": list(bag_models) if bag_models else [f"../{BAGS_DIR}/{bag_file(k)}" for k in range(n_bags)],
        "bag_model_io": {"inputs": {"sequence": f"float32 [batch, {max_dates}, C] normalised, zero-padded",
                                    "coords": "float32 [batch, 2] normalised (only if use_coords)"},
                         "output": "float32 [batch, 1] tanh, clay normalised to [-1, 1]"},
        "extraction": None if extraction is None else dict(extraction),
        "extraction_source": extraction_source,
    }
    if family == "series":
        meta.update(padding=series_serving.PADDING_DOC, bag_model_io=series_serving.BAG_MODEL_IO)
    return meta


def export(path: str, members: list, stats: NormStats, channels: tuple[str, ...],
           sequence_feature: str, use_coords: bool, max_dates: int = bands.MAX_DATES,
           extraction: dict | None = None, extraction_source: str | None = None, family: str = "cnn",
           bag_models: list[str] | None = None) -> str:
    """Write the SavedModel, s2mos_model.json and stats.json into `path` (local or gs://).

    ``family``: the served model's family (`trainer.specs`): "cnn" (this module's graph) or
    "series" (`trainer.series_serving`, same signature; its stats gain the ``series`` group);
    ``bag_models``: its bag files relative to `path` (default ../bags/bag_K.keras, the main CNN's)."""
    import tensorflow as tf

    if family == "series":
        from trainer import series, series_serving
        if tuple(channels) != bands.CHANNELS_SERIES:
            raise ValueError(f"the series model serves {bands.CHANNELS_SERIES}, not {tuple(channels)}")
        module = series_serving.make_module(members, stats, use_coords, max_dates)
        stats = series.with_series_stats(stats)
    elif family == "cnn":
        module = make_module(members, stats, sequence_feature, len(channels), use_coords, max_dates)
    else:
        raise ValueError(f"no serving ensemble for model family {family!r}")
    sig = module.serve.get_concrete_function()
    tf.saved_model.save(module, path, signatures={"serving_default": sig})
    meta = metadata(channels, sequence_feature, use_coords, len(members), stats, max_dates,
                    extraction, extraction_source, family, bag_models)
    fileio.write_json(fileio.join(path, META_FILE), meta)
    fileio.write_text(fileio.join(path, STATS_FILE), stats.to_json())
    return path


class LoadedEnsemble:
    """The exported ensemble loaded fresh from disk, called with NumPy arrays."""

    def __init__(self, path: str):
        import tensorflow as tf

        self.path = path
        self.meta = fileio.read_json(fileio.join(path, META_FILE))
        self._loaded = tf.saved_model.load(path)
        self._fn = self._loaded.signatures["serving_default"]

    def predict(self, sequence: np.ndarray, length: np.ndarray, coords: np.ndarray,
                batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        import tensorflow as tf

        means, stds = [], []
        for s in range(0, len(length), batch_size):
            out = self._fn(sequence=tf.constant(sequence[s:s + batch_size], tf.float32),
                           length=tf.constant(length[s:s + batch_size], tf.int32),
                           coords=tf.constant(coords[s:s + batch_size], tf.float32))
            means.append(out["clay_mean"].numpy())
            stds.append(out["clay_std"].numpy())
        if not means:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(means), np.concatenate(stds)


def load(path: str) -> LoadedEnsemble:
    return LoadedEnsemble(path)
