"""`s2mos build-dataset`: soil samples → bare-soil S1+S2 sequences → TFRecords (Apache Beam).

This module is the command: flags, checks, run, printing. The work, step by step
(docs/dataset.md has the long version):

1. driver, before any work: the flags, the output location (`fileio.check_writable`), the
   sample table(s) and the source (unreadable file / missing column / unwritable --out →
   one-line error, exit 2); bad rows are rejected;
2. Beam (`dataset.pipeline.BuildDataset`): ``ReadSamples`` (batches of neighbours) →
   ``ExtractSequences`` (source fetch, scene cloud filter → SCL mask → bare-soil test →
   3σ outliers → S1 pairing → sequences; a point whose bare dates have no S1 pair is kept
   with an empty paired sequence, or rejected ``no_s1_pair`` with ``--require-s1-pair``,
   the paper's rule) → ``SplitAndStats`` (Kennard–Stone on the mean
   S2 spectrum, held-out site → test; min–max stats from calibration only; correlogram
   moments) → ``WriteShards`` (gzipped TFRecords, Examples sorted by point_id within a
   shard, so reruns give the same bytes); rejections and stage counts on the side;
3. Beam, the job's last step (`dataset.finish`: `dataset.finalize` + `dataset.staging`):
   schema, stats, rejected.jsonl, split.csv, summary.json, figures; check
   ``input = calibration + test + rejected`` on what is on disk; then swap the staging
   directory into place (a rerun replaces the dataset whole). It is in the job, not the
   launcher, so a Flex Template launch (which never waits) still ends with a dataset;
4. driver, when it waited: read summary.json back, check it against the Beam counters.

Unknown flags go to Beam (``--runner``, ``--direct_num_workers``, ``--project``, …).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

from s2mos_transforms import bands
from s2mos_transforms.errors import UserError

RECORDS_PER_SHARD = 4000
DEFAULT_BATCH = 200


def true_or_false(text: str) -> bool:
    """A switch that also takes a value (``--require-s1-pair=true``): Flex Template launchers
    pass every parameter as ``--NAME=VALUE``, and argparse refuses a value on a plain switch."""
    value = str(text).strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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
    parser.add_argument("--require-s1-pair", nargs="?", const=True, default=False, type=true_or_false,
                        metavar="true|false",
                        help="reject a point whose bare S2 dates have no Sentinel-1 acquisition within the pairing "
                             "window (reason no_s1_pair; the paper's rule). Default false: keep it with an empty "
                             "paired sequence (s2s1_length 0) and its S2 sequence; summary.json counts both kinds. "
                             "Alone, the flag means true (a template launch passes --require-s1-pair=true)")
    parser.add_argument("--test-fraction", type=float, default=0.2,
                        help="share of the samples put in test by Kennard–Stone (default 0.2)")
    parser.add_argument("--holdout-samples", metavar="PATH",
                        help="independent sample table (another site): all its points go to test")
    parser.add_argument("--shards", type=int, default=None,
                        help=f"TFRecord shards per split (default: one per {RECORDS_PER_SHARD} points)")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH,
                        help=f"points per source request (default {DEFAULT_BATCH})")
    parser.add_argument("--quiet", action="store_true", help="print nothing on success (summary.json has it all)")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the flags and the sample table, print the plan (points, batches and, for "
                             "sources that can tell, the requests they would send) and exit without work")
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


def _print_summary(summary: dict, out: str, seconds: float) -> None:
    reasons = ", ".join(f"{k} {v}" for k, v in summary["rejected_by_reason"].items()) or "none"
    obs = summary["observations"]
    print(f"build-dataset: {summary['input_points']} input points -> calibration {summary['calibration']}, "
          f"test {summary['test']}, rejected {summary['rejected']} ({reasons})")
    bpp = summary["bare_per_point"]
    print(f"  bare observations per point: min {bpp['min']}, median {bpp['median']:g}, max {bpp['max']}; "
          f"bare fraction of clear observations {obs['bare_fraction']}")
    by_split = summary["s1_pair_by_split"]
    if summary["require_s1_pair"]:
        print(f"  --require-s1-pair: every kept point has an S1 pair; "
              f"{summary['rejected_by_reason'].get('no_s1_pair', 0)} rejected for having none (no_s1_pair)")
    else:
        print(f"  kept points without an S1 pair (S2 sequence only, s2s1_length 0): "
              f"{summary['points_without_s1_pair']} of {summary['calibration'] + summary['test']} "
              f"(calibration {by_split['calibration']['without']}, test {by_split['test']['without']}); "
              f"--require-s1-pair rejects them")
    for note in summary["notes"]:
        print(f"  note: {note}")
    print(f"  wrote {out}/ (TFRecords, schema.pbtxt, stats.json, rejected.jsonl, split.csv, summary.json, "
          f"figures) in {seconds:.1f} s")


def dry_run(args, extra: list[str]) -> dict[str, Any]:
    """The plan of a build, without building the source, running Beam or writing anything."""
    from s2mos_transforms import beam_options, sources
    from s2mos_transforms.dataset.samples import read_sample_tables

    _check_args(args)
    beam_options.pipeline_options(extra, "build-dataset")
    points_df, row_rejections, n_input = read_sample_tables(args.samples, args.holdout_samples)
    try:
        name, options = sources.resolve_source(args, sources.POINTS)
    except sources.SourceError as err:
        raise UserError(str(err)) from None
    plan: dict[str, Any] = {"input_points": n_input, "valid_points": len(points_df),
                            "rejected_rows": len(row_rejections), "source": name, "source_options": options,
                            "require_s1_pair": bool(args.require_s1_pair),
                            "batches": math.ceil(len(points_df) / args.batch_size)}
    hook = sources.get_plugin(name).plan_points
    if hook is not None:
        points = [sources.SamplePoint(str(r.point_id), float(r.lat), float(r.lon))
                  for r in points_df.itertuples(index=False)]
        plan["source_plan"] = hook(points, options)
    return plan


def construct(args, extra: list[str]):
    """Checks, inputs and the Beam pipeline of a build, not yet run → (pipeline, staging dir).
    Everything before the first Beam bundle, so the Dataflow job a
    build would submit can be built and inspected offline (tests/test_dataflow_job.py)."""
    _check_args(args)
    import apache_beam as beam
    from s2mos_transforms import beam_options, fileio
    from s2mos_transforms.masks import MaskThresholds
    from s2mos_transforms.dataset import staging as staging_mod
    from s2mos_transforms.dataset.finish import FinishSpec
    from s2mos_transforms.dataset.pipeline import BuildDataset
    from s2mos_transforms.dataset.samples import read_sample_tables
    from s2mos_transforms.sequences import ExtractConfig

    options = beam_options.pipeline_options(extra, "build-dataset")      # a typo fails first
    fileio.check_writable(args.out.rstrip("/"), "--out")
    points_df, row_rejections, n_input = read_sample_tables(args.samples, args.holdout_samples)
    source_name, source_options, notes = _source_spec(args)
    config = ExtractConfig(thresholds=MaskThresholds(scene_cloud_max=args.scene_cloud_max,
                                                     ndvi_max=args.ndvi_max, nbr2_max=args.nbr2_max))
    n_valid = len(points_df)
    num_shards = args.shards or max(1, math.ceil(n_valid / RECORDS_PER_SHARD))
    files = {"samples": args.samples, "holdout": args.holdout_samples}
    points = [{"point_id": r.point_id, "lat": float(r.lat), "lon": float(r.lon), "clay": float(r.clay),
               "origin": r.origin, "row": int(r.row), "file": files[r.origin]}
              for r in points_df.itertuples(index=False)]
    inputs = {"samples": args.samples, "holdout_samples": args.holdout_samples, "source": args.source,
              **source_options}
    staging = staging_mod.prepare_output(args.out)
    spec = FinishSpec(staging=staging, out=args.out.rstrip("/"), inputs=inputs, test_fraction=args.test_fraction,
                      n_input=n_input, row_rejections=[json.loads(r.to_json()) for r in row_rejections],
                      config=config, notes=notes, num_shards=num_shards, require_s1_pair=args.require_s1_pair)
    try:
        p = beam.Pipeline(options=options)
        _ = p | "BuildDataset" >> BuildDataset(points, staging, source_name, source_options, config,
                                               args.test_fraction, num_shards, args.batch_size, finish=spec,
                                               require_s1_pair=args.require_s1_pair)
    except BaseException:
        staging_mod.remove(staging)
        raise
    return p, staging


def build(args, extra: list[str]) -> dict[str, Any]:
    """Run the whole build; returns the summary (also OUT/summary.json).

    The job finishes the dataset itself (its last step swaps it into --out); this only waits,
    reads the summary back and checks the Beam counters against it. With the DataflowRunner and
    ``--template_location`` Beam writes the job instead of running it: ``{"job_written": OUT}``."""
    from s2mos_transforms import fileio
    from s2mos_transforms.dataset import staging as staging_mod
    from s2mos_transforms.dataset.transforms import write_json
    from s2mos_transforms.dataset.finalize import SUMMARY_FILE, AccountingError, beam_counters, check_counters

    start = time.time()
    out = args.out.rstrip("/")
    p, staging = construct(args, extra)
    try:
        result = p.run()
        if getattr(result, "has_job", True) is False:         # a job file, no job: nothing ran yet
            if not fileio.is_remote(staging):
                staging_mod.remove(staging)
            return {"job_written": out}
        result.wait_until_finish()
    except AccountingError:
        raise                                    # the partial output stays, for inspection
    except BaseException:
        staging_mod.remove(staging)
        raise
    summary = json.loads(fileio.read_bytes(f"{out}/{SUMMARY_FILE}"))
    counters = beam_counters(result)
    check_counters(summary, counters, out)
    if counters is not None:
        summary["beam_counters"] = counters
        write_json(f"{out}/{SUMMARY_FILE}", summary)
    summary["seconds"] = round(time.time() - start, 2)
    return summary


def run(args, extra: list[str]) -> int:
    from s2mos_transforms.dataset.finalize import REJECTED_FILE

    if args.dry_run:
        plan = dry_run(args, extra)
        print(f"build-dataset (dry run, nothing requested or written): {plan['valid_points']} valid points of "
              f"{plan['input_points']} in {plan['batches']} batches from the '{plan['source']}' source")
        print(json.dumps(plan, indent=1, default=str))
        return 0

    summary = build(args, extra)
    if "job_written" in summary:
        print(f"build-dataset: the Dataflow job was written (--template_location), not run; nothing built yet "
              f"(a run of it builds and finishes {summary['job_written']} by itself)")
        return 0
    if not args.quiet:
        _print_summary(summary, args.out.rstrip("/"), summary["seconds"])
    if summary["calibration"] == 0:
        print(f"s2mos: warning: no point reached the calibration set; see {args.out.rstrip('/')}/{REJECTED_FILE}",
              file=sys.stderr)
        return 1
    return 0
