"""``earthengine``: Sentinel-2 L2A and Sentinel-1 GRD from Google Earth Engine, for sample points
(build-dataset, tune-thresholds) and map tiles (predict-map; `tile_stack`, requests in `ee_tiles`).

Per batch of points (build-dataset hands over batches of neighbours):

1. `ee_requests.plan_requests`: groups of nearby points × {S2, S1} × the date range, each
   sized under Earth Engine's value limits;
2. the requests run concurrently, at most ``--ee-max-inflight`` at a time in this process and
   this process's share of the job's ``--ee-max-rps`` started per second (`ee_limits`), each
   fetched page by page with
   ``ee.data.computeFeatures`` under the retry policy of `ee_faults` (backoff with jitter;
   too big → halved and retried; permanent → its points fail with the reason);
3. the answers are decoded into the observation record.

A batch in which some points failed raises `SourceError`; build-dataset then asks point by
point, and this source answers those from the batch it just fetched (no second request): the
failed points get their reason (``rejected.jsonl``, reason ``source_error``), the others
their observations.

Counters (requests, retries, splits, failed requests, pages, bytes) are kept on the source
(`counters`) and published as Beam counters in `beam_options.METRICS_NAMESPACE` from the
calling thread when there is a Beam context.
"""
from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Sequence

import numpy as np
import pandas as pd

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile
from s2mos_transforms.sources import ee_faults, ee_limits, ee_requests, ee_session, ee_tiles
from s2mos_transforms.sources.base import (POINTS, TILES, ImageStack, SamplePoint, SourceError, SourcePlugin,
                                           StackNeeds)
from s2mos_transforms.sources.ee_requests import Request

DEFAULT_START, DEFAULT_END = "2017-03-28", "2019-12-31"
CS_PLUS_DEFAULT = 0.6


class EarthEngineSource:
    """Observations at sample points and tile stacks from Earth Engine (module docstring)."""

    name = "earthengine"

    def __init__(self, project: str, credentials: str = "adc", endpoint: str = "highvolume",
                 start: str = DEFAULT_START, end: str = DEFAULT_END, max_inflight: int = 8,
                 max_rps: float = 20.0, points_per_request: int = 50, cloud_score_plus: bool = False,
                 cs_threshold: float = CS_PLUS_DEFAULT, max_retries: int = 6, backoff_s: float = 1.0,
                 page_size: int = 1000, deadline_s: float = 300.0, worker_processes: int = 1,
                 worker_processes_from: str = "one process"):
        self.project, self.endpoint = project, endpoint
        self.start, self.end = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        self.max_inflight, self.points_per_request, self.page_size = max_inflight, points_per_request, page_size
        self.cs_threshold = cs_threshold if cloud_score_plus else None
        self.policy = ee_faults.RetryPolicy(max_retries=max_retries, backoff_s=backoff_s)
        # --ee-max-rps is the job's: this process holds its share (`ee_limits`).
        self.process_rps = float(max_rps) / max(1, int(worker_processes))
        self.gate, self.limiter = ee_limits.process_limits(max_inflight, self.process_rps)
        self.counters = ee_faults.Counters()
        self.notes: list[str] = [ee_limits.describe(max_rps, max_inflight, max(1, int(worker_processes)),
                                                    worker_processes_from)]
        if cloud_score_plus:
            self.notes.append(f"earthengine: Cloud Score+ cs_cdf < {cs_threshold:g} counted as cloud (SCL 9)")
        self._last: tuple[pd.DataFrame, dict[str, str], set[str]] | None = None
        self._beam_counters: dict[str, Any] = {}
        ee_session.initialize(project, credentials, endpoint, deadline_s)

    # ---- Source interface -------------------------------------------------------------------
    def covers(self, lat, lon) -> np.ndarray:
        """Sentinel-1/2 cover the globe's land; Earth Engine answers with no rows elsewhere."""
        lat, lon = np.broadcast_arrays(np.asarray(lat, float), np.asarray(lon, float))
        return (np.abs(lat) <= 90.0) & (np.abs(lon) <= 180.0)

    def observations(self, points: Sequence[SamplePoint]) -> pd.DataFrame:
        points = list(points)
        ids = [p.point_id for p in points]
        if not (points and self._last is not None and set(ids) <= self._last[2]):
            self._last = self._fetch(points)
        frame, failures, _ = self._last
        failed = {i: failures[i] for i in ids if i in failures}
        self._publish()
        if failed:
            first = next(iter(failed))
            if len(points) == 1:
                raise SourceError(f"Earth Engine: {failed[first]}")
            raise SourceError(f"Earth Engine failed for {len(failed)} of {len(points)} points "
                              f"(first {first}: {failed[first]})")
        if set(ids) != self._last[2]:
            frame = frame[np.isin(frame["point_id"].to_numpy(dtype=object), np.array(ids, dtype=object))]
        return ee_requests.ordered(frame, ids)

    def tile_stack(self, tile: Tile, start: str | None = None, end: str | None = None,
                   needs: StackNeeds | None = None) -> ImageStack:
        """Every S2 and S1 acquisition touching the tile between start and end (inclusive;
        default --ee-start/--ee-end), on its exact grid (`ee_tiles`); with Cloud Score+, S2
        pixels below the threshold are cloud (SCL 9), as for points. With `needs`, the pixels
        of the acquisitions no pixel can use are not fetched (`ee_tiles.usable_meta`; counted
        as ``ee_images_skipped``). A permanent error, or one that persists after the retries,
        is a `SourceError` naming the tile."""
        first = dt.date.fromisoformat(start) if start else self.start
        last = (dt.date.fromisoformat(end) if end else self.end) + dt.timedelta(days=1)
        cs_plus = self.cs_threshold is not None
        meta, pixels = {}, {}
        try:
            for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
                expr = ee_tiles.metadata_expression(sensor, tile, first, last)
                meta[sensor] = ee_tiles.sort_meta(list(ee_requests.fetch_pages(expr, self.page_size, self._send)))
            if needs is not None:
                n_images = len(meta[bands.SENSOR_S2]) + len(meta[bands.SENSOR_S1])
                meta[bands.SENSOR_S2], meta[bands.SENSOR_S1] = ee_tiles.usable_meta(
                    meta[bands.SENSOR_S2], meta[bands.SENSOR_S1], needs)
                self.counters.inc("ee_images_skipped",
                                  n_images - len(meta[bands.SENSOR_S2]) - len(meta[bands.SENSOR_S1]))
            for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
                ids = [str(m[ee_tiles.INDEX]) for m in meta[sensor]]
                pixels[sensor] = {}
                for batch in ee_tiles.id_batches(ids, tile, sensor, cs_plus):
                    pixels[sensor].update(self._pixels(sensor, tile, first, last, batch))
        except ee_faults.Permanent as err:
            raise SourceError(f"tile {tile.name}: Earth Engine: {err}") from None
        finally:
            self._publish()
        return ee_tiles.assemble(tile, meta[bands.SENSOR_S2], pixels[bands.SENSOR_S2], meta[bands.SENSOR_S1],
                                 pixels[bands.SENSOR_S1], self.cs_threshold)

    def _pixels(self, sensor: str, tile: Tile, first: dt.date, last: dt.date, ids: list[str]) -> dict:
        """The pixel fields of `ids`, halving the request while Earth Engine says too big."""
        try:
            arr = ee_tiles.fetch_pixels(sensor, tile, first, last, ids, self._send, self.cs_threshold is not None)
            return {name: arr[name] for name in arr.dtype.names}
        except ee_faults.NeedsSplit as err:
            if len(ids) == 1:
                raise ee_faults.Permanent(f"{err} (one image per request is still too big)") from None
            self.counters.inc("ee_splits")
            mid = len(ids) // 2
            return {**self._pixels(sensor, tile, first, last, ids[:mid]),
                    **self._pixels(sensor, tile, first, last, ids[mid:])}

    # ---- fetching ------------------------------------------------------------------------
    def _fetch(self, points: list[SamplePoint]) -> tuple[pd.DataFrame, dict[str, str], set[str]]:
        """(the observations of the points that succeeded, failure reason per failed point,
        every point id asked)."""
        end = self.end + dt.timedelta(days=1)                    # --ee-end is inclusive
        reqs = ee_requests.plan_requests(points, self.start, end, self.points_per_request)
        frames, failures = [ee_requests.decode([], bands.SENSOR_S2)], {}
        # Twice as many threads as requests in flight: a thread waiting out a backoff holds
        # no slot (the gate caps what is in flight), so retries do not idle the cap.
        with ThreadPoolExecutor(max_workers=max(1, min(2 * self.max_inflight, len(reqs)))) as pool:
            for req, outcome in zip(reqs, pool.map(self._run_request, reqs)):
                for kind, payload in outcome:
                    if kind == "ok":
                        frames.append(payload)
                    else:
                        pts, reason = payload
                        for p in pts:
                            failures.setdefault(p.point_id, f"{req.sensor} request: {reason}")
        frame = pd.concat(frames, ignore_index=True)
        if failures:
            frame = frame[~np.isin(frame["point_id"].to_numpy(dtype=object), np.array(list(failures), dtype=object))]
        return frame, failures, {p.point_id for p in points}

    def _run_request(self, req: Request) -> list[tuple[str, Any]]:
        """One planned request, halved while Earth Engine says it is too big: a list of
        ("ok", frame) and ("failed", (points, reason))."""
        todo, out = [req], []
        while todo:
            r = todo.pop()
            try:
                features = list(ee_requests.fetch_pages(
                    ee_requests.expression(r, self.cs_threshold is not None), self.page_size, self._send))
                out.append(("ok", ee_requests.decode(features, r.sensor, self.cs_threshold)))
            except ee_faults.NeedsSplit as err:
                parts = r.halves()
                if parts is None:
                    out.append(("failed", (r.points, f"{err} (cannot split further)")))
                else:
                    self.counters.inc("ee_splits")
                    todo += list(parts)
            except ee_faults.Permanent as err:
                out.append(("failed", (r.points, str(err))))
        return out

    def _send(self, call) -> Any:
        page = ee_faults.call_with_retries(call, self.policy, self.counters, self.limiter, self.gate)
        self.counters.inc("ee_pages")
        size = len(page) if isinstance(page, bytes) else len(json.dumps(page, separators=(",", ":")))
        self.counters.inc("ee_bytes", size)
        return page

    def _publish(self) -> None:
        """This thread's Beam counters get the increments since the last call (a no-op
        outside a Beam worker)."""
        from apache_beam.metrics import Metrics
        from s2mos_transforms.beam_options import METRICS_NAMESPACE
        for name, n in self.counters.drain().items():
            if name not in self._beam_counters:
                self._beam_counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
            self._beam_counters[name].inc(n)


# ---- flags and options ----------------------------------------------------------------------

def _add_arguments(group) -> None:
    group.add_argument("--ee-project", metavar="PROJECT",
                       help="Google Cloud project registered for Earth Engine (required with --source earthengine)")
    group.add_argument("--ee-credentials", default="adc", metavar="adc|KEYFILE",
                       help="'adc' (Application Default Credentials; default) or the path of a service-account "
                            "key file; only the path is recorded, never the key")
    group.add_argument("--ee-endpoint", choices=sorted(ee_session.ENDPOINTS), default="highvolume",
                       help="Earth Engine endpoint (default highvolume, meant for many parallel requests)")
    group.add_argument("--ee-start", default=DEFAULT_START, metavar="DATE",
                       help=f"first acquisition date, inclusive (default {DEFAULT_START})")
    group.add_argument("--ee-end", default=DEFAULT_END, metavar="DATE",
                       help=f"last acquisition date, inclusive (default {DEFAULT_END})")
    group.add_argument("--ee-max-inflight", type=int, default=8, metavar="N",
                       help="requests in flight at once per worker process (default 8; the job may have "
                            "worker processes × N in flight: keep that under the project's ~40)")
    group.add_argument("--ee-max-rps", type=float, default=20.0, metavar="R",
                       help="requests started per second by the whole job (default 20; the project's quota "
                            "is about 100/s), shared among the worker processes the Beam flags declare")
    group.add_argument("--ee-worker-processes", type=int, default=None, metavar="N",
                       help="worker processes the job runs at once, to share --ee-max-rps among (default: from "
                            "the Beam flags: --direct_num_workers, or Dataflow's --max_num_workers × vCPUs of "
                            "--machine_type)")
    group.add_argument("--ee-points-per-request", type=int, default=50, metavar="N",
                       help="sample points per request, grouped by place (default 50)")
    group.add_argument("--ee-max-retries", type=int, default=6, metavar="N",
                       help="retries of an overloaded or failed request before its points are rejected (default 6)")
    group.add_argument("--ee-backoff", type=float, default=1.0, metavar="SECONDS",
                       help="first retry waits up to this long, doubling per retry, with jitter (default 1)")
    group.add_argument("--ee-deadline", type=float, default=300.0, metavar="SECONDS",
                       help="a request still unanswered after this long is abandoned and retried (default 300)")
    group.add_argument("--cloud-score-plus", action="store_true",
                       help="add Cloud Score+ (cs_cdf) and count S2 samples below --cloud-score-plus-threshold as cloud")
    group.add_argument("--cloud-score-plus-threshold", type=float, default=CS_PLUS_DEFAULT, metavar="T",
                       help=f"cs_cdf below this is cloud (default {CS_PLUS_DEFAULT:g})")


def _options(args) -> dict[str, Any]:
    """Plain values only (they travel to the workers and into summary.json): the key file's
    path, never its content."""
    if not getattr(args, "ee_project", None):
        raise SourceError("the 'earthengine' source needs --ee-project PROJECT")
    for flag, value in (("--ee-start", args.ee_start), ("--ee-end", args.ee_end)):
        try:
            dt.date.fromisoformat(value)
        except ValueError:
            raise SourceError(f"{flag} must be a date YYYY-MM-DD, got {value!r}") from None
    if args.ee_end < args.ee_start:
        raise SourceError(f"--ee-end {args.ee_end} is before --ee-start {args.ee_start}")
    checks = (("--ee-max-inflight", args.ee_max_inflight, 1, 100), ("--ee-max-rps", args.ee_max_rps, 0.01, 1000),
              ("--ee-points-per-request", args.ee_points_per_request, 1, 5000),
              ("--ee-max-retries", args.ee_max_retries, 0, 50), ("--ee-backoff", args.ee_backoff, 0, 600),
              ("--ee-deadline", args.ee_deadline, 1, 3600),
              ("--cloud-score-plus-threshold", args.cloud_score_plus_threshold, 0, 1))
    if args.ee_worker_processes is not None:
        checks += (("--ee-worker-processes", args.ee_worker_processes, 1, 100_000),)
    for flag, value, lo, hi in checks:
        if not lo <= value <= hi:
            raise SourceError(f"{flag} must be between {lo:g} and {hi:g}, got {value:g}")
    # The Beam flags the stage was given (pipelines/cli.py keeps them on args): the job's parallelism.
    processes, how = ee_limits.job_processes(getattr(args, "_beam_flags", None) or [], args.ee_worker_processes)
    return {"project": args.ee_project, "credentials": args.ee_credentials, "endpoint": args.ee_endpoint,
            "start": args.ee_start, "end": args.ee_end, "max_inflight": args.ee_max_inflight,
            "max_rps": args.ee_max_rps, "points_per_request": args.ee_points_per_request,
            "max_retries": args.ee_max_retries, "backoff_s": args.ee_backoff, "deadline_s": args.ee_deadline,
            "cloud_score_plus": bool(args.cloud_score_plus), "cs_threshold": args.cloud_score_plus_threshold,
            "worker_processes": processes, "worker_processes_from": how}


def _plan_points(points, options: dict[str, Any]) -> dict[str, Any]:
    """The computeFeatures requests a build would send for `points` (nothing is sent)."""
    from s2mos_transforms.sources.ee_plan import plan_summary
    summary, _ = plan_summary(points, dt.date.fromisoformat(options["start"]), dt.date.fromisoformat(options["end"]),
                              int(options["points_per_request"]))
    return summary


def _plan_tiles(tiles, n_tiles: int, start: str, end: str, options: dict[str, Any]) -> dict[str, Any]:
    """The requests a map of `n_tiles` tiles would send (nothing is sent); the serialized
    expressions of the listed tiles need ``ee`` started (the API description, no computation)."""
    from s2mos_transforms.sources.ee_plan import plan_tiles
    ee_session.initialize(options["project"], options["credentials"], options["endpoint"],
                          float(options.get("deadline_s", 0.0)))
    return plan_tiles(list(tiles), n_tiles, start, end, bool(options.get("cloud_score_plus")))


PLUGIN = SourcePlugin(
    name="earthengine",
    summary="Sentinel-2 L2A and Sentinel-1 GRD from Google Earth Engine (points and tiles)",
    serves=frozenset({POINTS, TILES}),
    factory=EarthEngineSource,
    add_arguments=_add_arguments,
    options=_options,
    plan_points=_plan_points,
    plan_tiles=_plan_tiles,
)
