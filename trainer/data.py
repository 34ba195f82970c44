"""Input pipeline: TFRecords (read through the schema beside them) → normalised model inputs.

Datasets are small (≈ 6 000 points × ≤ 150 dates), so each split is parsed once with tf.data
into NumPy and the model inputs are derived from it by pure functions; training then streams
the in-memory arrays through `make_tf_dataset` (cache → shuffle → batch → prefetch).

Padding convention (the same inside the exported ensemble, `trainer.ensemble`):
  * a sequence longer than `max_dates` (150) is thinned to 150 dates spread evenly from the
    first to the last: rank round(j·(n−1)/149), j = 0…149 (`thin_index`, i.e.
    `s2mos_transforms.sequences.select_ranks`, the rule of the dataset and map pipelines), so
    the three years stay represented;
  * valid dates come first, in time order; each channel is min–max scaled to [−1, 1] with the
    calibration stats;
  * the normalised sequence is right-padded with zeros to 150 dates and every position
    ≥ length is zero (0 is the middle of the normalised range), so what lies past `length`
    in a raw input never reaches the network.

Channel sets: ``s2s1`` reads the S1-paired sequence (12 channels, `bands.CHANNELS_S2S1`);
``s2`` reads every bare S2 observation (10 channels), so a dataset without radar trains.
Median composites (RF/ANN baselines) are the per-band median of all bare S2 observations.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from s2mos_transforms import bands, sequences

from s2mos_transforms.dataset import schema
from s2mos_transforms.errors import UserError
from s2mos_transforms.normalize import MinMax, NormStats

SPLITS: tuple[str, ...] = ("calibration", "test")
# channel set → (sequence feature in the TFRecords, channel names, stats group)
CHANNEL_SETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "s2s1": ("s2s1", bands.CHANNELS_S2S1),
    "s2": ("s2", bands.CHANNELS_S2),
    "series": ("series", bands.CHANNELS_SERIES),     # built from s2 + s2s1 + dates (`trainer.series`)
}


@dataclasses.dataclass
class Split:
    """One split, raw (unnormalised) values; sequences unpadded, one (length, C) array per point."""

    point_id: np.ndarray             # (N,) str
    coords: np.ndarray               # (N, 2) float32 lat, lon (deg)
    clay: np.ndarray                 # (N,) float32 (%)
    sequences: dict[str, list[np.ndarray]]  # 's2s1' → [(L_i, 12)], 's2' → [(L_i, 10)]
    # acquisition times (int64 s since epoch) of each sequence's dates: 's2s1' → [(L_i,)], 's2' → [(L_i,)]
    dates: dict[str, list[np.ndarray]] = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.point_id.size)

    def subset(self, index: np.ndarray) -> "Split":
        index = np.asarray(index)
        return Split(self.point_id[index], self.coords[index], self.clay[index],
                     {k: [v[i] for i in index] for k, v in self.sequences.items()},
                     {k: [v[i] for i in index] for k, v in self.dates.items()})

    def paired_lengths(self) -> np.ndarray:
        """Number of S1-paired dates of each point (0 for a point whose bare dates have no S1 pair)."""
        return np.asarray([len(s) for s in self.sequences.get("s2s1", [])] or np.zeros(len(self)), np.int64)

    @staticmethod
    def concat(parts: list["Split"]) -> "Split":
        """The points of several splits, in order (to pool calibration and test, or re-split)."""
        return Split(np.concatenate([p.point_id for p in parts]), np.concatenate([p.coords for p in parts]),
                     np.concatenate([p.clay for p in parts]),
                     {k: [s for p in parts for s in p.sequences[k]] for k in parts[0].sequences},
                     {k: [s for p in parts for s in p.dates[k]] for k in parts[0].dates})


def split_files(data_dir: str, split: str) -> list[str]:
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(f"{data_dir.rstrip('/')}/{split}-*.tfrecord.gz"))
    if not files:
        raise UserError(f"{data_dir}: no {split}-*.tfrecord.gz (run `s2mos build-dataset` first)")
    return files


def read_split(data_dir: str, split: str, batch_size: int = 512) -> Split:
    """Parse every Example of a split with the spec derived from DIR/schema.pbtxt."""
    import tensorflow as tf

    try:
        spec = schema.feature_spec(schema.read_schema(data_dir))
    except (tf.errors.NotFoundError, FileNotFoundError) as err:
        raise UserError(f"{data_dir}: cannot read {schema.SCHEMA_FILE}: {err}") from err
    missing = {"point_id", "lat", "lon", "clay", "s2", "s2_length"} - set(spec)
    if missing:
        raise UserError(f"{data_dir}/{schema.SCHEMA_FILE}: missing features {sorted(missing)}")
    files = split_files(data_dir, split)
    ds = (tf.data.TFRecordDataset(files, compression_type="GZIP")
          .batch(batch_size).map(lambda x: tf.io.parse_example(x, spec)))
    ids, lat, lon, clay = [], [], [], []
    seqs: dict[str, list[np.ndarray]] = {name: [] for name in schema.SEQUENCE_CHANNELS if name in spec}
    dates: dict[str, list[np.ndarray]] = {name: [] for name in seqs if f"{name}_dates" in spec}
    for batch in ds:
        ids.extend(v.decode() for v in batch["point_id"].numpy())
        lat.append(batch["lat"].numpy())
        lon.append(batch["lon"].numpy())
        clay.append(batch["clay"].numpy())
        for name in seqs:
            n_ch = len(schema.SEQUENCE_CHANNELS[name])
            rows = tf.RaggedTensor.from_sparse(batch[name]).to_list()
            seqs[name].extend(np.asarray(r, np.float32).reshape(-1, n_ch) for r in rows)
        for name in dates:
            rows = tf.RaggedTensor.from_sparse(batch[f"{name}_dates"]).to_list()
            dates[name].extend(np.asarray(r, np.int64) for r in rows)
    return Split(np.asarray(ids), np.stack([np.concatenate(lat), np.concatenate(lon)], 1).astype(np.float32),
                 np.concatenate(clay).astype(np.float32), seqs, dates)


# ---------------------------------------------------------------- normalisation statistics

def fit_stats(calibration: Split) -> NormStats:
    """Min/max of every group over calibration points only (never the test split)."""
    groups: dict[str, MinMax] = {}
    for name, seqs in calibration.sequences.items():
        n_ch = len(schema.SEQUENCE_CHANNELS[name])
        rows = np.concatenate([s.reshape(-1, n_ch) for s in seqs]) if seqs else np.zeros((0, n_ch))
        groups[name] = MinMax.fit(rows) if len(rows) else MinMax(np.zeros(n_ch), np.zeros(n_ch))
    groups["coords"] = MinMax.fit(calibration.coords)
    groups["clay"] = MinMax.fit(calibration.clay.reshape(-1, 1))
    return NormStats(groups)


def stats_mismatch(a: NormStats, b: NormStats, rtol: float = 1e-4) -> list[str]:
    """Groups whose min/max differ between two stats (names), for a loud warning."""
    bad = []
    for key, mm in b.groups.items():
        if key not in a.groups:
            bad.append(key)
            continue
        other = a.groups[key]
        if mm.lo.shape != other.lo.shape or not (
                np.allclose(mm.lo, other.lo, rtol=rtol, atol=1e-5) and np.allclose(mm.hi, other.hi, rtol=rtol, atol=1e-5)):
            bad.append(key)
    return bad


def load_stats(data_dir: str, calibration: Split, log=print) -> NormStats:
    """stats.json beside the data (the dataset pipeline's, calibration-only) when present.

    It is checked against the stats refit on the calibration split read here; on a mismatch
    the refit stats win, so the test split can never leak into the normalisation.
    """
    import tensorflow as tf
    from s2mos_transforms.normalize import STATS_FILE

    fitted = fit_stats(calibration)
    if not tf.io.gfile.exists(f"{data_dir.rstrip('/')}/{STATS_FILE}"):
        log(f"{STATS_FILE} not found beside the data: using stats fitted on calibration")
        return fitted
    saved = NormStats.load(data_dir)
    bad = stats_mismatch(saved, fitted)
    if bad:
        log(f"warning: {STATS_FILE} disagrees with the calibration split for {bad}; "
            "using stats refitted on calibration only")
        return fitted
    return saved


# ---------------------------------------------------------------- sequences and padding

def thin_index(length: int, max_dates: int = bands.MAX_DATES) -> np.ndarray:
    """Indices of the dates kept: all when length ≤ max_dates, else max_dates spread evenly.

    A thin wrapper over `sequences.thin_index` / `sequences.select_ranks` (the one definition:
    rank round(j · (length − 1) / (max_dates − 1)), j = 0 … max_dates − 1); the serving graph's
    twin is `trainer.ensemble.thin_ranks`.
    """
    return sequences.thin_index(length, max_dates)


def pad_sequences(seqs: list[np.ndarray], n_channels: int, max_dates: int = bands.MAX_DATES
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Raw sequences → (N, max_dates, C) float32 zero-padded, and lengths (N,) int32 (≤ max_dates)."""
    out = np.zeros((len(seqs), max_dates, n_channels), np.float32)
    lengths = np.zeros(len(seqs), np.int32)
    for i, s in enumerate(seqs):
        s = np.asarray(s, np.float32).reshape(-1, n_channels)
        s = s[thin_index(len(s), max_dates)]
        out[i, :len(s)] = s
        lengths[i] = len(s)
    return out, lengths


def normalise_padded(raw: np.ndarray, lengths: np.ndarray, minmax: MinMax) -> np.ndarray:
    """Scale each channel to [−1, 1], then zero every position ≥ length (the padding)."""
    z = minmax.scale(raw.reshape(-1, raw.shape[-1])).reshape(raw.shape)
    valid = np.arange(raw.shape[1])[None, :] < np.asarray(lengths)[:, None]
    return np.where(valid[..., None], z, np.float32(0.0)).astype(np.float32)


def sequence_input(split: Split, stats: NormStats, channels: str, max_dates: int = bands.MAX_DATES
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The CNN's normalised padded sequence (N, max_dates, C) and the lengths."""
    feature, names = CHANNEL_SETS[channels]
    if feature not in split.sequences:
        raise UserError(f"the dataset has no '{feature}' sequences (needed by --channels {channels})")
    raw, lengths = pad_sequences(split.sequences[feature], len(names), max_dates)
    return normalise_padded(raw, lengths, stats[feature]), lengths


def coords_input(split: Split, stats: NormStats) -> np.ndarray:
    return stats["coords"].scale(split.coords)


def target(split: Split, stats: NormStats) -> np.ndarray:
    """Clay in [−1, 1] (the tanh output's range), shape (N,)."""
    return stats["clay"].scale(split.clay.reshape(-1, 1)).ravel()


def clay_from_target(z: np.ndarray, stats: NormStats) -> np.ndarray:
    """Inverse of `target`: model outputs back to % clay."""
    return stats["clay"].unscale(np.asarray(z, np.float64).reshape(-1, 1)).ravel()


# ---------------------------------------------------------------- baseline features

def median_composite(seqs: list[np.ndarray], n_channels: int = len(bands.S2_BANDS)) -> np.ndarray:
    """Per-band median of every bare observation, (N, C); NaN for a point without any."""
    out = np.full((len(seqs), n_channels), np.nan, np.float32)
    for i, s in enumerate(seqs):
        s = np.asarray(s, np.float32).reshape(-1, n_channels)
        if len(s):
            out[i] = np.median(s, axis=0)
    return out


def composite_features(split: Split, stats: NormStats, use_coords: bool) -> np.ndarray:
    """Normalised median S2 composite (+ normalised lat, lon): the RF/ANN baselines' input.

    A point with no bare observation gets 0 (mid-range) in every band rather than being dropped,
    so every model is scored on the same test points.
    """
    comp = stats["s2"].scale(median_composite(split.sequences["s2"]))
    comp = np.nan_to_num(comp, nan=0.0)
    return np.concatenate([comp, coords_input(split, stats)], 1) if use_coords else comp


def per_date_rows(split: Split, stats: NormStats, use_coords: bool, channels: str = "s2s1"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Appendix A input: one row per S1-paired date (12 normalised channels, + lat/lon).

    Returns (rows, point_index). A point's prediction is the mean over its dates' predictions,
    so the model sees every time step without pretending padded slots are observations.
    """
    feature, names = CHANNEL_SETS[channels]
    mm = stats[feature]
    coords = coords_input(split, stats)
    rows, owner = [], []
    for i, s in enumerate(split.sequences[feature]):
        s = np.asarray(s, np.float32).reshape(-1, len(names))
        if not len(s):
            continue
        z = mm.scale(s)
        if use_coords:
            z = np.concatenate([z, np.repeat(coords[i:i + 1], len(s), 0)], 1)
        rows.append(z)
        owner.append(np.full(len(s), i, np.int64))
    n_feat = len(names) + (2 if use_coords else 0)
    if not rows:
        return np.zeros((0, n_feat), np.float32), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.float32), np.concatenate(owner)


def mean_per_point(values: np.ndarray, point_index: np.ndarray, n_points: int, fill: float) -> np.ndarray:
    """Average row predictions per point; `fill` for points without rows."""
    total = np.bincount(point_index, weights=values, minlength=n_points)
    count = np.bincount(point_index, minlength=n_points)
    return np.where(count > 0, total / np.maximum(count, 1), fill)


# ---------------------------------------------------------------- tf.data

def make_tf_dataset(inputs: dict[str, np.ndarray], y: np.ndarray | None, batch_size: int,
                    shuffle: bool = False, seed: int = 0, drop_remainder: bool = False):
    """In-memory arrays → cached, (re)shuffled each epoch with a fixed seed, batched, prefetched."""
    import tensorflow as tf

    elements = (inputs, y.astype(np.float32).reshape(-1, 1)) if y is not None else inputs
    ds = tf.data.Dataset.from_tensor_slices(elements).cache()
    n = len(next(iter(inputs.values())))
    if shuffle:
        ds = ds.shuffle(max(n, 1), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, math.ceil(n / batch_size))


def zip_bags(datasets: list):
    """K per-bag datasets of (inputs, target) batches → one of ((inputs_0…inputs_K−1), (y_0…y_K−1)).

    Step i of the result holds batch i of every bag, each from that bag's own pipeline (its own
    seeded reshuffle each epoch), so every bag sees exactly the batches it would see alone.
    The bags must have the same number of batches (`bagging.parallel_mismatch`): a zip stops
    at the shortest.
    """
    import tensorflow as tf

    return tf.data.Dataset.zip(tuple(datasets)).map(
        lambda *bags: (tuple(b[0] for b in bags), tuple(b[1] for b in bags)))
