"""What an Earth Engine build or map would send, before it sends anything: the request plan.

    python -m s2mos_transforms.sources.ee_plan --samples samples.csv [--ee-start … --ee-end …]
        [--ee-points-per-request N] [--show-expression --ee-project P [--ee-credentials …]]

Prints, for the sample table, the computeFeatures requests the `earthengine` source would plan
(per sensor: requests, points per request, the estimated values and feature rows each asks
for), and the estimated volume of the answers. With ``--show-expression`` it also starts the
``ee`` client (that fetches the API description and algorithm list, no computation) and prints
the serialized expression of the first request of each sensor. No computation is requested.

For a map (`plan_tiles`, behind ``predict-map --dry-run``): per tile one metadata request per
sensor, then computePixels requests cut by `ee_tiles.id_batches` under the 48 MB limit; the
number of images per tile is estimated from the dates (the metadata answer fixes it only when
the job runs). The first few tiles are listed with their grids and serialized expressions,
the rest counted.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from typing import Any, Sequence

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.sources.base import SamplePoint
from s2mos_transforms.grid import Tile
from s2mos_transforms.sources.ee_requests import (S1_IMAGES_PER_DAY, S2_IMAGES_PER_DAY, Request,
                                                  plan_requests)

# Bytes of one sampled feature in a computeFeatures answer (JSON: ids, ten bands, SCL, time,
# cloud ≈ 300 B for S2; VV, VH, angle, time, orbit ≈ 200 B for S1).
FEATURE_BYTES = {bands.SENSOR_S2: 300, bands.SENSOR_S1: 200}


def estimated_rows(req: Request) -> int:
    per_day = S2_IMAGES_PER_DAY if req.sensor == bands.SENSOR_S2 else S1_IMAGES_PER_DAY
    return int(round(len(req.points) * req.days * per_day))


def plan_summary(points: Sequence[SamplePoint], start: dt.date, end_inclusive: dt.date,
                 per_request: int, page_size: int = 1000) -> tuple[dict[str, Any], list[Request]]:
    """Requests per sensor, points per request, estimated rows, pages and answer bytes."""
    reqs = plan_requests(points, start, end_inclusive + dt.timedelta(days=1), per_request)
    out: dict[str, Any] = {"points": len(points), "start": start.isoformat(), "end": end_inclusive.isoformat(),
                           "points_per_request": per_request, "sensors": {}}
    for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
        mine = [r for r in reqs if r.sensor == sensor]
        sizes = np.array([len(r.points) for r in mine] or [0])
        rows = np.array([estimated_rows(r) for r in mine] or [0])
        out["sensors"][sensor] = {
            "requests": len(mine),
            "points_per_request": {"min": int(sizes.min()), "median": float(np.median(sizes)), "max": int(sizes.max())},
            "estimated_values_max": max((r.estimated_values() for r in mine), default=0),
            "estimated_rows": int(rows.sum()),
            "estimated_pages": int(sum(max(1, -(-int(n) // page_size)) for n in rows)) if mine else 0,
            "estimated_bytes": int(rows.sum()) * FEATURE_BYTES[sensor],
        }
    out["requests"] = sum(s["requests"] for s in out["sensors"].values())
    out["estimated_pages"] = sum(s["estimated_pages"] for s in out["sensors"].values())
    out["estimated_bytes"] = sum(s["estimated_bytes"] for s in out["sensors"].values())
    return out, reqs


def first_expressions(reqs: list[Request], project: str, credentials: str, endpoint: str,
                      cloud_score_plus: bool) -> dict[str, Any]:
    """The serialized expression of the first request of each sensor (starts ``ee``)."""
    from ee import serializer

    from s2mos_transforms.sources import ee_requests, ee_session
    ee_session.initialize(project, credentials, endpoint)
    out = {}
    for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
        first = next((r for r in reqs if r.sensor == sensor), None)
        if first is not None:
            out[sensor] = serializer.encode(ee_requests.expression(first, cloud_score_plus), for_cloud_api=True)
    return out


# Bytes of one image's feature in a tile's metadata answer (index, time, scene cloud).
META_FEATURE_BYTES = 150
IDS_PLACEHOLDER = "<system:index of each image, from the tile's metadata answer>"


def _tile_requests(tile: Tile, days: int, cloud_score_plus: bool, page_size: int) -> dict[str, Any]:
    """The requests of one tile per sensor: metadata pages, pixel requests, bytes."""
    from s2mos_transforms.sources import ee_tiles
    out: dict[str, Any] = {}
    for sensor, per_day in ((bands.SENSOR_S2, S2_IMAGES_PER_DAY), (bands.SENSOR_S1, S1_IMAGES_PER_DAY)):
        images = int(np.ceil(days * per_day))
        batches = ee_tiles.id_batches([""] * images, tile, sensor, cloud_score_plus)
        # The answer holds the bands, not the mask bytes the limit counts.
        npy_per_px = ee_tiles.bytes_per_pixel(sensor, cloud_score_plus) - ee_tiles.bands_per_image(sensor, cloud_score_plus)
        out[sensor] = {
            "estimated_images": images,
            "metadata_requests": max(1, -(-images // page_size)),
            "pixel_requests": len(batches),
            "images_per_pixel_request": ee_tiles.images_per_request(tile, sensor, cloud_score_plus),
            "largest_request_bytes": max((len(b) for b in batches), default=0) * tile.size ** 2
            * ee_tiles.bytes_per_pixel(sensor, cloud_score_plus),
            "estimated_bytes": images * (META_FEATURE_BYTES + tile.size ** 2 * npy_per_px)}
    return out


def tile_expressions(tile: Tile, start: dt.date, end: dt.date, cloud_score_plus: bool) -> dict[str, Any]:
    """The serialized metadata and pixel expressions of one tile per sensor (``ee`` initialised);
    the pixel expression's image ids are the metadata answer's, shown as a placeholder."""
    from ee import serializer

    from s2mos_transforms.sources import ee_tiles
    out = {}
    for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
        out[sensor] = {
            "metadata": serializer.encode(ee_tiles.metadata_expression(sensor, tile, start, end), for_cloud_api=True),
            "pixels": {**ee_tiles.pixels_request(sensor, tile, start, end, [IDS_PLACEHOLDER], cloud_score_plus),
                       "expression": serializer.encode(ee_tiles.pixels_expression(
                           sensor, tile, start, end, [IDS_PLACEHOLDER], cloud_score_plus), for_cloud_api=True)}}
    return out


def plan_tiles(tiles: Sequence[Tile], n_tiles: int, start: str, end_inclusive: str, cloud_score_plus: bool,
               page_size: int = 1000, expressions: bool = True) -> dict[str, Any]:
    """The requests of a map of `n_tiles` tiles of the size of `tiles` (the first few, listed
    with their grids and, with `expressions`, their serialized expressions), and the totals."""
    from s2mos_transforms.sources import ee_tiles
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end_inclusive)
    stop = last + dt.timedelta(days=1)                              # requests take [start, end)
    days = (stop - first).days
    out: dict[str, Any] = {"tiles": int(n_tiles), "start": first.isoformat(), "end": last.isoformat(),
                           "cloud_score_plus": bool(cloud_score_plus),
                           "note": "pixel requests and bytes are upper bounds: a map lists every image but "
                                   "fetches only the scenes its scene filter keeps and the S1 images that can "
                                   "pair with them (Beam counter ee_images_skipped)",
                           "request_bytes_max": ee_tiles.REQUEST_BYTES_MAX, "sensors": {}}
    if not tiles:
        return out
    per_tile = _tile_requests(tiles[0], days, cloud_score_plus, page_size)
    for sensor, r in per_tile.items():
        out["sensors"][sensor] = {**r, "requests_per_tile": r["metadata_requests"] + r["pixel_requests"]}
    out["requests_per_tile"] = sum(r["requests_per_tile"] for r in out["sensors"].values())
    out["requests"] = out["requests_per_tile"] * int(n_tiles)
    out["estimated_bytes"] = sum(r["estimated_bytes"] for r in per_tile.values()) * int(n_tiles)
    out["first_tiles"] = []
    for tile in tiles:
        item: dict[str, Any] = {"tile": tile.name, "grid": ee_tiles.grid(tile)}
        if expressions:
            item["expressions"] = tile_expressions(tile, first, stop, cloud_score_plus)
        out["first_tiles"].append(item)
    return out


def main(argv: list[str] | None = None) -> int:
    from s2mos_transforms.dataset.samples import read_sample_tables
    from s2mos_transforms.errors import UserError
    from s2mos_transforms.sources.base import SourceError
    from s2mos_transforms.sources.earthengine import DEFAULT_END, DEFAULT_START

    ap = argparse.ArgumentParser(prog="python -m s2mos_transforms.sources.ee_plan", description=__doc__.splitlines()[0])
    ap.add_argument("--samples", required=True, metavar="PATH")
    ap.add_argument("--holdout-samples", metavar="PATH")
    ap.add_argument("--ee-start", default=DEFAULT_START)
    ap.add_argument("--ee-end", default=DEFAULT_END)
    ap.add_argument("--ee-points-per-request", type=int, default=50)
    ap.add_argument("--show-expression", action="store_true",
                    help="also print the serialized expressions (starts the ee client; needs --ee-project)")
    ap.add_argument("--ee-project")
    ap.add_argument("--ee-credentials", default="adc")
    ap.add_argument("--ee-endpoint", default="highvolume")
    ap.add_argument("--cloud-score-plus", action="store_true")
    args = ap.parse_args(argv)
    try:
        start, end = dt.date.fromisoformat(args.ee_start), dt.date.fromisoformat(args.ee_end)
        frame, _, _ = read_sample_tables(args.samples, args.holdout_samples)
        points = [SamplePoint(str(r.point_id), float(r.lat), float(r.lon)) for r in frame.itertuples()]
        summary, reqs = plan_summary(points, start, end, args.ee_points_per_request)
        if args.show_expression:
            if not args.ee_project:
                raise UserError("--show-expression needs --ee-project")
            summary["first_expressions"] = first_expressions(reqs, args.ee_project, args.ee_credentials,
                                                             args.ee_endpoint, args.cloud_score_plus)
    except (UserError, SourceError, ValueError) as err:
        print(f"s2mos: error: {err}", file=sys.stderr)
        return 2
    json.dump(summary, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
