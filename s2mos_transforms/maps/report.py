"""Map report on the embedded world: the predicted map against the true clay.

Two views: (1) every valid pixel of the map against the world's true clay raster
(`SyntheticSource.truth_clay`), with the share of the AOI that got a value; (2) the AOI's
sample points (laboratory clay, as a field campaign would measure) against the map pixel
they fall in. Metrics are those of the evaluation report (`metrics.summary`: R², RMSE,
RPIQ, CCC, bias, r² of the correlation, n).
"""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from s2mos_transforms import metrics

from s2mos_transforms.maps import cog

from s2mos_transforms.maps import tiling
from s2mos_transforms.grid import PIXEL_SIZE_M, Tile, tile_containing, lonlat_to_xy, utm_epsg
from s2mos_transforms import fileio
from s2mos_transforms.maps.outputs import tile_relpath

REPORT = "map_report.json"
N_SAMPLE_POINTS = 60          # points drawn in the AOI when the preset's own campaign is too sparse there
MIN_CAMPAIGN_POINTS = 30      # below this many of the preset's samples in the AOI, draw N_SAMPLE_POINTS


def _read_band(out: str, record: dict, band: int = 1) -> np.ndarray:
    import rasterio
    with fileio.local_copy(f"{out}/{tile_relpath(record)}") as path, rasterio.open(path) as ds:
        return ds.read(band)


def _safe_summary(observed: np.ndarray, predicted: np.ndarray) -> dict:
    if observed.size < 2:
        return {"n": int(observed.size)}
    return metrics.summary(observed, predicted)


def pixel_scores(out: str, records: Sequence[dict], source, aoi, tile_size: int,
                 res: float = PIXEL_SIZE_M) -> dict:
    """Every valid pixel vs the truth; share of the AOI's (source-covered) pixels mapped."""
    zones = {epsg: tiling.project(part, epsg) for epsg, part in tiling.zone_parts(aoi).items()}
    truth_all, pred_all = [], []
    n_aoi = 0
    for r in records:
        if int(r["epsg"]) not in zones:
            continue
        task = tiling.task_for_tile(Tile(int(r["epsg"]), int(r["col"]), int(r["row"]), tile_size, res),
                                    zones[int(r["epsg"])])
        lon, lat = task.tile.pixel_centres_lonlat()
        inside = task.inside_mask() & np.asarray(source.covers(lat, lon), bool)
        n_aoi += int(inside.sum())
        if r["status"] != "written":
            continue
        pred = _read_band(out, r)
        valid = inside & (pred != cog.NODATA) & np.isfinite(pred)
        if valid.any():
            truth_all.append(source.truth_clay(task.tile)[valid])
            pred_all.append(pred[valid])
    truth = np.concatenate(truth_all) if truth_all else np.zeros(0)
    pred = np.concatenate(pred_all) if pred_all else np.zeros(0)
    return {**_safe_summary(truth, pred), "aoi_pixels": n_aoi, "mapped_pixels": int(truth.size),
            "share_mapped": float(truth.size / n_aoi) if n_aoi else 0.0}


def point_scores(out: str, records: Sequence[dict], source, aoi, tile_size: int,
                 n_points: int = N_SAMPLE_POINTS, res: float = PIXEL_SIZE_M) -> dict:
    """The AOI's sample points (lab clay) vs the map pixel containing each.

    The points are the preset's own sampling campaign (`s2mos world export`) where at least
    MIN_CAMPAIGN_POINTS of it fall in the AOI: for `independent-site`, the 52 points of the
    paper's Greek check. A small AOI inside a wide preset (the quick demo's) holds too few of
    them, so `n_points` independent samples are drawn in the AOI instead.
    """
    import shapely

    pts, campaign = source.sample_points(), "preset"
    inside = shapely.contains_xy(aoi, pts["lon"].to_numpy(), pts["lat"].to_numpy())
    if inside.sum() < MIN_CAMPAIGN_POINTS:
        pts, campaign = source.sample_points(n_points, within_aoi=True), "drawn_in_aoi"
        inside = shapely.contains_xy(aoi, pts["lon"].to_numpy(), pts["lat"].to_numpy())
    lat, lon = pts["lat"].to_numpy(), pts["lon"].to_numpy()
    written = {r["tile"]: r for r in records if r["status"] == "written"}
    cache: dict[str, np.ndarray] = {}
    obs, pred = [], []
    for la, lo, clay, ok in zip(lat, lon, pts["clay"].to_numpy(), inside):
        if not ok:
            continue
        epsg = utm_epsg(la, lo)
        x, y = lonlat_to_xy(epsg, lo, la)
        tile = tile_containing(epsg, float(x), float(y), tile_size, res)
        rec = written.get(tile.name)
        if rec is None:
            continue
        if tile.name not in cache:
            cache[tile.name] = _read_band(out, rec)
        col = int((float(x) - tile.x_min) // tile.res)
        row = int((tile.y_max - float(y)) // tile.res)
        v = cache[tile.name][row, col]
        if v != cog.NODATA and np.isfinite(v):
            obs.append(clay)
            pred.append(v)
    return {**_safe_summary(np.asarray(obs), np.asarray(pred)), "points_in_aoi": int(inside.sum()),
            "campaign": campaign}


def report(out: str, records: Sequence[dict], source, aoi, min_obs: int) -> dict:
    size = int(records[0]["size"]) if records else 256
    res = float(records[0].get("res", PIXEL_SIZE_M)) if records else PIXEL_SIZE_M
    return {"preset": getattr(getattr(source, "preset", None), "name", None), "min_obs": min_obs,
            "resolution_m": res,
            "pixels": pixel_scores(out, records, source, aoi, size, res),
            "sample_points": point_scores(out, records, source, aoi, size, res=res)}


def write(rep: dict, out: str) -> str:
    return fileio.write_text(f"{out.rstrip('/')}/{REPORT}", json.dumps(rep, indent=2))


def _fmt(block: dict) -> str:
    if "r2" not in block:
        return f"n={block.get('n', 0)} (too few to score)"
    return (f"R² {block['r2']:.2f}  RMSE {block['rmse']:.1f} %  RPIQ {block['rpiq']:.2f}  "
            f"bias {block['bias']:+.1f} %  CCC {block['ccc']:.2f}  r² {block['r2_corr']:.2f}  n={block['n']}")


def format_report(rep: dict) -> str:
    px, pt = rep["pixels"], rep["sample_points"]
    return "\n".join([
        f"map report ({rep['preset']} world, min-obs {rep['min_obs']}):",
        f"  every valid pixel vs true clay: {_fmt(px)}",
        f"  AOI mapped: {px['share_mapped']:.1%} of {px['aoi_pixels']} pixels",
        f"  sample points in the AOI (lab clay; {pt.get('points_in_aoi', 0)} in the AOI, those on a mapped "
        f"pixel scored): {_fmt(pt)}"])
