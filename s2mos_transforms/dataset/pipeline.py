"""The Beam graph of `s2mos build-dataset`, as a chain of named steps.

    ReadSamples → ExtractSequences → SplitAndStats → WriteShards
                        │ rejected, counts   │ points, stats, moments
                        └────────────────────┴──→ WritePart (one small JSON each, under _parts/)
                                                      └──→ FinishDataset (once all are written)

`BuildDataset` wires them; each step is a `beam.PTransform` around the DoFns/CombineFns of
`dataset.transforms`, which in turn wrap the NumPy science (masks, pairing, sequences,
Kennard–Stone). The last step (`dataset.finish`, in the job itself so that a launch nobody
waits for still ends with a dataset) turns the parts into the dataset's files and swaps them
into ``--out``.
Every function used inside the graph is defined at module level, so it pickles by name.
"""
from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
from apache_beam.pvalue import AsSingleton

from s2mos_transforms.dataset import finish as finish_mod
from s2mos_transforms.dataset import split as split_mod
from s2mos_transforms.dataset import transforms as dt
from s2mos_transforms.sequences import ExtractConfig

PARTS_DIR = "_parts"
# The small results the driver reads back from PARTS_DIR, one JSON file each.
PARTS: tuple[str, ...] = ("points", "stats", "moments", "counts", "rejected", "shards")


def spatial_batches(points: list[dict[str, Any]], batch_size: int) -> list[list[dict[str, Any]]]:
    """Batches of neighbours (sorted by longitude, then latitude).

    Sources that work per region (the embedded world's orbit bands, Earth Engine tiles)
    serve a compact batch much faster. The output does not depend on this order: the split
    follows input rows and shards are sorted by point_id.
    """
    spatial = sorted(points, key=lambda q: (q["lon"], q["lat"], q["origin"], q["row"]))
    return [spatial[i:i + batch_size] for i in range(0, len(spatial), batch_size)]


# -- element functions (module level: they pickle by reference) ----------------------------

def digest_of(result: dt.PointResult) -> dict[str, Any]:
    return result.digest()


def split_table(plan: dict[str, Any]) -> dict[str, str]:
    return plan["split"]


def plan_points(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return plan["points"]


def with_split(result: dt.PointResult, split_of: dict[str, str]) -> tuple[str, dt.PointResult]:
    return split_of[result.point_id], result


def is_calibration(assigned: tuple[str, dt.PointResult]) -> bool:
    return assigned[0] == split_mod.CALIBRATION


def drop_split(assigned: tuple[str, dt.PointResult]) -> dt.PointResult:
    return assigned[1]


def shard_key(assigned: tuple[str, dt.PointResult], num_shards: int) -> tuple[tuple[str, int], tuple[str, bytes]]:
    split_name, result = assigned
    return (split_name, dt.shard_of(result.point_id, num_shards)), (result.point_id, result.example)


def moments_of(result: dt.PointResult) -> tuple:
    return result.moments


def rejection_json(rejection) -> dict[str, Any]:
    return json.loads(rejection.to_json())


# -- the steps -----------------------------------------------------------------------------

class ReadSamples(beam.PTransform):
    """The validated sample points, as batches of neighbours spread over the workers."""

    def __init__(self, points: list[dict[str, Any]], batch_size: int):
        super().__init__()
        self._batches = spatial_batches(points, batch_size)

    def expand(self, pbegin):
        return (pbegin
                | "Points" >> beam.Create(self._batches)
                | "Spread" >> beam.Reshuffle())


class ExtractSequences(beam.PTransform):
    """Batches → per point: source fetch, masks, 3σ outliers, S1 pairing, sequences.

    Returns ``{"kept": PointResult, "rejected": Rejection, "counts": stage counts}``; a point
    whose bare dates have no S1 pair is kept (empty paired sequence) unless ``require_s1_pair``.
    """

    def __init__(self, source_name: str, source_options: dict[str, Any], config: ExtractConfig,
                 require_s1_pair: bool = False):
        super().__init__()
        self._extract = dt.ExtractPoints(source_name, source_options, config, require_s1_pair)

    def expand(self, batches):
        results = batches | "Extract" >> beam.ParDo(self._extract).with_outputs(dt.REJECTED, dt.COUNTS, main="kept")
        return {"kept": results["kept"], "rejected": results[dt.REJECTED], "counts": results[dt.COUNTS]}


class SplitAndStats(beam.PTransform):
    """Kept points → the Kennard–Stone split and the statistics computed over all of them.

    Returns ``{"assigned": (split, PointResult), "points": [plan rows], "stats": min–max of
    the calibration points only, "moments": correlogram sums over every kept point}``.
    """

    def __init__(self, test_fraction: float):
        super().__init__()
        self._test_fraction = test_fraction

    def expand(self, kept):
        plan = (kept
                | "Digest" >> beam.Map(digest_of)
                | "AllDigests" >> beam.combiners.ToList()
                | "Split" >> beam.Map(dt.make_plan, self._test_fraction))
        split_of = AsSingleton(plan | "SplitOf" >> beam.Map(split_table))
        assigned = kept | "Assign" >> beam.Map(with_split, split_of)
        stats = (assigned
                 | "Calibration" >> beam.Filter(is_calibration)
                 | "CalResult" >> beam.Map(drop_split)
                 | "MinMax" >> beam.CombineGlobally(dt.MinMaxCombine()))
        moments = (kept
                   | "PointMoments" >> beam.Map(moments_of)
                   | "Moments" >> beam.CombineGlobally(dt.MomentsCombine()))
        return {"assigned": assigned, "points": plan | "PlanPoints" >> beam.Map(plan_points),
                "stats": stats, "moments": moments}


class WriteShards(beam.PTransform):
    """(split, PointResult) → gzipped TFRecord shards, Examples sorted by point_id within a
    shard (reruns give the same bytes); returns the list of written shards, as one element."""

    def __init__(self, directory: str, num_shards: int):
        super().__init__()
        self._directory = directory
        self._num_shards = num_shards

    def expand(self, assigned):
        return (assigned
                | "KeyShard" >> beam.Map(shard_key, self._num_shards)
                | "GroupShard" >> beam.GroupByKey()
                | "WriteShard" >> beam.ParDo(dt.WriteShard(self._directory, self._num_shards))
                | "AllShards" >> beam.combiners.ToList())


class CountStages(beam.PTransform):
    """Per-point stage counts → one dict of totals (acquisitions, clear, bare, …)."""

    def expand(self, counts):
        return counts | "Counts" >> beam.CombineGlobally(dt.SumCounts())


class CollectRejections(beam.PTransform):
    """Rejections of the per-point stage → one list of their JSON records."""

    def expand(self, rejected):
        return (rejected
                | "RejectedJson" >> beam.Map(rejection_json)
                | "AllRejected" >> beam.combiners.ToList())


class WritePart(beam.PTransform):
    """A single-element PCollection → ``PATH`` as JSON, for the driver to read back."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, pcoll):
        return pcoll | "Write" >> beam.Map(dt.write_json_to, self._path)


class FinishDataset(beam.PTransform):
    """The parts' paths (one element each) → the finished dataset in ``--out`` → its summary."""

    def __init__(self, spec: finish_mod.FinishSpec):
        super().__init__()
        self._spec = spec

    def expand(self, written):
        return (written
                | "AllParts" >> beam.Flatten()
                | "PartsWritten" >> beam.combiners.Count.Globally()
                | "Finish" >> beam.Map(finish_mod.finish_after, self._spec))


class BuildDataset(beam.PTransform):
    """The whole graph: sample points → TFRecord shards in ``staging``, the parts
    (``staging/_parts/NAME.json``) and, with a `FinishSpec`, the finished dataset in ``--out``
    (``FinishDataset``). Returns the parts' paths and, when finished, ``"summary"``."""

    def __init__(self, points: list[dict[str, Any]], staging: str, source_name: str,
                 source_options: dict[str, Any], config: ExtractConfig, test_fraction: float,
                 num_shards: int, batch_size: int, finish: finish_mod.FinishSpec | None = None,
                 require_s1_pair: bool = False):
        super().__init__()
        self._points, self._staging, self._finish = points, staging.rstrip("/"), finish
        self._source = (source_name, source_options, config, require_s1_pair)
        self._test_fraction, self._num_shards, self._batch_size = test_fraction, num_shards, batch_size

    def expand(self, pbegin):
        extracted = (pbegin
                     | "ReadSamples" >> ReadSamples(self._points, self._batch_size)
                     | "ExtractSequences" >> ExtractSequences(*self._source))
        split = extracted["kept"] | "SplitAndStats" >> SplitAndStats(self._test_fraction)
        parts = {
            "points": split["points"],
            "stats": split["stats"],
            "moments": split["moments"],
            "counts": extracted["counts"] | "CountStages" >> CountStages(),
            "rejected": extracted["rejected"] | "CollectRejections" >> CollectRejections(),
            "shards": split["assigned"] | "WriteShards" >> WriteShards(self._staging, self._num_shards),
        }
        written = {name: parts[name] | f"Write_{name}" >> WritePart(f"{self._staging}/{PARTS_DIR}/{name}.json")
                   for name in PARTS}
        if self._finish is not None:
            written["summary"] = tuple(written.values()) | "FinishDataset" >> FinishDataset(self._finish)
        return written
