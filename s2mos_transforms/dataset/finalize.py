"""The last step of `s2mos build-dataset`: the parts of the Beam run → the dataset's files.

It runs inside the job (`dataset.finish`, the graph's ``FinishDataset`` step), so a job that
nobody waits for (a Flex Template launch) still leaves a finished dataset.

Reads the small JSON parts of `dataset.pipeline` from ``staging/_parts/``, fills in empty
shards, and writes the schema, stats, ``rejected.jsonl``, ``split.csv``, figures and
``summary.json``. Before the summary it checks the accounting identity on what is on disk
(``input = calibration + test + rejected``, and the job's own tallies agree), so a dataset that
lost or doubled a point is never swapped into place.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any

from s2mos_transforms import fileio
from s2mos_transforms.dataset.pipeline import PARTS_DIR

SUMMARY_FILE = "summary.json"
REJECTED_FILE = "rejected.jsonl"
SPLIT_FILE = "split.csv"


class AccountingError(RuntimeError):
    """The files on disk do not account for every input row; the staging copy is kept."""


def beam_counters(result) -> dict[str, int] | None:
    """The pipeline's Beam counters (namespace s2mos), or None where the runner has none."""
    from apache_beam.metrics.metric import MetricsFilter

    from s2mos_transforms.beam_options import METRICS_NAMESPACE
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 — metrics are optional on some runners
        return None
    out: dict[str, int] = {}
    for c in found:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return dict(sorted(out.items()))


def count_records(paths: list[str]) -> tuple[int, int]:
    """(Examples, Examples with an empty paired sequence) in gzipped TFRecord files, counted
    by reading them back (one file at a time, through a local copy when remote: TensorFlow
    itself knows only some schemes)."""
    import tensorflow as tf
    from s2mos_transforms import fileio

    spec = {"s2s1_length": tf.io.FixedLenFeature([], tf.int64)}
    total = unpaired = 0
    for path in paths:
        with fileio.local_copy(path) as local:
            ds = (tf.data.TFRecordDataset([local], compression_type="GZIP")
                  .map(lambda r: tf.cast(tf.io.parse_single_example(r, spec)["s2s1_length"] == 0, tf.int64)))
            n, zero = ds.reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
                                lambda acc, z: (acc[0] + 1, acc[1] + z))
            total += int(n.numpy())
            unpaired += int(zero.numpy())
    return total, unpaired


def quantiles(values: list[int]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"min": 0, "median": 0, "max": 0}
    v = np.asarray(values, np.float64)
    return {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}


def part_tallies(points: list[dict], rejected: list[dict], shards: list[dict]) -> dict[str, int]:
    """What the job itself says it did, from its parts: points read (kept + rejected by the
    per-point stage), kept points with and without an S1 pair, and Examples written per split
    (each shard writer's own count)."""
    written = {"calibration": 0, "test": 0}
    for shard in shards:
        written[shard["split"]] = written.get(shard["split"], 0) + int(shard["records"])
    without = sum(1 for p in points if p["s2s1_length"] == 0)
    return {"points_read": len(points) + len(rejected),
            "points_with_s1_pair": len(points) - without, "points_without_s1_pair": without,
            "written_calibration": written["calibration"], "written_test": written["test"]}


def check_counters(summary: dict[str, Any], counters: dict[str, int] | None, where: str) -> None:
    """After a run the launcher waited for: the runner's Beam counters must agree with the
    finished dataset's summary (a retried bundle counted twice or a point lost would not)."""
    if counters is None:
        return
    expected = {"points_read": summary["points_sent"], "points_kept": summary["calibration"] + summary["test"],
                "points_with_s1_pair": summary["points_with_s1_pair"],
                "points_without_s1_pair": summary["points_without_s1_pair"],
                "written_calibration": summary["calibration"], "written_test": summary["test"]}
    wrong = {k: (counters.get(k, 0), v) for k, v in expected.items() if counters.get(k, 0) != v}
    if wrong:
        raise AccountingError(f"accounting identity violated: Beam counters disagree with the dataset at {where} "
                              + ", ".join(f"{k} {got} != {want}" for k, (got, want) in wrong.items()))


def csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def finalize(staging: str, inputs: dict[str, Any], test_fraction: float, n_input: int,
             row_rejections: list[dict[str, Any]], config, notes: list[str], num_shards: int,
             require_s1_pair: bool = False) -> dict[str, Any]:
    """Write the dataset's own files into ``staging``, check the accounting identity, and
    return the summary (also ``staging/summary.json``). ``inputs`` is recorded as given;
    ``row_rejections`` are the JSON records of the rows refused before the pipeline;
    ``require_s1_pair`` is the inclusion rule the job applied (recorded, and checked: with
    it no kept point may lack an S1 pair)."""
    import numpy as np

    from s2mos_transforms.dataset import transforms as dt
    from s2mos_transforms.dataset import figures
    from s2mos_transforms.dataset import schema
    from s2mos_transforms.normalize import MinMax, NormStats

    parts = f"{staging}/{PARTS_DIR}"

    def part(name):
        return json.loads(fileio.read_bytes(f"{parts}/{name}.json"))

    points, stats_raw, moments, counts, rejected, shards = (part(n) for n in (
        "points", "stats", "moments", "counts", "rejected", "shards"))

    # Shards: write empty files for shards that received no point, so the set is fixed.
    for split_name in ("calibration", "test"):
        for k in range(num_shards):
            path = f"{staging}/{dt.shard_name(split_name, k, num_shards)}"
            if not fileio.exists(path):
                dt.write_tfrecords(path, [])

    schema.write_schema(staging)
    if stats_raw:
        NormStats({g: MinMax(np.asarray(v["min"], np.float64), np.asarray(v["max"], np.float64))
                   for g, v in stats_raw.items()}).save(staging)

    origin_rank = {"samples": 0, "holdout": 1}
    all_rejected = list(row_rejections) + rejected
    all_rejected.sort(key=lambda r: (origin_rank.get(r["origin"], 2), r["row"] or 0))
    fileio.write_bytes(f"{staging}/{REJECTED_FILE}",
                       "".join(json.dumps(r) + "\n" for r in all_rejected).encode())
    split_lines = ["point_id,split,origin,row,s2_length,s2s1_length"] + [
        f"{csv_field(p['point_id'])},{p['split']},{p['origin']},{p['row']},{p['s2_length']},{p['s2s1_length']}"
        for p in points]
    fileio.write_bytes(f"{staging}/{SPLIT_FILE}", ("\n".join(split_lines) + "\n").encode())

    n_bare = [p["n_kept"] for p in points]
    n_paired = [p["n_paired"] for p in points]
    fileio.write_bytes(f"{staging}/{figures.HISTOGRAM_FILE}",
                       figures.bare_histogram_png(n_bare, n_paired, config.max_dates))
    corr = figures.correlation_from_moments(moments["n"], moments["sum"], moments["sumsq"])
    fileio.write_bytes(f"{staging}/{figures.CORRELOGRAM_FILE}",
                       figures.correlogram_png(corr, dt.CORR_VARIABLES, moments["n"]))

    # Accounting on what is on disk: every input row is in exactly one place.
    cal_files = fileio.glob(f"{staging}/calibration-*.tfrecord.gz")
    test_files = fileio.glob(f"{staging}/test-*.tfrecord.gz")
    (n_cal, cal_unpaired), (n_test, test_unpaired) = count_records(cal_files), count_records(test_files)
    n_rej = len(all_rejected)
    planned = {s: sum(1 for p in points if p["split"] == s) for s in ("calibration", "test")}
    planned_unpaired = tuple(sum(1 for p in points if p["split"] == s and p["s2s1_length"] == 0)
                             for s in ("calibration", "test"))
    n_points = n_input - len(row_rejections)
    tallies = part_tallies(points, rejected, shards)
    if (tallies["points_read"] != n_points
            or tallies["written_calibration"] != n_cal or tallies["written_test"] != n_test
            or planned_unpaired != (cal_unpaired, test_unpaired)
            or (require_s1_pair and tallies["points_without_s1_pair"])):
        raise AccountingError(f"accounting identity violated: the job's tallies {tallies} disagree with {n_points} "
                              f"points sent, calibration {n_cal} and test {n_test} on disk ({cal_unpaired} and "
                              f"{test_unpaired} of them without an S1 pair, require_s1_pair={require_s1_pair}); "
                              f"the partial output is left in {staging}")
    if n_input != n_cal + n_test + n_rej or (n_cal, n_test) != (planned["calibration"], planned["test"]):
        raise AccountingError(
            f"accounting identity violated: input {n_input} != calibration {n_cal} + test {n_test} + rejected "
            f"{n_rej} (planned calibration {planned['calibration']}, test {planned['test']}); "
            f"the partial output is left in {staging}")

    by_reason: dict[str, int] = {}
    for r in all_rejected:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
    corr_clay = {name: (None if not np.isfinite(corr[0, i]) else round(float(corr[0, i]), 4))
                 for i, name in enumerate(dt.CORR_VARIABLES) if i > 0}
    if stats_raw and not any(p["s2s1_length"] for p in points if p["split"] == "calibration"):
        notes = list(notes) + ["no calibration point has an S1-paired date: the s2s1 range in stats.json is "
                               "a 0…0 placeholder"]
    summary = {
        "input_points": n_input,
        "points_sent": n_points,
        "calibration": n_cal,
        "test": n_test,
        "rejected": n_rej,
        "require_s1_pair": bool(require_s1_pair),
        "points_with_s1_pair": n_cal + n_test - cal_unpaired - test_unpaired,
        "points_without_s1_pair": cal_unpaired + test_unpaired,
        "s1_pair_by_split": {"calibration": {"with": n_cal - cal_unpaired, "without": cal_unpaired},
                             "test": {"with": n_test - test_unpaired, "without": test_unpaired}},
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "test_from_holdout": sum(1 for p in points if p["origin"] == "holdout"),
        "inputs": inputs,
        "thresholds": config.as_dict(),
        "test_fraction": test_fraction,
        "observations": {**counts,
                         "bare_fraction": round(counts["bare"] / counts["clear"], 4) if counts["clear"] else None},
        "bare_per_point": quantiles(n_bare),
        "paired_per_point": quantiles(n_paired),
        "s2_length": quantiles([p["s2_length"] for p in points]),
        "s2s1_length": quantiles([p["s2s1_length"] for p in points]),
        "points_capped": sum(1 for n in n_bare if n > config.max_dates),
        "correlation_with_clay": corr_clay,
        "shards_per_split": num_shards,
        "notes": notes,
        "job_tallies": tallies,
        "beam_counters": None,        # the runner's, added by a launcher that waits (`check_counters`)
        "files": {"calibration": [os.path.basename(p) for p in cal_files],
                  "test": [os.path.basename(p) for p in test_files],
                  "schema": schema.SCHEMA_FILE, "stats": "stats.json" if stats_raw else None,
                  "rejected": REJECTED_FILE, "split": SPLIT_FILE,
                  "figures": [figures.HISTOGRAM_FILE, figures.CORRELOGRAM_FILE]},
    }
    dt.write_json(f"{staging}/{SUMMARY_FILE}", summary)
    for leftover in fileio.glob(f"{parts}/*"):
        fileio.remove(leftover)
    if not fileio.is_remote(staging):
        shutil.rmtree(f"{staging}/{PARTS_DIR}", ignore_errors=True)
    return summary
