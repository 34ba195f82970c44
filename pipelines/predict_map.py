"""`s2mos predict-map`: clay maps from a trained ensemble, as Cloud Optimized GeoTIFFs (Beam).

Launcher: check the inputs (model directory, AOI, source coverage, dates) and fail in one
line before any work; tile the AOI (UTM zone grid at 10 m). Pipeline, one element per tile:

    tiles ─ PrepareTile (source stack → masks → per-pixel sequences; skip tiles already
            written) ─ RunInference (ensemble, batched by pixels) ─ WriteTile (atomic COG)
          └ records (written / empty / failed + reason) ─ tiles.jsonl

Then, on the launcher: VRT per UTM zone, mosaic COG (small AOIs), quicklook PNG, STAC Item,
summary, and on the embedded world the map report against the true clay.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import time
from typing import Any, Iterator

from s2mos_transforms.errors import UserError

log = logging.getLogger(__name__)

TILES_DIR = "tiles"
MANIFEST = "tiles.jsonl"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model-dir", required=True, help="trained model directory (with ensemble/)")
    aoi = parser.add_argument_group("area of interest (one of --aoi / --bbox, or a --preset's AOI)")
    aoi.add_argument("--aoi", help="GeoJSON file (local or gs://): Polygon/MultiPolygon, Feature(Collection)")
    aoi.add_argument("--bbox", nargs=4, type=float, metavar=("W", "S", "E", "N"), help="WGS84 bounding box")
    parser.add_argument("--start", help="first date (ISO, inclusive; default: the preset's)")
    parser.add_argument("--end", help="last date (ISO, inclusive; default: the preset's)")
    parser.add_argument("--out", required=True, help="output directory (local or gs://)")
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
    from s2mos_transforms import sources
    sources.add_source_arguments(parser, sources.TILES)


# ------------------------------------------------------------------ configuration

@dataclasses.dataclass(frozen=True)
class MapConfig:
    """Everything a worker needs, picklable."""

    model_dir: str
    out: str
    source: str
    source_options: dict
    start: str
    end: str
    tile_size: int
    min_obs: int
    channels: tuple[str, ...]
    res: float = 10.0

    def settings(self) -> dict:
        """What a tile's content depends on: a re-run may reuse tiles only if these agree."""
        keys = ("model_dir", "source", "source_options", "start", "end", "tile_size", "res", "min_obs")
        return {k: getattr(self, k) for k in keys} | {"channels": list(self.channels)}

    def tile_path(self, name: str) -> str:
        return f"{self.out.rstrip('/')}/{TILES_DIR}/{name}.tif"


def _iso_date(text: str, flag: str) -> str:
    try:
        return dt.date.fromisoformat(text).isoformat()
    except (TypeError, ValueError):
        raise UserError(f"{flag} must be an ISO date (YYYY-MM-DD), got {text!r}") from None


def resolve(args: argparse.Namespace):
    """Validate every input (one-line UserError) → (MapConfig, aoi polygon, source, preset | None)."""
    from s2mos_transforms import sources
    from s2mos_transforms.maps import tiling
    from trainer import model_dir

    problem = model_dir.check_model_dir(args.model_dir)
    if problem:
        raise UserError(problem)
    if args.tile_size < 16 or args.tile_size > 4096:
        raise UserError(f"--tile-size must be between 16 and 4096 pixels, got {args.tile_size}")
    if not 10.0 <= args.resolution <= 10_000.0:
        raise UserError(f"--resolution must be between 10 and 10000 metres, got {args.resolution:g}")
    if args.min_obs < 1:
        raise UserError(f"--min-obs must be ≥ 1, got {args.min_obs}")
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be ≥ 1, got {args.batch_size}")
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
    meta = model_dir.read_meta(args.model_dir)
    config = MapConfig(model_dir=args.model_dir, out=args.out.rstrip("/"), source=args.source,
                       source_options=options, start=start, end=end, tile_size=args.tile_size,
                       min_obs=args.min_obs, channels=meta.channels, res=float(args.resolution))
    return config, aoi, source, preset


# ------------------------------------------------------------------ per-tile steps (pure)

def prepare_tile(task, source, config: MapConfig):
    """Source stack → per-pixel sequences of the tile's mappable pixels.

    Returns (TileInputs | None, record | None): inputs to predict, or the record of a tile
    that needs no inference (empty).
    """
    import numpy as np
    from s2mos_transforms.maps import model_handler, pixels

    tile = task.tile
    inside = task.inside_mask()
    lon, lat = tile.pixel_centres_lonlat()
    inside &= np.asarray(source.covers(lat, lon), bool)
    if not inside.any():
        return None, _record(task, "empty", reason="outside the source coverage", n_aoi=0)
    stack = source.tile_stack(tile, config.start, config.end)
    mappable = np.flatnonzero(inside.ravel())
    seqs = pixels.pixel_sequences(stack, mappable, config.channels)
    del stack
    n_obs = np.full(tile.size * tile.size, -1, np.int16)
    n_obs[mappable] = seqs.lengths
    ok = seqs.lengths >= config.min_obs
    if not ok.any():
        return None, _record(task, "empty", reason=f"no pixel with ≥ {config.min_obs} bare observations",
                             n_aoi=int(mappable.size))
    seqs = seqs.subset(ok)
    coords = pixels.coords_of(tile, seqs.pixels)
    return model_handler.TileInputs(task, seqs, coords, n_obs.reshape(tile.size, tile.size)), None


def tile_raster(pred, size: int):
    """(3, size, size) float32 bands from a TilePrediction (NODATA outside / below min-obs)."""
    import numpy as np
    from s2mos_transforms.maps import cog

    mean = np.full(size * size, cog.NODATA, np.float32)
    std = np.full(size * size, cog.NODATA, np.float32)
    mean[pred.pixels] = pred.clay_mean
    std[pred.pixels] = pred.clay_std
    n_obs = pred.n_obs.astype(np.float32)
    n_obs[pred.n_obs < 0] = cog.NODATA
    return cog.stack_bands(mean.reshape(size, size), std.reshape(size, size), n_obs)


def _record(task, status: str, reason: str = "", **extra) -> dict:
    t = task.tile
    rec = {"tile": t.name, "epsg": t.epsg, "col": t.col, "row": t.row, "size": t.size, "res": t.res,
           "status": status, "reason": reason}
    rec.update(extra)
    return rec


# ------------------------------------------------------------------ Beam transforms (thin)

def _beam():
    import apache_beam as beam
    return beam


_TRANSFORMS = ("PrepareTile", "WriteTile")


def _define_transforms() -> None:
    """Define the DoFns on first use, so importing this module (for `--help`) skips Beam."""
    beam = _beam()

    class PrepareTile(beam.DoFn):
        """Tile task → TileInputs (main output) or a manifest record (tagged 'record')."""

        RECORD = "record"

        def __init__(self, config: MapConfig, source_factory=None):
            self.config = config
            self.source_factory = source_factory
            self.source = None

        def setup(self):
            from s2mos_transforms import sources
            if self.source_factory is not None:
                self.source = self.source_factory()
            else:
                self.source = sources.create(self.config.source, self.config.source_options)

        def process(self, task) -> Iterator[Any]:
            beam = _beam()
            from s2mos_transforms.maps import cog
            path = self.config.tile_path(task.name)
            if cog.exists(path):
                beam.metrics.Metrics.counter("s2mos_map", "tiles_reused").inc()
                yield beam.pvalue.TaggedOutput(self.RECORD, _record(task, "written", reused=True, path=path))
                return
            t0 = time.time()
            try:
                inputs, record = prepare_tile(task, self.source, self.config)
            except Exception as err:  # a source error for one tile must not fail the job
                log.warning("tile %s failed: %s", task.name, err)
                beam.metrics.Metrics.counter("s2mos_map", "tiles_failed").inc()
                yield beam.pvalue.TaggedOutput(self.RECORD, _record(task, "failed", reason=_reason(err)))
                return
            if record is not None:
                record["seconds"] = round(time.time() - t0, 3)
                beam.metrics.Metrics.counter("s2mos_map", "tiles_empty").inc()
                yield beam.pvalue.TaggedOutput(self.RECORD, record)
            else:
                yield inputs

    class WriteTile(beam.DoFn):
        """TilePrediction → COG written atomically → manifest record."""

        def __init__(self, config: MapConfig):
            self.config = config

        def process(self, pred) -> Iterator[dict]:
            beam = _beam()
            import numpy as np
            from s2mos_transforms.maps import cog
            task = pred.task
            path = self.config.tile_path(task.name)
            try:
                data = tile_raster(pred, task.tile.size)
                cog.write_cog(path, data, task.tile.transform, f"EPSG:{task.tile.epsg}",
                              tags={"model_dir": self.config.model_dir, "start": self.config.start,
                                    "end": self.config.end, "min_obs": self.config.min_obs})
            except Exception as err:
                beam.metrics.Metrics.counter("s2mos_map", "tiles_failed").inc()
                yield _record(task, "failed", reason=_reason(err))
                return
            beam.metrics.Metrics.counter("s2mos_map", "tiles_written").inc()
            n_aoi = int(np.count_nonzero(pred.n_obs >= 0))
            yield _record(task, "written", reused=False, path=path, n_aoi=n_aoi, n_valid=int(pred.pixels.size),
                          clay_mean=round(float(np.mean(pred.clay_mean)), 3) if pred.pixels.size else None)

    for cls in (PrepareTile, WriteTile):
        cls.__qualname__ = cls.__name__          # picklable by reference as pipelines.predict_map.X
        cls.__module__ = __name__
        globals()[cls.__name__] = cls


def __getattr__(name: str):
    if name in _TRANSFORMS:
        if name not in globals():
            _define_transforms()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _reason(err: Exception) -> str:
    text = f"{type(err).__name__}: {err}"
    return text.splitlines()[0][:300] if text else type(err).__name__


def build_pipeline(p, tasks: list, config: MapConfig, handler, source_factory=None) -> None:
    """Wire the per-tile pipeline onto `p` (tasks are `tiling.TileTask`s).

    `source_factory` (picklable, no arguments) replaces the named source on the workers.
    """
    beam = _beam()
    from apache_beam.ml.inference.base import RunInference
    from s2mos_transforms.maps import outputs as map_outputs
    PrepareTile, WriteTile = (__getattr__(n) for n in _TRANSFORMS)

    prepared = (p
                | "Tiles" >> beam.Create(tasks)
                | "Spread" >> beam.Reshuffle()
                | "PrepareTile" >> beam.ParDo(PrepareTile(config, source_factory))
                .with_outputs(PrepareTile.RECORD, main="inputs"))
    written = (prepared.inputs
               | "Ensemble" >> RunInference(handler)
               | "WriteTile" >> beam.ParDo(WriteTile(config)))
    ((prepared[PrepareTile.RECORD], written)
     | "Records" >> beam.Flatten()
     | "All" >> beam.combiners.ToList()
     | "Manifest" >> beam.Map(map_outputs.write_manifest, f"{config.out}/{MANIFEST}"))


def run(args: argparse.Namespace, extra: list[str]) -> int:
    import apache_beam as beam
    from s2mos_transforms import beam_options
    from s2mos_transforms.maps import model_handler, tiling
    from s2mos_transforms.maps import outputs as map_outputs

    config, aoi, source, preset = resolve(args)
    options = beam_options.pipeline_options(extra, "predict-map")
    tasks = tiling.tiles_for_aoi(aoi, config.tile_size, config.res)
    if not tasks:
        raise UserError("the AOI covers no tile")
    map_outputs.claim_output(config.out, config.settings())
    print(f"predict-map: {len(tasks)} tiles of {config.tile_size} px at {config.res:g} m, "
          f"{tiling.aoi_area_km2(aoi):.2f} km², "
          f"{config.start} … {config.end} → {config.out}")
    handler = model_handler.ClayEnsembleHandler(config.model_dir, batch_size=args.batch_size, mode=args.inference,
                                                max_batch_pixels=args.max_batch_pixels)
    t0 = time.time()
    with beam.Pipeline(options=options) as p:
        build_pipeline(p, tasks, config, handler)
    elapsed = time.time() - t0
    records = map_outputs.read_manifest(f"{config.out}/{MANIFEST}")
    outputs = map_outputs.finalize(config.out, records, aoi, start=config.start, end=config.end,
                                   model_dir=config.model_dir, mosaic_max_tiles=args.mosaic_max_tiles,
                                   seconds=elapsed)
    print(map_outputs.format_summary(outputs["summary"]))
    if preset is not None and config.source == "synthetic" and not args.no_report:
        from s2mos_transforms.maps import report as map_report
        report = map_report.report(config.out, records, source, aoi, config.min_obs)
        map_report.write(report, config.out)
        print(map_report.format_report(report))
    for key in ("mosaic", "vrt", "quicklook", "stac_item", "manifest"):
        if outputs.get(key):
            paths = outputs[key] if isinstance(outputs[key], list) else [outputs[key]]
            print(f"  {key}: {', '.join(paths)}")
    if outputs["summary"]["failed"]:
        print(f"  warning: {outputs['summary']['failed']} tile(s) failed; see {config.out}/{MANIFEST} "
              "(re-run the same command to retry them)")
    return 0
