"""Ensemble engines: ragged per-pixel sequences in, (clay_mean, clay_std) in % out.

* `PaddedEnsemble` calls the exported SavedModel (`ensemble/`, `serving_default`) — the
  reference, padding each batch only to its own longest sequence. It is the engine of every
  family other than the CNN (the whole-series model, `trainer.series`, whose output does not
  depend on the pad width, so the batch's own longest is already its cheapest exact width).
* `FastEnsemble` gives the same numbers at a cost that follows the real number of dates: the
  CNN's convolutions act per date and its pooling is 1×2 along dates, so the activation of
  the last pooling at position d depends on dates [d·f, (d+1)·f) only (f = 8 for three pools).
  Padded dates are zeros after normalisation, so positions made only of padding all carry
  the same activation, computed once at load. For a batch of pixels whose longest sequence
  is L, the conv stack runs on ceil(L/f)·f dates and the rest is filled with that constant.
  Pixels are sorted by length and batched, so each batch is about as long as its pixels.
  At load it checks itself against the SavedModel and falls back to it on any mismatch.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

import numpy as np

from s2mos_transforms.fileio import join, read_json
from trainer.model_dir import MODEL_META, EnsembleMeta, bag_paths, ensemble_dir, read_meta

log = logging.getLogger(__name__)

# Fast path must match the SavedModel within this (% clay) at its load-time self-check.
SELF_CHECK_TOL = 1e-3


def length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Pixel indices sorted by length, cut into batches of ≤ batch_size: similar lengths together."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, order.size, batch_size)]


def pad_batch(values: np.ndarray, offsets: np.ndarray, lengths: np.ndarray, sel: np.ndarray,
              width: int) -> np.ndarray:
    """(B, width, C) zero-padded sequences of pixels `sel` (each truncated to `width`)."""
    lens = np.minimum(lengths[sel], width).astype(np.int64)
    out = np.zeros((sel.size, width, values.shape[1]), np.float32)
    total = int(lens.sum())
    if total:
        row = np.repeat(np.arange(sel.size), lens)
        starts = np.repeat(np.cumsum(lens) - lens, lens)
        col = np.arange(total) - starts
        src = np.repeat(offsets[sel], lens) + col
        out[row, col] = values[src]
    return out


def thin_ragged(values: np.ndarray, lengths: np.ndarray, max_dates: int) -> tuple[np.ndarray, np.ndarray]:
    """Ragged sequences longer than ``max_dates`` thinned by the one rule of the project.

    `sequences.thin_index` (= `sequences.select_ranks`: max_dates dates spread evenly from the
    first to the last, rank round(j·(n−1)/(max_dates−1))), as the SavedModel and the trainer
    do. `pixel_sequences` never yields such sequences (`select_dates` caps them with the same
    rule), so there it is a no-op; it guards other callers, whose longer sequences `pad_batch`
    would otherwise cut to their first dates. Returns (values, lengths int64).
    """
    lengths = np.asarray(lengths, np.int64)
    long = np.flatnonzero(lengths > max_dates)
    if long.size == 0:
        return values, lengths
    from s2mos_transforms import sequences

    offsets = np.concatenate([[0], np.cumsum(lengths)])
    keep = np.ones(int(offsets[-1]), bool)
    for i in long:
        keep[offsets[i]:offsets[i + 1]] = False
        keep[offsets[i] + sequences.thin_index(int(lengths[i]), max_dates)] = True
    return np.asarray(values)[keep], np.minimum(lengths, max_dates)


class Ensemble:
    """An engine: ragged sequences in, (clay_mean, clay_std) in % out."""

    meta: EnsembleMeta
    name: str = "ensemble"

    def predict(self, values: np.ndarray, lengths: np.ndarray, coords: np.ndarray,
                batch_size: int = 2048) -> tuple[np.ndarray, np.ndarray]:
        values, lengths = thin_ragged(values, lengths, self.meta.max_dates)   # no-op from pixel_sequences
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        mean = np.zeros(lengths.size, np.float32)
        std = np.zeros(lengths.size, np.float32)
        for sel in length_batches(lengths, batch_size):
            m, s = self._predict_batch(values, offsets, lengths, sel, np.asarray(coords, np.float32)[sel])
            mean[sel], std[sel] = m, s
        return mean, std

    def _predict_batch(self, values, offsets, lengths, sel, coords):  # pragma: no cover - abstract
        raise NotImplementedError


class PaddedEnsemble(Ensemble):
    """The exported SavedModel, as served (`serving_default`): the reference numbers."""

    name = "padded"

    def __init__(self, model_dir: str):
        import tensorflow as tf
        self.meta = read_meta(model_dir)
        self.family = str(read_json(join(ensemble_dir(model_dir), MODEL_META)).get("family", "cnn"))
        self._module = tf.saved_model.load(ensemble_dir(model_dir))
        self._fn = self._module.signatures["serving_default"]

    def _predict_batch(self, values, offsets, lengths, sel, coords):
        import tensorflow as tf
        width = int(min(max(lengths[sel].max(), 1), self.meta.max_dates))
        x = pad_batch(values, offsets, lengths, sel, width)
        out = self._fn(sequence=tf.constant(x), length=tf.constant(np.minimum(lengths[sel], width), tf.int32),
                       coords=tf.constant(coords))
        return out["clay_mean"].numpy().reshape(-1), out["clay_std"].numpy().reshape(-1)


@dataclasses.dataclass
class _SplitBag:
    conv: Any            # keras Function: sequence → last pooling output
    head: Any            # keras Function: [last pooling output(, coords)] → tanh output
    pad_act: Any         # activation of an all-padding input, (1, …)
    date_axis: int       # axis of the date positions in the activation (batch = 0)
    factor: int          # input dates per activation position (2 ** number of poolings)
    positions: int       # positions at max_dates


def _graph_split(model, max_dates: int):
    """(conv Function, head Function, seq input, coords input | None) of a functional bag model."""
    import keras
    from keras.src.ops.function import Function

    flats = [l for l in model.layers if isinstance(l, keras.layers.Flatten)]
    if len(flats) != 1:
        raise ValueError("bag model has no single Flatten layer")
    act = flats[0]._inbound_nodes[0].input_tensors[0]
    seq_in = [t for t in model.inputs if len(t.shape) == 3]
    co_in = [t for t in model.inputs if len(t.shape) == 2]
    if len(seq_in) != 1 or len(co_in) > 1:
        raise ValueError("bag model inputs are not (sequence[, coords])")
    conv = Function(seq_in[0], act)
    head = Function([act] + co_in, model.outputs[0])
    return conv, head, seq_in[0], (co_in[0] if co_in else None)


def _run_conv(conv, x, max_dates: int):
    """Run the conv Function on a sequence of any length (Reshape targets adapted to it)."""
    import keras

    def op_fn(op):
        if isinstance(op, keras.layers.Reshape) and max_dates in op.target_shape:
            target = tuple(-1 if d == max_dates else d for d in op.target_shape)
            return lambda t: keras.ops.reshape(t, (keras.ops.shape(t)[0],) + target)
        return op
    return conv._run_through_graph([x], operation_fn=op_fn)


class FastEnsemble(Ensemble):
    """The bag Keras models, conv stack on the real dates only; same numbers as the SavedModel."""

    name = "fast"

    def __init__(self, model_dir: str):
        import keras
        import tensorflow as tf

        self.meta = read_meta(model_dir)
        m = self.meta
        self._seq = m.seq_stats
        self._coords = m.stats["coords"] if m.use_coords else None
        self._clay = m.stats["clay"]
        self.bags: list[_SplitBag] = []
        self.models = []
        c = len(m.channels)
        for path in bag_paths(model_dir, m):
            model = _load_keras(path)
            self.models.append(model)
            conv, head, _, co = _graph_split(model, m.max_dates)
            if (co is not None) != m.use_coords:
                raise ValueError("bag model coords input disagrees with use_coords")
            full = _run_conv(conv, tf.zeros((1, m.max_dates, c)), m.max_dates)
            a = _run_conv(conv, tf.zeros((1, 64, c)), m.max_dates).shape
            b = _run_conv(conv, tf.zeros((1, 128, c)), m.max_dates).shape
            diff = [i for i in range(1, len(a)) if a[i] != b[i]]
            if len(diff) != 1 or (b[diff[0]] - a[diff[0]]) == 0 or 64 % (b[diff[0]] - a[diff[0]]) != 0:
                raise ValueError("cannot find the date axis of the conv stack")
            axis = diff[0]
            factor = 64 // (b[axis] - a[axis])
            self.bags.append(_SplitBag(conv, head, full, axis, factor, int(full.shape[axis])))
        self.factor = max(b.factor for b in self.bags)
        self._fn = tf.function(self._forward, reduce_retracing=True)

    def aligned_width(self, longest: int) -> int:
        """Dates the conv stack must see for sequences up to `longest`: a multiple of the pooling."""
        f = self.factor
        full = min(b.positions for b in self.bags) * f
        return int(min(max(1, -(-int(longest) // f)) * f, full))

    def _forward(self, x, coords):
        import tensorflow as tf
        outs = []
        for bag in self.bags:
            act = _run_conv(bag.conv, x, self.meta.max_dates)
            k = tf.shape(act)[bag.date_axis]
            rest = tf.gather(bag.pad_act, tf.range(k, bag.positions), axis=bag.date_axis)
            shape = tf.concat([tf.shape(act)[:1], tf.shape(rest)[1:]], 0)
            act = tf.concat([act, tf.broadcast_to(rest, shape)], axis=bag.date_axis)
            args = [act] + ([coords] if self._coords is not None else [])
            outs.append(tf.reshape(bag.head(args), [-1]))
        return tf.stack(outs)

    def bag_outputs(self, values, offsets, lengths, sel, coords) -> np.ndarray:
        """(n_bags, B) tanh outputs of the bags for pixels `sel`."""
        import tensorflow as tf
        width = self.aligned_width(int(lengths[sel].max()))
        x = pad_batch(values, offsets, lengths, sel, width)
        valid = (np.arange(width)[None, :] < np.minimum(lengths[sel], width)[:, None])[..., None]
        xn = np.where(valid, self._seq.scale(x), np.float32(0)).astype(np.float32)
        cn = self._coords.scale(coords) if self._coords is not None else np.zeros((sel.size, 2), np.float32)
        return self._fn(tf.constant(xn), tf.constant(cn)).numpy()

    def _predict_batch(self, values, offsets, lengths, sel, coords):
        z = self.bag_outputs(values, offsets, lengths, sel, coords)
        clay = np.asarray(self._clay.unscale(z.reshape(-1, 1)), np.float64).reshape(z.shape)
        return clay.mean(axis=0).astype(np.float32), clay.std(axis=0).astype(np.float32)


def _load_keras(path: str):
    """Load a .keras file, copying gs:// ones to a local temp file first."""
    import keras
    if path.startswith("gs://"):
        import tempfile
        import tensorflow as tf
        local = os.path.join(tempfile.mkdtemp(prefix="s2mos-bag-"), os.path.basename(path))
        tf.io.gfile.copy(path, local, overwrite=True)
        path = local
    return keras.models.load_model(path, compile=False)


def probe_batch(meta: EnsembleMeta, n: int = 24, seed: int = 0):
    """Random sequences over the normalisation range with lengths from 1 to max_dates."""
    rng = np.random.default_rng(seed)
    lengths = np.unique(np.concatenate([[1, 7, 8, 9, 63, 64, 65, 143, 144, 145, meta.max_dates],
                                        rng.integers(1, meta.max_dates + 1, n)]))
    lo, hi = meta.seq_stats.lo, meta.seq_stats.hi
    values = (lo + (hi - lo) * rng.random((int(lengths.sum()), len(meta.channels)))).astype(np.float32)
    clo, chi = (meta.stats["coords"].lo, meta.stats["coords"].hi) if "coords" in meta.stats.groups \
        else (np.array([40.0, 0.0]), np.array([50.0, 10.0]))
    coords = (clo + (chi - clo) * rng.random((lengths.size, 2))).astype(np.float32)
    return values, lengths.astype(np.int32), coords


def load_engine(model_dir: str, mode: str = "fast") -> Ensemble:
    """The engine for `mode` ('fast' | 'padded'); 'fast' self-checks against the SavedModel
    and falls back to it (with a warning) if it cannot be built or disagrees. A model of another
    family than the CNN (s2mos_model.json "family") is always served by the SavedModel."""
    padded = PaddedEnsemble(model_dir)
    if mode == "padded" or padded.family != "cnn":
        return padded
    try:
        fast = FastEnsemble(model_dir)
        values, lengths, coords = probe_batch(fast.meta)
        m0, s0 = padded.predict(values, lengths, coords)
        m1, s1 = fast.predict(values, lengths, coords)
        err = float(max(np.abs(m0 - m1).max(), np.abs(s0 - s1).max()))
        if not err <= SELF_CHECK_TOL:
            raise ValueError(f"fast path differs from the SavedModel by {err:.3g} % clay")
        return fast
    except Exception as exc:  # any model the splitter does not understand: serve it padded
        log.warning("fast inference path unavailable (%s); using the padded SavedModel", exc)
        return padded
