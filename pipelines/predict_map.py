"""`s2mos predict-map`: clay maps from a trained ensemble, as Cloud Optimized GeoTIFFs (Beam).

Launcher, in this order, each failing in one line before any work: the Beam flags
(`beam_options.pipeline_options`; ``--gpu TYPE`` adds Dataflow's
GPU worker accelerator and machine type), the numeric flags and `--out`, the model (its metadata
carries the extraction settings the map must use, `maps.config.resolve_extraction`), the AOI,
dates and source coverage. Then the plan (`maps.plan`: compact row ranges per UTM zone,
counted without listing tiles); `--dry-run` prints it and stops. Otherwise the pipeline
(`maps.pipeline.PredictMap`: PlanTiles → PrepareStacks → PredictTiles → WriteCOGs, +
WriteManifest), then on the launcher VRTs, mosaic (small AOIs), quicklook, STAC Item,
summary and, on the embedded world, the map report.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time

from s2mos_transforms.errors import UserError


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", help="trained model directory (with ensemble/); with --dry-run optional")
    aoi = parser.add_argument_group("area of interest (one of --aoi / --bbox, or a --preset's AOI)")
    aoi.add_argument("--aoi", help="GeoJSON file (local or gs://): Polygon/MultiPolygon, Feature(Collection)")
    aoi.add_argument("--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"), help="WGS84 bounding box")
    parser.add_argument("--start", help="first date (ISO, inclusive; default: the preset's)")
    parser.add_argument("--end", help="last date (ISO, inclusive; default: the preset's)")
    parser.add_argument("--out", help="output directory (local or gs://); required unless --dry-run")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (tiles, pixels, estimated core-hours and output size) and stop")
    parser.add_argument("--tile-size", type=int, default=256, help="tile size in pixels (default 256)")
    parser.add_argument("--resolution", type=float, default=10.0, metavar="M",
                        help="pixel size in metres (default 10, Sentinel-2's); coarser maps take each "
                             "pixel's sequence at its centre, for quick regional overviews")
    parser.add_argument("--min-obs", type=int, default=1,
                        help="pixels with fewer bare observations are nodata (default 1)")
    parser.add_argument("--mosaic-max-tiles", type=int, default=64,
                        help="write one mosaic COG when the AOI has at most this many tiles (default 64)")
    parser.add_argument("--batch-size", type=int, default=2048, help="pixels per model call (default 2048)")
    parser.add_argument("--max-batch-pixels", type=int, default=131072,
                        help="pixels of tiles batched into one RunInference call (default 131072)")
    parser.add_argument("--inference", choices=("fast", "padded"), default="fast",
                        help="fast: conv stack on the real dates only (same numbers); padded: the SavedModel")
    parser.add_argument("--no-report", action="store_true", help="skip the map report on the embedded world")
    from s2mos_transforms.beam_options import GPUS
    parser.add_argument("--gpu", choices=tuple(GPUS), metavar="TYPE",
                        help="Dataflow GPU workers of this type (" + ", ".join(GPUS) + "): adds the worker "
                             "accelerator service option and a matching machine type unless --machine_type is given")
    parser.add_argument("--gpu-count", type=int, default=1, metavar="N",
                        help="GPUs per Dataflow worker with --gpu (default 1)")
    ex = parser.add_argument_group(
        "extraction settings (default: the model's own, those of the dataset it was trained on; "
        "a different value is refused unless --override-extraction)")
    ex.add_argument("--ndvi-max", type=float, help="bare soil: NDVI below this")
    ex.add_argument("--nbr2-max", type=float, help="bare soil: NBR2 below this")
    ex.add_argument("--scene-cloud-max", type=float, help="S2 scenes with less cloud than this (%%)")
    ex.add_argument("--s1-pair-max-days", type=float, help="S1 acquisition at most this many days from the S2 date")
    ex.add_argument("--override-extraction", action="store_true",
                    help="map with the values given although the model was trained with others (a warning)")
    from s2mos_transforms import sources
    sources.add_source_arguments(parser, sources.TILES)


def _iso_date(text: str, flag: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except (TypeError, ValueError):
        raise UserError(f"{flag} must be an ISO date (YYYY-MM-DD), got {text!r}") from None


def _check_numbers(args: argparse.Namespace) -> None:
    if args.tile_size < 16 or args.tile_size > 4096:
        raise UserError(f"--tile-size must be between 16 and 4096 pixels, got {args.tile_size}")
    if not 10.0 <= args.resolution <= 10_000.0:
        raise UserError(f"--resolution must be between 10 and 10000 metres, got {args.resolution:g}")
    if args.min_obs < 1:
        raise UserError(f"--min-obs must be ≥ 1, got {args.min_obs}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be ≥ 1, got {args.batch_size}")


def _model(args: argparse.Namespace) -> tuple[tuple[str, ...], dict | None, str | None]:
    """(channels, recorded extraction or None, why there is no model or None).

    A real run needs the trained ensemble. A dry run only reads the metadata, without
    TensorFlow, and plans with the paper's defaults when there is none to read.
    """
    from s2mos_transforms import bands, fileio
    from trainer import model_dir

    if not args.dry_run:
        if not args.model_dir:
            raise UserError("--model-dir is required (only --dry-run plans without a model)")
        problem = model_dir.check_model_dir(args.model_dir)
        if problem:
            raise UserError(problem)
        meta = model_dir.read_meta(args.model_dir)
        return meta.channels, meta.extraction, None
    if not args.model_dir:
        return bands.CHANNELS_S2S1, None, "no --model-dir"
    path = f"{model_dir.ensemble_dir(args.model_dir)}/{model_dir.MODEL_META}"
    try:
        raw = fileio.read_json(path)
    except Exception as err:  # noqa: BLE001 — any unreadable metadata: plan without it
        return bands.CHANNELS_S2S1, None, f"no model metadata at {path} ({type(err).__name__})"
    return tuple(raw.get("channels", bands.CHANNELS_S2S1)), raw.get("extraction"), None


def resolve(args: argparse.Namespace):
    """Validate every input (one-line UserError) → (MapConfig, aoi polygon, source, preset | None,
    warning lines)."""
    from s2mos_transforms import fileio, sources
    from s2mos_transforms.maps import config as map_config
    from s2mos_transforms.maps import tiling

    _check_numbers(args)
    if not args.dry_run:
        if not args.out:
            raise UserError("--out is required (only --dry-run runs without it)")
        fileio.check_writable(args.out, "--out")
    channels, recorded, no_model = _model(args)
    given = {k: getattr(args, k) for k in map_config.EXTRACTION_FLAGS}
    if no_model:
        extraction, origin, warnings = map_config.resolve_extraction(None, given, override=True)
        origin, warnings = f"the paper's defaults and the flags given ({no_model}; dry run)", []
    else:
        extraction, origin, warnings = map_config.resolve_extraction(recorded, given, args.override_extraction)
    preset = None
    if args.preset or args.source == "synthetic":
        from s2mos_transforms.world.presets import get_preset
        preset = get_preset(args.preset or "quick")
    if args.aoi and args.bbox:
        raise UserError("give one of --aoi and --bbox, not both")
    if args.aoi:
        aoi = tiling.read_aoi(args.aoi)
    elif args.bbox:
        aoi = tiling.aoi_from_bbox(*args.bbox)
    elif args.preset:
        aoi = tiling.aoi_from_bbox(*preset.aoi_bbox)
    else:
        raise UserError("no area of interest: give --aoi FILE, --bbox W S E N or --preset NAME")
    start = _iso_date(args.start or (preset.start if preset else None), "--start")
    end = _iso_date(args.end or (preset.end if preset else None), "--end")
    if start > end:
        raise UserError(f"--start {start} is after --end {end}")
    try:
        name, options = sources.resolve_source(args, sources.TILES, shared=("preset",))
        source = sources.create(name, options)
    except sources.SourceError as err:
        raise UserError(str(err)) from None
    lon, lat = tiling.sample_lonlat(aoi)
    if not bool(source.covers(lat, lon).any()):
        where = f"the '{preset.name}' world" if preset else f"the '{args.source}' source"
        raise UserError(f"the AOI (bounds {tuple(round(v, 4) for v in aoi.bounds)}) does not overlap {where}")
    config = map_config.MapConfig(
        model_dir=args.model_dir or "", out=(args.out or "").rstrip("/"), source=name, source_options=options,
        start=start, end=end, tile_size=args.tile_size, min_obs=args.min_obs, channels=tuple(channels),
        res=float(args.resolution), extraction=extraction, extraction_from=origin)
    warnings = list(warnings) + [f"note: {n}" for n in getattr(source, "notes", [])]   # per-file source notes
    return config, aoi, source, preset, warnings


def _settings_line(config) -> str:
    ex = config.extract_config().as_dict()
    return "  extraction: " + ", ".join(f"{k} {v:g}" if not isinstance(v, bool) else f"{k} {v}"
                                        for k, v in ex.items()) + f" (from {config.extraction_from})"


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from s2mos_transforms import beam_options
    from s2mos_transforms.maps import plan as map_plan
    from s2mos_transforms.maps import tiling

    options = beam_options.pipeline_options(extra, "predict-map",       # a typo in a Beam flag: first
                                            gpu=args.gpu, gpu_count=args.gpu_count)
    config, aoi, source, preset, warnings = resolve(args)
    for line in warnings:
        print(f"s2mos: {line}", file=sys.stderr)
    t0 = time.time()
    tile_plan = map_plan.plan_tiles(aoi, config.tile_size, config.res)
    planned = map_plan.summarize(tile_plan, *_source_rate(config.source))
    if not planned.tiles:
        raise UserError("the AOI covers no tile")
    head = (f"predict-map: {planned.tiles} tiles of {config.tile_size} px at {config.res:g} m, "
            f"{tiling.aoi_area_km2(aoi):,.2f} km², {config.start} … {config.end}")
    if args.dry_run:
        print(f"{head} (dry run, planned in {time.time() - t0:.1f} s; nothing written)")
        print(map_plan.format_summary(planned, config.tile_size, config.res))
        print(_settings_line(config))
        _print_source_plan(config, tile_plan, planned.tiles)
        return 0
    return _run_pipeline(args, options, config, aoi, source, preset, tile_plan, head)


def _source_rate(name: str) -> tuple[float, str]:
    """The source's measured map cost per pixel and where it comes from (`SourcePlugin`); the
    embedded world's where the source has none."""
    from s2mos_transforms import sources
    from s2mos_transforms.maps import plan as map_plan
    rate = sources.get_plugin(name).map_core_seconds_per_pixel
    if rate is None:
        return map_plan.CORE_SECONDS_PER_PIXEL, (
            f"not measured for the '{name}' source: the embedded world's rate "
            "(benchmarks/bench_map.py), its simulator standing in for the source's reads")
    return rate, f"measured for the '{name}' source (benchmarks/bench_map.py, bench_sources.py)"


# Tiles a dry run lists with their requests (the others are counted): a continental map has millions.
DRY_RUN_LISTED_TILES = 2


def _print_source_plan(config, tile_plan, n_tiles: int) -> None:
    """For a source with a `plan_tiles` hook (earthengine): the requests the map would send —
    the first tiles' grids and serialized expressions, request counts and data volume for all
    tiles — as JSON after one summary line; nothing is requested."""
    import itertools
    import json

    from s2mos_transforms import sources
    hook = sources.get_plugin(config.source).plan_tiles
    if hook is None:
        return
    tasks = (task for rng in tile_plan.ranges for task in tile_plan.tasks(rng))
    first = [task.tile for task in itertools.islice(tasks, DRY_RUN_LISTED_TILES)]
    plan = hook(first, n_tiles, config.start, config.end, config.source_options)
    if "requests" in plan:
        size = plan["estimated_bytes"]
        size = f"{size / 1e12:,.1f} TB" if size >= 1e12 else f"{size / 1e9:,.2f} GB"
        print(f"  {config.source} requests (none sent): {plan['requests']:,} ({plan['requests_per_tile']} per "
              f"tile), answers about {size}; the first {len(first)} tile(s) listed:")
    print(json.dumps(plan, indent=1))


def _run_pipeline(args, options, config, aoi, source, preset, tile_plan, head: str) -> int:
    import apache_beam as beam
    import shapely
    from s2mos_transforms.maps import finish as map_finish
    from s2mos_transforms.maps import model_handler
    from s2mos_transforms.maps import outputs as map_outputs
    from s2mos_transforms.maps import pipeline as map_pipeline

    map_outputs.claim_output(config.out, config.settings())
    print(f"{head} → {config.out}")
    print(_settings_line(config))
    handler = model_handler.ClayEnsembleHandler(config.model_dir, batch_size=args.batch_size, mode=args.inference,
                                                max_batch_pixels=args.max_batch_pixels)
    spec = map_finish.MapFinishSpec(out=config.out, aoi_wkb=shapely.to_wkb(aoi), start=config.start,
                                    end=config.end, model_dir=config.model_dir,
                                    mosaic_max_tiles=args.mosaic_max_tiles,
                                    properties={"s2mos:settings": config.settings()})
    p = beam.Pipeline(options=options)
    _ = p | "PredictMap" >> map_pipeline.PredictMap(tile_plan, config, handler, finish=spec)
    result = p.run()
    if getattr(result, "has_job", True) is False:             # a job file (--template_location), no job
        print(f"predict-map: the Dataflow job was written (--template_location), not run; a run of it maps and "
              f"finishes {config.out} by itself")
        return 0
    result.wait_until_finish()
    outputs = map_finish.read_outputs(config.out)              # the job's FinishMap wrote them
    print(map_outputs.format_summary(outputs["summary"]))
    if preset is not None and config.source == "synthetic" and not args.no_report:
        from s2mos_transforms.maps import report as map_report
        records = map_outputs.read_manifest(f"{config.out}/{map_outputs.MANIFEST}")
        report = map_report.report(config.out, records, source, aoi, config.min_obs)
        map_report.write(report, config.out)
        print(map_report.format_report(report))
    for key in ("mosaic", "vrt", "overview", "quicklook", "stac_item", "manifest"):
        if outputs.get(key):
            paths = outputs[key] if isinstance(outputs[key], list) else [outputs[key]]
            print(f"  {key}: {', '.join(paths)}")
    if outputs["summary"]["failed"]:
        print(f"  warning: {outputs['summary']['failed']} tile(s) failed; see {config.out}/{map_outputs.MANIFEST} "
              "(re-run the same command to retry them)")
    return 0
