"""`s2mos build-dataset`: soil samples → bare-soil S1+S2 sequences → TFRecords (Apache Beam).

Steps (docs/dataset.md has the long version):

1. driver, before any work: read and validate the sample table(s) and the source
   (unreadable file / missing column → one-line error, exit 2); bad rows are rejected;
2. Beam, in parallel over batches of points: fetch observations from the Source, scene
   cloud filter → SCL mask → bare-soil test → 3σ outliers → S1 pairing → sequences;
3. Beam, global: Kennard–Stone split on the mean S2 spectrum (held-out site → test),
   min–max stats from calibration only, correlogram moments, stage counts;
4. Beam: sharded, gzipped TFRecords (Examples sorted by point_id within a shard, so
   reruns give the same bytes);
5. driver: schema, stats, rejected.jsonl, split.csv, summary.json, figures; check
   ``input = calibration + test + rejected`` on what is on disk; swap the staging
   directory into place (a rerun replaces the dataset whole).

Unknown flags go to Beam (``--runner``, ``--direct_num_workers``, ``--project``, …).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import uuid
from typing import Any

from s2mos_transforms import bands
from s2mos_transforms.errors import UserError

SUMMARY_FILE = "summary.json"
REJECTED_FILE = "rejected.jsonl"
SPLIT_FILE = "split.csv"
PARTS_DIR = "_parts"
RECORDS_PER_SHARD = 4000
DEFAULT_BATCH = 200


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", required=True, metavar="PATH",
                        help="sample table, CSV or Parquet: point_id, lat, lon, clay (LUCAS names accepted)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory (replaced whole on rerun)")
    parser.add_argument("--ndvi-max", type=float, default=bands.NDVI_MAX,
                        help=f"bare soil: NDVI below this (default {bands.NDVI_MAX})")
    parser.add_argument("--nbr2-max", type=float, default=bands.NBR2_MAX,
                        help=f"bare soil: NBR2 below this (default {bands.NBR2_MAX})")
    parser.add_argument("--scene-cloud-max", type=float, default=bands.SCENE_CLOUD_MAX_PCT,
                        help=f"keep S2 scenes with cloud %% below this (default {bands.SCENE_CLOUD_MAX_PCT:g})")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of the samples put in test by Kennard–Stone (default 0.2)")
    parser.add_argument("--holdout-samples", metavar="PATH",
                        help="independent sample table (another site): all its points go to test")
    parser.add_argument("--shards", type=int, default=None,
                        help=f"TFRecord shards per split (default: one per {RECORDS_PER_SHARD} points)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"points per source request (default {DEFAULT_BATCH})")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success (summary.json has it all)")
    from s2mos_transforms import sources
    sources.add_source_arguments(parser, sources.POINTS)


# -- argument and input checks (driver, before any work) --------------------------------------

def _check_args(args) -> None:
    if not 0.0 <= args.test_fraction < 1.0:
        raise UserError(f"--test-fraction must be in [0, 1), got {args.test_fraction:g}")
    if not -1.0 < args.ndvi_max <= 1.0:
        raise UserError(f"--ndvi-max must be in (-1, 1], got {args.ndvi_max:g}")
    if not -1.0 < args.nbr2_max <= 1.0:
        raise UserError(f"--nbr2-max must be in (-1, 1], got {args.nbr2_max:g}")
    if not 0.0 < args.scene_cloud_max <= 100.0:
        raise UserError(f"--scene-cloud-max must be in (0, 100], got {args.scene_cloud_max:g}")
    if args.shards is not None and not 1 <= args.shards <= 10_000:
        raise UserError(f"--shards must be between 1 and 10000, got {args.shards}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")


def _source_spec(args) -> tuple[str, dict[str, Any], list[str]]:
    """Build the source once on the driver to fail early; returns (name, options, notes)."""
    from s2mos_transforms import sources

    try:
        name, options = sources.resolve_source(args, sources.POINTS)
        source = sources.create(name, options)
    except sources.SourceError as err:
        raise UserError(str(err)) from None
    return name, options, list(getattr(source, "notes", []))


def _is_remote(path: str) -> bool:
    return "://" in path


def _prepare_output(out: str) -> str:
    """Check the output location and create a fresh staging sibling; returns its path."""
    from apache_beam.io.filesystems import FileSystems

    out = out.rstrip("/")
    if not out:
        raise UserError("--out is empty")
    if not _is_remote(out):
        if os.path.exists(out) and not os.path.isdir(out):
            raise UserError(f"--out {out}: exists and is not a directory")
        if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, SUMMARY_FILE)):
            raise UserError(f"--out {out}: directory is not empty and holds no s2mos dataset "
                            f"(no {SUMMARY_FILE}); refusing to replace it")
        parent = os.path.dirname(os.path.abspath(out))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as err:
            raise UserError(f"--out {out}: cannot create parent directory ({err.strerror})") from None
        if not os.access(parent, os.W_OK):
            raise UserError(f"--out {out}: parent directory {parent} is not writable")
        staging = os.path.join(parent, f".{os.path.basename(out)}.staging-{uuid.uuid4().hex[:8]}")
        os.makedirs(os.path.join(staging, PARTS_DIR))
        return staging
    existing = FileSystems.match([out + "/*"])[0].metadata_list
    if existing and not FileSystems.exists(f"{out}/{SUMMARY_FILE}"):
        raise UserError(f"--out {out}: holds files but no s2mos dataset ({SUMMARY_FILE}); refusing to replace it")
    staging = f"{out}.staging-{uuid.uuid4().hex[:8]}"
    return staging


def _swap_into_place(staging: str, out: str) -> None:
    """Replace ``out`` by ``staging`` whole (never a mix of two runs)."""
    out = out.rstrip("/")
    if not _is_remote(out):
        old = None
        if os.path.exists(out):
            old = f"{staging}.old"
            os.rename(out, old)
        os.rename(staging, out)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return
    from apache_beam.io.filesystems import FileSystems
    old = [m.path for m in FileSystems.match([out + "/**"])[0].metadata_list]
    if old:
        FileSystems.delete(old)
    src = [m.path for m in FileSystems.match([staging + "/**"])[0].metadata_list]
    FileSystems.rename(src, [out + p[len(staging):] for p in src])
    rest = [m.path for m in FileSystems.match([staging + "/**"])[0].metadata_list]
    if rest:
        FileSystems.delete(rest)


# -- the pipeline ---------------------------------------------------------------------------

def build_pipeline(p, points: list[dict], staging: str, source_name: str, source_options: dict,
                   config, test_fraction: float, num_shards: int, batch_size: int) -> None:
    """Wire the Beam graph into pipeline ``p`` (see the module docstring)."""
    import apache_beam as beam
    from apache_beam.pvalue import AsSingleton

    from s2mos_transforms.dataset import transforms as dt
    from s2mos_transforms.dataset import split as split_mod

    parts = f"{staging}/{PARTS_DIR}"
    # Batches of neighbours (sorted by longitude, then latitude): sources that work per region
    # (the embedded world's orbit bands, Earth Engine tiles) serve a compact batch much faster.
    # The order of the output does not depend on this (the split follows input rows).
    spatial = sorted(points, key=lambda q: (q["lon"], q["lat"], q["origin"], q["row"]))
    batches = [spatial[i:i + batch_size] for i in range(0, len(spatial), batch_size)]
    results = (p
               | "Points" >> beam.Create(batches)
               | "Spread" >> beam.Reshuffle()
               | "Extract" >> beam.ParDo(dt.ExtractPoints(source_name, source_options, config))
               .with_outputs(dt.REJECTED, dt.COUNTS, main="kept"))
    kept = results["kept"]

    plan = (kept
            | "Digest" >> beam.Map(lambda r: r.digest())
            | "AllDigests" >> beam.combiners.ToList()
            | "Split" >> beam.Map(dt.make_plan, test_fraction))
    split_of = AsSingleton(plan | "SplitOf" >> beam.Map(lambda plan_: plan_["split"]))
    assigned = kept | "Assign" >> beam.Map(lambda r, s: (s[r.point_id], r), split_of)

    shards = (assigned
              | "KeyShard" >> beam.Map(lambda sr: ((sr[0], dt.shard_of(sr[1].point_id, num_shards)),
                                                    (sr[1].point_id, sr[1].example)))
              | "GroupShard" >> beam.GroupByKey()
              | "WriteShard" >> beam.ParDo(dt.WriteShard(staging, num_shards)))
    stats = (assigned
             | "Calibration" >> beam.Filter(lambda sr: sr[0] == split_mod.CALIBRATION)
             | "CalResult" >> beam.Map(lambda sr: sr[1])
             | "MinMax" >> beam.CombineGlobally(dt.MinMaxCombine()))
    moments = (kept
               | "PointMoments" >> beam.Map(lambda r: r.moments)
               | "Moments" >> beam.CombineGlobally(dt.MomentsCombine()))
    counts = results[dt.COUNTS] | "Counts" >> beam.CombineGlobally(dt.SumCounts())
    rejected = (results[dt.REJECTED]
                | "RejectedJson" >> beam.Map(lambda r: json.loads(r.to_json()))
                | "AllRejected" >> beam.combiners.ToList())
    shard_list = shards | "AllShards" >> beam.combiners.ToList()

    for name, pcoll in (("points", plan | "PlanPoints" >> beam.Map(lambda plan_: plan_["points"])),
                        ("stats", stats), ("moments", moments), ("counts", counts),
                        ("rejected", rejected), ("shards", shard_list)):
        _ = pcoll | f"Write_{name}" >> beam.Map(dt.write_json_to, f"{parts}/{name}.json")


# -- finalisation on the driver -------------------------------------------------------------

def _count_records(paths: list[str]) -> int:
    import tensorflow as tf

    if not paths:
        return 0
    ds = tf.data.TFRecordDataset(paths, compression_type="GZIP")
    return int(ds.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1).numpy())


def _quantiles(values: list[int]) -> dict[str, float]:
    import numpy as np

    if not values:
        return {"min": 0, "median": 0, "max": 0}
    v = np.asarray(values, np.float64)
    return {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}


def _counters(result) -> dict[str, int] | None:
    """The pipeline's Beam counters (namespace s2mos), or None where the runner has none."""
    from apache_beam.metrics.metric import MetricsFilter

    from s2mos_transforms.dataset.transforms import NAMESPACE
    try:
        found = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    except Exception:  # noqa: BLE001 — metrics are optional on some runners
        return None
    out: dict[str, int] = {}
    for c in found:
        value = c.committed if c.committed is not None else c.attempted
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return dict(sorted(out.items()))


def finalize(staging: str, args, n_input: int, row_rejections: list, config, notes: list[str],
             num_shards: int, source_options: dict, counters: dict[str, int] | None = None) -> dict[str, Any]:
    """Write the driver-side outputs into ``staging`` and check the accounting identity."""
    import numpy as np
    from apache_beam.io.filesystems import FileSystems

    from s2mos_transforms.dataset import transforms as dt
    from s2mos_transforms.dataset import figures
    from s2mos_transforms.dataset import schema
    from s2mos_transforms.normalize import MinMax, NormStats

    parts = f"{staging}/{PARTS_DIR}"

    def part(name):
        return json.loads(dt.read_bytes(f"{parts}/{name}.json"))

    points, stats_raw, moments, counts, rejected, shards = (part(n) for n in (
        "points", "stats", "moments", "counts", "rejected", "shards"))

    # Shards: write empty files for shards that received no point, so the set is fixed.
    for split_name in ("calibration", "test"):
        for k in range(num_shards):
            path = f"{staging}/{dt.shard_name(split_name, k, num_shards)}"
            if not FileSystems.exists(path):
                dt.write_tfrecords(path, [])

    schema.write_schema(staging)
    if stats_raw:
        NormStats({g: MinMax(np.asarray(v["min"], np.float64), np.asarray(v["max"], np.float64))
                   for g, v in stats_raw.items()}).save(staging)

    origin_rank = {"samples": 0, "holdout": 1}
    all_rejected = [json.loads(r.to_json()) for r in row_rejections] + rejected
    all_rejected.sort(key=lambda r: (origin_rank.get(r["origin"], 2), r["row"] or 0))
    dt.write_bytes(f"{staging}/{REJECTED_FILE}",
                   "".join(json.dumps(r) + "\n" for r in all_rejected).encode())
    split_lines = ["point_id,split,origin,row,s2_length,s2s1_length"] + [
        f"{_csv(p['point_id'])},{p['split']},{p['origin']},{p['row']},{p['s2_length']},{p['s2s1_length']}"
        for p in points]
    dt.write_bytes(f"{staging}/{SPLIT_FILE}", ("\n".join(split_lines) + "\n").encode())

    n_bare = [p["n_kept"] for p in points]
    n_paired = [p["n_paired"] for p in points]
    dt.write_bytes(f"{staging}/{figures.HISTOGRAM_FILE}",
                   figures.bare_histogram_png(n_bare, n_paired, config.max_dates))
    corr = figures.correlation_from_moments(moments["n"], moments["sum"], moments["sumsq"])
    dt.write_bytes(f"{staging}/{figures.CORRELOGRAM_FILE}",
                   figures.correlogram_png(corr, dt.CORR_VARIABLES, moments["n"]))

    # Accounting on what is on disk: every input row is in exactly one place.
    cal_files = [m.path for m in FileSystems.match([f"{staging}/calibration-*.tfrecord.gz"])[0].metadata_list]
    test_files = [m.path for m in FileSystems.match([f"{staging}/test-*.tfrecord.gz"])[0].metadata_list]
    n_cal, n_test = _count_records(sorted(cal_files)), _count_records(sorted(test_files))
    n_rej = len(all_rejected)
    planned = {s: sum(1 for p in points if p["split"] == s) for s in ("calibration", "test")}
    n_points = n_input - len(row_rejections)
    if counters is not None and (
            counters.get("points_read", 0) != n_points
            or counters.get("written_calibration", 0) != n_cal or counters.get("written_test", 0) != n_test):
        raise RuntimeError(f"accounting identity violated: Beam counters {counters} disagree with {n_points} points "
                           f"sent, calibration {n_cal} and test {n_test} on disk; the partial output is left in "
                           f"{staging}")
    if n_input != n_cal + n_test + n_rej or (n_cal, n_test) != (planned["calibration"], planned["test"]):
        raise RuntimeError(
            f"accounting identity violated: input {n_input} != calibration {n_cal} + test {n_test} + rejected "
            f"{n_rej} (planned calibration {planned['calibration']}, test {planned['test']}); "
            f"the partial output is left in {staging}")

    by_reason: dict[str, int] = {}
    for r in all_rejected:
        by_reason[r["reason"]] = by_reason.get(r["reason"], 0) + 1
    corr_clay = {name: (None if not np.isfinite(corr[0, i]) else round(float(corr[0, i]), 4))
                 for i, name in enumerate(dt.CORR_VARIABLES) if i > 0}
    summary = {
        "input_points": n_input,
        "calibration": n_cal,
        "test": n_test,
        "rejected": n_rej,
        "rejected_by_reason": dict(sorted(by_reason.items())),
        "test_from_holdout": sum(1 for p in points if p["origin"] == "holdout"),
        "inputs": {"samples": args.samples, "holdout_samples": args.holdout_samples, "source": args.source,
                   **source_options},
        "thresholds": config.as_dict(),
        "test_fraction": args.test_fraction,
        "observations": {**counts,
                         "bare_fraction": round(counts["bare"] / counts["clear"], 4) if counts["clear"] else None},
        "bare_per_point": _quantiles(n_bare),
        "paired_per_point": _quantiles(n_paired),
        "s2_length": _quantiles([p["s2_length"] for p in points]),
        "s2s1_length": _quantiles([p["s2s1_length"] for p in points]),
        "points_capped": sum(1 for n in n_bare if n > config.max_dates),
        "correlation_with_clay": corr_clay,
        "shards_per_split": num_shards,
        "notes": notes,
        "beam_counters": counters,
        "files": {"calibration": [os.path.basename(p) for p in sorted(cal_files)],
                  "test": [os.path.basename(p) for p in sorted(test_files)],
                  "schema": schema.SCHEMA_FILE, "stats": "stats.json" if stats_raw else None,
                  "rejected": REJECTED_FILE, "split": SPLIT_FILE,
                  "figures": [figures.HISTOGRAM_FILE, figures.CORRELOGRAM_FILE]},
    }
    dt.write_json(f"{staging}/{SUMMARY_FILE}", summary)
    leftovers = [m.path for m in FileSystems.match([f"{parts}/*"])[0].metadata_list]
    if leftovers:
        FileSystems.delete(leftovers)
    if not _is_remote(staging):
        shutil.rmtree(f"{staging}/{PARTS_DIR}", ignore_errors=True)
    return summary


def _csv(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


def _print_summary(summary: dict, out: str, seconds: float) -> None:
    reasons = ", ".join(f"{k} {v}" for k, v in summary["rejected_by_reason"].items()) or "none"
    obs = summary["observations"]
    print(f"build-dataset: {summary['input_points']} input points -> calibration {summary['calibration']}, "
          f"test {summary['test']}, rejected {summary['rejected']} ({reasons})")
    bpp = summary["bare_per_point"]
    print(f"  bare observations per point: min {bpp['min']}, median {bpp['median']:g}, max {bpp['max']}; "
          f"bare fraction of clear observations {obs['bare_fraction']}")
    for note in summary["notes"]:
        print(f"  note: {note}")
    print(f"  wrote {out}/ (TFRecords, schema.pbtxt, stats.json, rejected.jsonl, split.csv, summary.json, "
          f"figures) in {seconds:.1f} s")


def build(args, extra: list[str]) -> dict[str, Any]:
    """Run the whole build; returns the summary (also written to OUT/summary.json)."""
    _check_args(args)
    from s2mos_transforms import beam_options
    from s2mos_transforms.masks import MaskThresholds
    from s2mos_transforms.dataset.samples import read_sample_tables
    from s2mos_transforms.sequences import ExtractConfig

    start = time.time()
    points_df, row_rejections, n_input = read_sample_tables(args.samples, args.holdout_samples)
    source_name, source_options, notes = _source_spec(args)
    options = beam_options.pipeline_options(extra, "build-dataset")
    config = ExtractConfig(thresholds=MaskThresholds(scene_cloud_max=args.scene_cloud_max,
                                                     ndvi_max=args.ndvi_max, nbr2_max=args.nbr2_max))
    n_valid = len(points_df)
    num_shards = args.shards or max(1, math.ceil(n_valid / RECORDS_PER_SHARD))
    files = {"samples": args.samples, "holdout": args.holdout_samples}
    points = [{"point_id": r.point_id, "lat": float(r.lat), "lon": float(r.lon), "clay": float(r.clay),
               "origin": r.origin, "row": int(r.row), "file": files[r.origin]}
              for r in points_df.itertuples(index=False)]

    staging = _prepare_output(args.out)
    import apache_beam as beam
    try:
        p = beam.Pipeline(options=options)
        build_pipeline(p, points, staging, source_name, source_options, config,
                       args.test_fraction, num_shards, args.batch_size)
        result = p.run()
        result.wait_until_finish()
        counters = _counters(result)
        summary = finalize(staging, args, n_input, row_rejections, config, notes, num_shards, source_options,
                           counters)
    except RuntimeError as err:
        if "accounting identity" in str(err):
            raise
        _remove(staging)
        raise
    except BaseException:
        _remove(staging)
        raise
    _swap_into_place(staging, args.out)
    summary["seconds"] = round(time.time() - start, 2)
    return summary


def _remove(path: str) -> None:
    if _is_remote(path):
        from apache_beam.io.filesystems import FileSystems
        found = [m.path for m in FileSystems.match([path + "/**"])[0].metadata_list]
        if found:
            FileSystems.delete(found)
    else:
        shutil.rmtree(path, ignore_errors=True)


def run(args, extra: list[str]) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")      # TensorFlow's C++ start-up chatter
    summary = build(args, extra)
    if not args.quiet:
        _print_summary(summary, args.out.rstrip("/"), summary["seconds"])
    if summary["calibration"] == 0:
        print(f"s2mos: warning: no point reached the calibration set; see {args.out.rstrip('/')}/{REJECTED_FILE}",
              file=sys.stderr)
        return 1
    return 0
