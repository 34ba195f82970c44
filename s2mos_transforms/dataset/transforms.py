"""Beam pieces of the dataset build: thin DoFns/CombineFns around the NumPy science.

Per-point work (`process_point`) is a plain function — masks, pairing, sequences — and the
DoFn only fetches observations for a batch of points from the Source (one call per batch,
much faster than one per point), counts, and routes results:

* main output: `PointResult` (the encoded Example plus the small numbers the global steps need);
* ``rejected``: `samples.Rejection` of points the source cannot serve or that have no usable
  observation;
* ``counts``: per-point stage counts (acquisitions, clear, bare …) for the summary.

Beam metrics (namespace ``s2mos``, `beam_options.METRICS_NAMESPACE`): ``points_read``,
``points_kept`` (split into ``points_with_s1_pair`` and ``points_without_s1_pair``: kept
points whose paired sequence is empty), ``rejected_<reason>``, ``written_calibration``,
``written_test``.

Whether a point with bare S2 dates but no S1 pair is kept (an empty paired sequence) or
rejected (``no_s1_pair``, the paper's rule) is a dataset inclusion rule, ``require_s1_pair``,
not an extraction setting: `sequences.ExtractConfig` (which predict-map re-applies) does not
carry it.
"""
from __future__ import annotations

import dataclasses
import json
import zlib
from typing import Any, Iterable

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from s2mos_transforms import bands, fileio, sequences
from s2mos_transforms.beam_options import METRICS_NAMESPACE
from s2mos_transforms.dataset import schema
from s2mos_transforms.dataset import split
from s2mos_transforms.dataset.samples import Rejection
from s2mos_transforms.sources import SamplePoint, SourceError

REJECTED = "rejected"
COUNTS = "counts"

# Rejection reasons of the per-point stage (row reasons live in `samples`).
OUTSIDE_COVERAGE = "outside_coverage"
NO_OBSERVATIONS = "no_observations"
NO_BARE_OBSERVATION = "no_bare_observation"
NO_S1_PAIR = "no_s1_pair"
SOURCE_ERROR = "source_error"
POINT_REASONS: tuple[str, ...] = (OUTSIDE_COVERAGE, NO_OBSERVATIONS, NO_BARE_OBSERVATION, NO_S1_PAIR,
                                  SOURCE_ERROR)

# Variables of the correlogram (paper Figure 3), in order.
CORR_VARIABLES: tuple[str, ...] = ("clay",) + bands.CHANNELS_S2S1 + ("lat", "lon")
STAGES: tuple[str, ...] = ("s2_acquisitions", "scene", "clear", "bare", "kept", "paired")


@dataclasses.dataclass
class PointResult:
    """A point that made it into the dataset, before the split is known."""

    point_id: str
    origin: str
    row: int
    lat: float
    lon: float
    clay: float
    example: bytes
    mean_s2: list[float]          # mean reflectance of the recorded S2 sequence (split feature)
    n_kept: int                   # bare dates before the cap
    n_paired: int                 # paired bare dates before the cap (0: kept without an S1 pair)
    s2_length: int
    s2s1_length: int
    s2s1_min: list[float]         # empty when the point has no paired date
    s2s1_max: list[float]
    s2_min: list[float]
    s2_max: list[float]
    moments: tuple                # (n, Σx, Σxxᵀ) over the paired dates of CORR_VARIABLES

    def digest(self) -> dict[str, Any]:
        return {"point_id": self.point_id, "origin": self.origin, "row": self.row,
                "lat": self.lat, "lon": self.lon, "clay": self.clay, "mean_s2": self.mean_s2,
                "n_kept": self.n_kept, "n_paired": self.n_paired,
                "s2_length": self.s2_length, "s2s1_length": self.s2s1_length}


def point_moments(record: dict[str, Any]) -> tuple:
    """Sufficient statistics of the correlogram over one point's paired dates."""
    seq = np.asarray(record["s2s1"], np.float64).reshape(-1, len(bands.CHANNELS_S2S1))
    n = seq.shape[0]
    x = np.empty((n, len(CORR_VARIABLES)), np.float64)
    x[:, 0] = record["clay"]
    x[:, 1:1 + seq.shape[1]] = seq
    x[:, -2] = record["lat"]
    x[:, -1] = record["lon"]
    return (n, x.sum(axis=0), x.T @ x)


def process_point(point: dict[str, Any], obs: sequences.PointObservations | None,
                  config: sequences.ExtractConfig, require_s1_pair: bool = False,
                  ) -> tuple[dict | None, Rejection | None, dict[str, int]]:
    """One point: masks → pairing → record. Returns (record, rejection, stage counts);
    exactly one of record / rejection is set. Without ``require_s1_pair`` a point whose bare
    dates have no S1 pair is kept with an empty paired sequence (S2-only data); with it, it
    is rejected (``no_s1_pair``, the paper's rule)."""
    counts = dict.fromkeys(STAGES, 0)

    def reject(reason: str, detail: str):
        return None, Rejection(point["point_id"], reason, detail, point["origin"], int(point["row"]),
                               point.get("file")), counts

    if obs is None or (obs.s2_times.size == 0 and obs.s1_times.size == 0):
        return reject(NO_OBSERVATIONS, "the source has no acquisition for this point")
    ex = obs.extract(config)
    c = ex.counts()
    counts.update(s2_acquisitions=int(obs.s2_times.size), scene=c["scene"], clear=c["clear"],
                  bare=c["bare"], kept=c["kept"], paired=c["paired"])
    funnel = (f"{obs.s2_times.size} S2 acquisitions, {c['acquired']} complete, {c['scene']} pass the scene "
              f"cloud filter, {c['clear']} clear, {c['bare']} bare, {c['kept']} after 3σ outliers")
    if c["kept"] == 0:
        return reject(NO_BARE_OBSERVATION, funnel)
    if c["paired"] == 0 and require_s1_pair:
        return reject(NO_S1_PAIR, f"{c['kept']} bare S2 dates but no S1 acquisition within "
                                  f"±{config.s1_pair_max_days:g} day of any ({obs.s1_times.size} S1 acquisitions)")
    record = sequences.point_record(point["point_id"], point["lat"], point["lon"], point["clay"], ex,
                                    config.max_dates)
    return record, None, counts


def point_result(point: dict[str, Any], record: dict[str, Any], counts: dict[str, int]) -> PointResult:
    s2 = np.asarray(record["s2"], np.float64)
    s2s1 = np.asarray(record["s2s1"], np.float64)
    return PointResult(
        point_id=record["point_id"], origin=point["origin"], row=int(point["row"]),
        lat=record["lat"], lon=record["lon"], clay=record["clay"],
        example=schema.encode_example(record),
        mean_s2=s2.mean(axis=0).tolist(), n_kept=counts["kept"], n_paired=counts["paired"],
        s2_length=int(record["s2_length"]), s2s1_length=int(record["s2s1_length"]),
        s2s1_min=s2s1.min(axis=0).tolist() if s2s1.size else [],     # [] : no paired date
        s2s1_max=s2s1.max(axis=0).tolist() if s2s1.size else [],
        s2_min=s2.min(axis=0).tolist(), s2_max=s2.max(axis=0).tolist(),
        moments=point_moments(record))


class ExtractPoints(beam.DoFn):
    """Fetch a batch of points from the Source and turn each into a record or a rejection."""

    def __init__(self, source_name: str, source_options: dict[str, Any], config: sequences.ExtractConfig,
                 require_s1_pair: bool = False):
        self._source_name = source_name
        self._source_options = dict(source_options)
        self._config = config
        self._require_s1_pair = bool(require_s1_pair)
        self._read = Metrics.counter(METRICS_NAMESPACE, "points_read")
        self._kept = Metrics.counter(METRICS_NAMESPACE, "points_kept")
        self._paired = {True: Metrics.counter(METRICS_NAMESPACE, "points_with_s1_pair"),
                        False: Metrics.counter(METRICS_NAMESPACE, "points_without_s1_pair")}
        self._rejected = {r: Metrics.counter(METRICS_NAMESPACE, f"rejected_{r}") for r in POINT_REASONS}
        self._source = None

    def setup(self):
        from s2mos_transforms import quiet, sources
        quiet.hush_worker()                  # a worker process of a quiet `s2mos`: TensorFlow loads silently
        self._source = sources.create(self._source_name, self._source_options)

    def _fetch(self, points: list[dict]) -> tuple[dict[str, sequences.PointObservations], dict[str, str]]:
        """Observations of a batch; on a SourceError retry point by point to isolate it."""
        sample = [SamplePoint(p["point_id"], p["lat"], p["lon"], p["clay"]) for p in points]
        try:
            return sequences.point_observations(self._source.observations(sample)), {}
        except SourceError:
            pass
        out, errors = {}, {}
        for sp in sample:
            try:
                out.update(sequences.point_observations(self._source.observations([sp])))
            except SourceError as err:
                errors[sp.point_id] = str(err).splitlines()[0] if str(err) else type(err).__name__
        return out, errors

    def process(self, batch: list[dict]) -> Iterable:
        self._read.inc(len(batch))
        lat = np.asarray([p["lat"] for p in batch], np.float64)
        lon = np.asarray([p["lon"] for p in batch], np.float64)
        inside = np.asarray(self._source.covers(lat, lon), bool).reshape(len(batch))
        covered = [p for p, ok in zip(batch, inside) if ok]
        obs, errors = self._fetch(covered) if covered else ({}, {})
        for p, ok in zip(batch, inside):
            if not ok:
                rej = Rejection(p["point_id"], OUTSIDE_COVERAGE,
                                f"lat={p['lat']:g}, lon={p['lon']:g} outside the {self._source_name} source",
                                p["origin"], int(p["row"]), p.get("file"))
                record, counts = None, dict.fromkeys(STAGES, 0)
            elif p["point_id"] in errors:
                rej = Rejection(p["point_id"], SOURCE_ERROR, errors[p["point_id"]], p["origin"], int(p["row"]),
                                p.get("file"))
                record, counts = None, dict.fromkeys(STAGES, 0)
            else:
                record, rej, counts = process_point(p, obs.get(p["point_id"]), self._config, self._require_s1_pair)
            yield beam.pvalue.TaggedOutput(COUNTS, counts)
            if rej is not None:
                self._rejected[rej.reason].inc()
                yield beam.pvalue.TaggedOutput(REJECTED, rej)
            else:
                self._kept.inc()
                self._paired[record["s2s1_length"] > 0].inc()
                yield point_result(p, record, counts)


# -- global steps ----------------------------------------------------------------------------

def make_plan(digests: list[dict[str, Any]], test_fraction: float) -> dict[str, Any]:
    """The split of every kept point, in a fixed order (main table rows, then held-out rows)."""
    digests = sorted(digests, key=lambda d: (d["origin"] != "samples", d["row"]))
    features = np.asarray([d["mean_s2"] for d in digests], np.float64).reshape(len(digests), len(bands.S2_BANDS))
    held_out = np.asarray([d["origin"] != "samples" for d in digests], bool)
    labels = split.assign_splits(features, held_out, test_fraction) if digests else np.zeros(0, object)
    points = [{**{k: v for k, v in d.items() if k != "mean_s2"}, "split": str(lab)}
              for d, lab in zip(digests, labels)]
    return {"points": points, "split": {p["point_id"]: p["split"] for p in points}}


def shard_of(point_id: str, num_shards: int) -> int:
    """Stable shard of a point (CRC-32 of its id; Python's hash() is salted per process)."""
    return zlib.crc32(point_id.encode()) % num_shards


def shard_name(split_name: str, shard: int, num_shards: int) -> str:
    return f"{split_name}-{shard:05d}-of-{num_shards:05d}.tfrecord.gz"


class WriteShard(beam.DoFn):
    """Write one shard: its Examples sorted by point_id, so the bytes are reproducible."""

    def __init__(self, directory: str, num_shards: int):
        self._directory = directory.rstrip("/")
        self._num_shards = num_shards
        self._written = {s: Metrics.counter(METRICS_NAMESPACE, f"written_{s}") for s in (split.CALIBRATION, split.TEST)}

    def setup(self):
        from s2mos_transforms import quiet
        quiet.hush_worker()

    def process(self, element):
        (split_name, shard), items = element
        items = sorted(items, key=lambda kv: kv[0])
        path = f"{self._directory}/{shard_name(split_name, shard, self._num_shards)}"
        write_tfrecords(path, [example for _, example in items])
        self._written[split_name].inc(len(items))
        yield {"split": split_name, "shard": shard, "records": len(items), "path": path}


def write_tfrecords(path: str, examples: Iterable[bytes]) -> None:
    """A gzipped TFRecord file at a local path or any URI `fileio` knows (written locally, then
    uploaded whole: TensorFlow itself knows only some schemes)."""
    import tensorflow as tf
    from s2mos_transforms import fileio
    with fileio.local_target(path) as local:
        with tf.io.TFRecordWriter(local, options=tf.io.TFRecordOptions(compression_type="GZIP")) as writer:
            for example in examples:
                writer.write(example)


class MinMaxCombine(beam.CombineFn):
    """Per-channel min/max of the calibration points, for `normalize.NormStats`."""

    GROUPS = {"s2s1": len(bands.CHANNELS_S2S1), "s2": len(bands.S2_BANDS), "coords": 2, "clay": 1}

    def create_accumulator(self):
        return {g: [np.full(n, np.inf), np.full(n, -np.inf)] for g, n in self.GROUPS.items()}

    def add_input(self, acc, r: PointResult):
        items = {"s2s1": (r.s2s1_min, r.s2s1_max), "s2": (r.s2_min, r.s2_max),
                 "coords": ([r.lat, r.lon], [r.lat, r.lon]), "clay": ([r.clay], [r.clay])}
        for g, (lo, hi) in items.items():
            if len(lo) == 0:                  # a point without paired dates adds nothing to s2s1
                continue
            acc[g][0] = np.minimum(acc[g][0], lo)
            acc[g][1] = np.maximum(acc[g][1], hi)
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = accs[0]
        for acc in accs[1:]:
            for g in self.GROUPS:
                out[g][0] = np.minimum(out[g][0], acc[g][0])
                out[g][1] = np.maximum(out[g][1], acc[g][1])
        return out

    def extract_output(self, acc):
        if not np.isfinite(acc["clay"][0]).all():
            return {}
        # A group no calibration point has values for (s2s1 when none has an S1 pair) gets the
        # trainer's placeholder for it, 0…0 (`trainer.data.fit_stats`), so the two agree.
        return {g: {"min": lo.tolist(), "max": hi.tolist()} if np.isfinite(lo).all()
                else {"min": [0.0] * lo.size, "max": [0.0] * hi.size} for g, (lo, hi) in acc.items()}


class MomentsCombine(beam.CombineFn):
    """Sum of (n, Σx, Σxxᵀ) over points: the correlogram over every paired observation."""

    def create_accumulator(self):
        k = len(CORR_VARIABLES)
        return [0, np.zeros(k), np.zeros((k, k))]

    def add_input(self, acc, m):
        acc[0] += m[0]
        acc[1] = acc[1] + m[1]
        acc[2] = acc[2] + m[2]
        return acc

    def merge_accumulators(self, accs):
        accs = list(accs)
        out = self.create_accumulator()
        for a in accs:
            self.add_input(out, a)
        return out

    def extract_output(self, acc):
        return {"n": int(acc[0]), "sum": acc[1].tolist(), "sumsq": acc[2].tolist()}


class SumCounts(beam.CombineFn):
    """Stage counts summed over points, plus the number of points per stage outcome."""

    def create_accumulator(self):
        return dict.fromkeys(STAGES, 0)

    def add_input(self, acc, counts):
        for k in STAGES:
            acc[k] += int(counts.get(k, 0))
        return acc

    def merge_accumulators(self, accs):
        out = self.create_accumulator()
        for a in accs:
            self.add_input(out, a)
        return out

    def extract_output(self, acc):
        return acc


def write_json(path: str, value: Any) -> str:
    """Write JSON (the dataset's compact layout: indent 1, no final newline) through fileio."""
    fileio.write_bytes(path, json.dumps(value, indent=1, sort_keys=False).encode())
    return path


def write_json_to(value: Any, path: str) -> str:
    """`write_json` with the value first, for ``beam.Map(write_json_to, path)``."""
    return write_json(path, value)
