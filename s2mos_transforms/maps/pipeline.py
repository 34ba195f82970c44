"""The predict-map Beam pipeline: named composite transforms around pure per-tile steps.

    PlanTiles      row ranges (+ the zones' projected AOIs, a side input) → TileTasks
    PrepareStacks  TileTask → source stack → masks → per-pixel sequences (TileInputs),
                   or a manifest record (reused / empty / failed)
    PredictTiles   RunInference with the ensemble (tiles batched by pixel count)
    WriteCOGs      TilePrediction → one COG per tile, written atomically → manifest record
    WriteManifest  every record → tiles.jsonl
    ZoneOverviews  every written tile → its preview → overview_<epsg>.tif per zone
    FinishMap      tiles.jsonl (+ the overviews) → VRT, mosaic, quicklook, STAC Item,
                   summary.json (in the job: a Flex Template launch never waits to do it on
                   the launcher)

`PredictMap` chains them. The source is built on the workers, in `PrepareTile.setup`, from
the config's source name and options (`sources.create`). Every counter is in the namespace
`beam_options.METRICS_NAMESPACE`.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator

import apache_beam as beam
import numpy as np
import shapely
from apache_beam.metrics import Metrics

from s2mos_transforms.beam_options import METRICS_NAMESPACE
from s2mos_transforms.maps import cog, model_handler, pixels, plan as map_plan
from s2mos_transforms.maps import finish as map_finish
from s2mos_transforms.maps import overview as map_overview
from s2mos_transforms.maps import outputs as map_outputs
from s2mos_transforms.maps.config import MapConfig
from s2mos_transforms.sources.base import StackNeeds, map_stack

log = logging.getLogger(__name__)

MANIFEST = map_outputs.MANIFEST
RECORD = "record"


# ------------------------------------------------------------------ per-tile steps (pure)

def record(task, status: str, reason: str = "", **extra) -> dict:
    """A manifest line of one tile."""
    t = task.tile
    rec = {"tile": t.name, "epsg": t.epsg, "col": t.col, "row": t.row, "size": t.size, "res": t.res,
           "status": status, "reason": reason}
    rec.update(extra)
    return rec


def reason_of(err: Exception) -> str:
    text = f"{type(err).__name__}: {err}"
    return text.splitlines()[0][:300] if text else type(err).__name__


def prepare_tile(task, source, config: MapConfig, extract=None):
    """Source stack → per-pixel sequences of the tile's mappable pixels, with the map's
    extraction settings (`extract`, default `config.extract_config()`).

    Returns (TileInputs | None, record | None): inputs to predict, or the record of a tile
    that needs no inference (empty).
    """
    extract = config.extract_config() if extract is None else extract
    tile = task.tile
    inside = task.inside_mask()
    lon, lat = tile.pixel_centres_lonlat()
    inside &= np.asarray(source.covers(lat, lon), bool)
    if not inside.any():
        return None, record(task, "empty", reason="outside the source coverage", n_aoi=0)
    stack = map_stack(source, tile, config.start, config.end, StackNeeds.of(extract))
    mappable = np.flatnonzero(inside.ravel())
    seqs = pixels.pixel_sequences(stack, mappable, config.channels, config=extract)
    del stack
    n_obs = np.full(tile.size * tile.size, -1, np.int16)
    n_obs[mappable] = seqs.lengths
    ok = seqs.lengths >= config.min_obs
    if not ok.any():
        return None, record(task, "empty", reason=f"no pixel with ≥ {config.min_obs} bare observations",
                            n_aoi=int(mappable.size))
    seqs = seqs.subset(ok)
    coords = pixels.coords_of(tile, seqs.pixels)
    return model_handler.TileInputs(task, seqs, coords, n_obs.reshape(tile.size, tile.size)), None


def tile_raster(pred, size: int) -> np.ndarray:
    """(len(cog.BAND_NAMES), size, size) float32 bands from a TilePrediction: NODATA outside the
    AOI, below min-obs, and in a band the model does not carry (NaN: no interval or AOA)."""
    per_pixel = dict(pred.bands) or {}
    per_pixel.setdefault("clay_mean", pred.clay_mean)
    per_pixel.setdefault("clay_std", pred.clay_std)
    out = np.full((len(cog.BAND_NAMES), size * size), cog.NODATA, np.float32)
    for b, name in enumerate(cog.BAND_NAMES):
        if name == "n_obs":
            out[b] = np.where(pred.n_obs.ravel() < 0, cog.NODATA, pred.n_obs.ravel().astype(np.float32))
        elif name in per_pixel:
            v = np.asarray(per_pixel[name], np.float32)
            out[b, pred.pixels] = np.where(np.isfinite(v), v, cog.NODATA)
    return out.reshape(len(cog.BAND_NAMES), size, size)


# ------------------------------------------------------------------ DoFns

class ExpandRange(beam.DoFn):
    """TileRange → its TileTasks (tiles that share area with the AOI, the AOI clipped to each).

    The zones' projected AOIs come as a side input ({epsg: WKB}), parsed once per worker.
    """

    def __init__(self, size: int, res: float):
        self.size, self.res = int(size), float(res)
        self._polys: dict[int, Any] = {}

    def setup(self):
        self._polys = {}
        self._tiles = Metrics.counter(METRICS_NAMESPACE, "map_tiles_planned")

    def process(self, rng: map_plan.TileRange, zones: dict[int, bytes]) -> Iterator[Any]:
        poly = self._polys.get(rng.epsg)
        if poly is None:
            poly = self._polys[rng.epsg] = shapely.from_wkb(zones[rng.epsg])
        for task in map_plan.expand_range(rng, poly, self.size, self.res):
            self._tiles.inc()
            yield task


class PrepareTile(beam.DoFn):
    """TileTask → TileInputs (main output) or a manifest record (tagged RECORD)."""

    def __init__(self, config: MapConfig):
        self.config = config
        self.source = None

    def setup(self):
        from s2mos_transforms import sources
        self.source = sources.create(self.config.source, self.config.source_options)
        self.extract = self.config.extract_config()
        self._reused = Metrics.counter(METRICS_NAMESPACE, "map_tiles_reused")
        self._failed = Metrics.counter(METRICS_NAMESPACE, "map_tiles_failed")
        self._empty = Metrics.counter(METRICS_NAMESPACE, "map_tiles_empty")

    def process(self, task) -> Iterator[Any]:
        path = self.config.tile_path(task.name)
        if cog.exists(path):
            self._reused.inc()
            yield beam.pvalue.TaggedOutput(RECORD, record(task, "written", reused=True, path=path))
            return
        t0 = time.time()
        try:
            inputs, rec = prepare_tile(task, self.source, self.config, self.extract)
        except Exception as err:  # a source error for one tile must not fail the job
            log.warning("tile %s failed: %s", task.name, err)
            self._failed.inc()
            yield beam.pvalue.TaggedOutput(RECORD, record(task, "failed", reason=reason_of(err)))
            return
        if rec is not None:
            rec["seconds"] = round(time.time() - t0, 3)
            self._empty.inc()
            yield beam.pvalue.TaggedOutput(RECORD, rec)
        else:
            yield inputs


class WriteTile(beam.DoFn):
    """TilePrediction → COG written atomically (tagged with the map's settings) → record."""

    def __init__(self, config: MapConfig):
        self.config = config

    def setup(self):
        self._written = Metrics.counter(METRICS_NAMESPACE, "map_tiles_written")
        self._failed = Metrics.counter(METRICS_NAMESPACE, "map_tiles_failed")

    def process(self, pred) -> Iterator[dict]:
        task = pred.task
        path = self.config.tile_path(task.name)
        try:
            data = tile_raster(pred, task.tile.size)
            cog.write_cog(path, data, task.tile.transform, f"EPSG:{task.tile.epsg}", tags=self.config.tags())
        except Exception as err:
            self._failed.inc()
            yield record(task, "failed", reason=reason_of(err))
            return
        self._written.inc()
        n_aoi = int(np.count_nonzero(pred.n_obs >= 0))
        aoa = np.asarray(pred.bands.get("aoa", []), np.float32)
        yield record(task, "written", reused=False, path=path, n_aoi=n_aoi, n_valid=int(pred.pixels.size),
                     clay_mean=round(float(np.mean(pred.clay_mean)), 3) if pred.pixels.size else None,
                     n_outside_aoa=int(np.sum(aoa == 0)) if aoa.size and np.isfinite(aoa).any() else None)


class ReadPreview(beam.DoFn):
    """A written tile's record → (zone, (col, row, preview)), the tile averaged down
    (`overview.tile_preview`); a tile that cannot be read is logged and left out."""

    def setup(self):
        self._failed = Metrics.counter(METRICS_NAMESPACE, "map_previews_failed")

    def process(self, rec: dict) -> Iterator[tuple]:
        try:
            preview = map_overview.tile_preview(rec["path"])
        except Exception as err:  # noqa: BLE001 — the overview is a view; the tile itself stands
            log.warning("tile %s: no preview (%s)", rec["tile"], reason_of(err))
            self._failed.inc()
            return
        yield (int(rec["epsg"]), int(rec["size"]), float(rec["res"])), (int(rec["col"]), int(rec["row"]), preview)


def is_written(rec: dict) -> bool:
    return rec["status"] == "written"


def write_zone_overview(item, out: str) -> str:
    (epsg, size, res), previews = item
    return map_overview.write_zone_overview(out, epsg, previews, size, res)


# ------------------------------------------------------------------ composite transforms

class PlanTiles(beam.PTransform):
    """The plan's row ranges → TileTasks, expanded on the workers and spread out."""

    def __init__(self, tile_plan: map_plan.MapPlan):
        super().__init__()
        self.plan = tile_plan

    def expand(self, pbegin):
        zones = pbegin | "ZoneAOIs" >> beam.Create(sorted(self.plan.zones.items()))
        return (pbegin
                | "Ranges" >> beam.Create(list(self.plan.ranges))
                | "SpreadRanges" >> beam.Reshuffle()
                | "ExpandRange" >> beam.ParDo(ExpandRange(self.plan.size, self.plan.res),
                                              zones=beam.pvalue.AsDict(zones))
                | "SpreadTiles" >> beam.Reshuffle())


class PrepareStacks(beam.PTransform):
    """TileTasks → (TileInputs to predict, manifest records of tiles that need no inference)."""

    def __init__(self, config: MapConfig):
        super().__init__()
        self.config = config

    def expand(self, tasks):
        out = tasks | "PrepareTile" >> beam.ParDo(PrepareTile(self.config)).with_outputs(RECORD, main="inputs")
        return out.inputs, out[RECORD]


class PredictTiles(beam.PTransform):
    """TileInputs → TilePredictions with the ensemble (`model_handler.ClayEnsembleHandler`)."""

    def __init__(self, handler):
        super().__init__()
        self.handler = handler

    def expand(self, inputs):
        from apache_beam.ml.inference.base import RunInference
        return inputs | "Ensemble" >> RunInference(self.handler)


class WriteCOGs(beam.PTransform):
    """TilePredictions → COG tiles → their manifest records."""

    def __init__(self, config: MapConfig):
        super().__init__()
        self.config = config

    def expand(self, predictions):
        return predictions | "WriteTile" >> beam.ParDo(WriteTile(self.config))


class WriteManifest(beam.PTransform):
    """Record PCollections → one sorted tiles.jsonl (collected as JSON lines, not dicts)."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def expand(self, records):
        return (records
                | "Lines" >> beam.Map(map_outputs.manifest_line)
                | "All" >> beam.combiners.ToList()
                | "Write" >> beam.Map(map_outputs.write_manifest_lines, self.path))


class ZoneOverviews(beam.PTransform):
    """Records → the paths of ``overview_<epsg>.tif``: each written tile's preview, read on
    the workers, grouped by zone (`overview.py`)."""

    def __init__(self, out: str):
        super().__init__()
        self.out = out

    def expand(self, records):
        return (records
                | "Written" >> beam.Filter(is_written)
                | "Preview" >> beam.ParDo(ReadPreview())
                | "ByZone" >> beam.GroupByKey()
                | "WriteOverview" >> beam.Map(write_zone_overview, self.out))


class FinishMap(beam.PTransform):
    """The manifest's path → VRT, mosaic, quicklook, STAC Item and summary (`maps.finish`),
    in the job itself, so a launch that never waits (a Flex Template) still ends with them;
    after the zone overviews (a side input), which a large map's quicklook is drawn from."""

    def __init__(self, spec: map_finish.MapFinishSpec):
        super().__init__()
        self.spec = spec

    def expand(self, inputs):
        manifest, overviews = inputs
        return manifest | "Finish" >> beam.Map(map_finish.finish_map, self.spec,
                                               overviews=beam.pvalue.AsList(overviews))


class PredictMap(beam.PTransform):
    """The whole map: PlanTiles → PrepareStacks → PredictTiles → WriteCOGs, + WriteManifest
    and ZoneOverviews, then (given a `MapFinishSpec`) FinishMap."""

    def __init__(self, tile_plan: map_plan.MapPlan, config: MapConfig, handler,
                 finish: map_finish.MapFinishSpec | None = None):
        super().__init__()
        self.plan, self.config, self.handler, self.finish = tile_plan, config, handler, finish

    def expand(self, pbegin):
        tasks = pbegin | "PlanTiles" >> PlanTiles(self.plan)
        inputs, skipped = tasks | "PrepareStacks" >> PrepareStacks(self.config)
        written = (inputs
                   | "PredictTiles" >> PredictTiles(self.handler)
                   | "WriteCOGs" >> WriteCOGs(self.config))
        records = (skipped, written) | "Records" >> beam.Flatten()
        manifest = records | "WriteManifest" >> WriteManifest(f"{self.config.out}/{MANIFEST}")
        if self.finish is None:
            return manifest
        overviews = records | "ZoneOverviews" >> ZoneOverviews(self.config.out)
        return (manifest, overviews) | "FinishMap" >> FinishMap(self.finish)
