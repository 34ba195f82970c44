"""Map report on the embedded world: the predicted map against the true clay.

Two views: (1) every valid pixel of the map against the world's true clay raster
(`SyntheticSource.truth_clay`), with the share of the AOI that got a value; (2) the AOI's
sample points (laboratory clay, as a field campaign would measure) against the map pixel
they fall in. Metrics are those of the evaluation report (`metrics.summary`: R², RMSE,
RPIQ, CCC, bias, r² of the correlation, n); beside each, the same metrics of a map that
predicts the calibration set's mean clay everywhere (``reference``: what a model that learnt
nothing would score). On every pixel also: the coverage (PICP) and mean width of the 90 %
interval (clay_p05 … clay_p95), said to fall short below 0.87, and the error inside vs
outside the area of applicability (`aoa` band). The model's recalibration, if any, is named.
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
BAND = {name: i + 1 for i, name in enumerate(cog.BAND_NAMES)}
SHORTFALL = 0.87              # a 90 % interval covering less than this is reported as falling short
N_SAMPLE_POINTS = 60          # points drawn in the AOI when the preset's own campaign is too sparse there
MIN_CAMPAIGN_POINTS = 30      # below this many of the preset's samples in the AOI, draw N_SAMPLE_POINTS


def _read_bands(out: str, record: dict) -> dict[str, np.ndarray]:
    """Every band of a tile by name (NaN where NODATA, and for a band the file lacks)."""
    import rasterio
    with fileio.local_copy(f"{out}/{tile_relpath(record)}") as path, rasterio.open(path) as ds:
        data = ds.read().astype(np.float64)
        names = ds.descriptions
    data[data == cog.NODATA] = np.nan
    got = {n: data[i] for i, n in enumerate(names) if n}
    return {n: got.get(n, np.full(data.shape[1:], np.nan)) for n in cog.BAND_NAMES}


def _safe_summary(observed: np.ndarray, predicted: np.ndarray) -> dict:
    if observed.size < 2:
        return {"n": int(observed.size)}
    return metrics.summary(observed, predicted)


def model_meta(out: str):
    """The map's model metadata (via map_settings.json), or None when unreadable."""
    try:
        from trainer import model_dir
        settings = json.loads(fileio.read_text(f"{out.rstrip('/')}/map_settings.json"))
        return model_dir.read_meta(settings["model_dir"])
    except Exception:  # noqa: BLE001 — the report goes on without the reference scores
        return None


def trust_scores(truth: np.ndarray, pred: dict[str, np.ndarray], reference: float | None) -> dict:
    """The reference map's scores, interval coverage and AOA split of matched truth/prediction arrays."""
    from trainer import aoa as aoa_mod
    from trainer import intervals

    out: dict = {}
    if reference is not None and truth.size >= 2:
        out["reference"] = {**_safe_summary(truth, np.full(truth.size, reference)), "clay": float(reference)}
    lo, hi = pred["clay_p05"], pred["clay_p95"]
    has = np.isfinite(lo) & np.isfinite(hi)
    if has.any():
        out["interval"] = {**intervals.coverage(truth[has], lo[has], hi[has]), "level": 0.9}
    a = pred["aoa"]
    if np.isfinite(a).any():
        ok = np.isfinite(a)
        out["aoa"] = aoa_mod.split_errors(truth[ok], pred["clay_mean"][ok], np.where(a[ok] > 0.5, 0.0, 2.0), 1.0)
        out["aoa"].pop("threshold")
        out["aoa"].pop("mean_di")
        out["aoa"]["share_inside"] = float(np.mean(a[ok] > 0.5))
    return out


def pixel_scores(out: str, records: Sequence[dict], source, aoi, tile_size: int,
                 res: float = PIXEL_SIZE_M, reference: float | None = None) -> dict:
    """Every valid pixel vs the truth; share of the AOI's (source-covered) pixels mapped;
    the reference map's scores, interval coverage, AOA split (`trust_scores`)."""
    zones = {epsg: tiling.project(part, epsg) for epsg, part in tiling.zone_parts(aoi).items()}
    truth_all, pred_all = [], {n: [] for n in cog.BAND_NAMES}
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
        bands_ = _read_bands(out, r)
        valid = inside & np.isfinite(bands_["clay_mean"])
        if valid.any():
            truth_all.append(source.truth_clay(task.tile)[valid])
            for n in cog.BAND_NAMES:
                pred_all[n].append(bands_[n][valid])
    truth = np.concatenate(truth_all) if truth_all else np.zeros(0)
    pred = {n: np.concatenate(v) if v else np.zeros(0) for n, v in pred_all.items()}
    return {**_safe_summary(truth, pred["clay_mean"]), "aoi_pixels": n_aoi, "mapped_pixels": int(truth.size),
            "share_mapped": float(truth.size / n_aoi) if n_aoi else 0.0,
            **trust_scores(truth, pred, reference)}


def point_scores(out: str, records: Sequence[dict], source, aoi, tile_size: int,
                 n_points: int = N_SAMPLE_POINTS, res: float = PIXEL_SIZE_M, reference: float | None = None,
                 exclude: frozenset[str] = frozenset()) -> dict:
    """The AOI's sample points (lab clay) vs the map pixel containing each; the points in
    `exclude` (those the model was recalibrated on: their corrected values, kriged ones above
    all, are fits, not predictions) are counted but not scored.

    The points are the preset's own sampling campaign (`s2mos world export`) where at least
    MIN_CAMPAIGN_POINTS of it fall in the AOI: for `independent-site`, the 52 points of the
    paper's Greek check. A small AOI inside a wide preset (the quick demo's) holds too few of
    them, so `n_points` independent samples are drawn in the preset's AOI instead; and for an
    AOI of your own (`--bbox`) that these miss, drawn in it (`drawn_in_bbox`: the true clay of
    the pixel + 1 % analytical error, as the world's own samples).
    """
    import shapely

    pts, campaign = source.sample_points(), "preset"
    inside = shapely.contains_xy(aoi, pts["lon"].to_numpy(), pts["lat"].to_numpy())
    if inside.sum() < MIN_CAMPAIGN_POINTS:
        pts, campaign = source.sample_points(n_points, within_aoi=True), "drawn_in_aoi"
        inside = shapely.contains_xy(aoi, pts["lon"].to_numpy(), pts["lat"].to_numpy())
    if inside.sum() < MIN_CAMPAIGN_POINTS:
        pts, campaign = drawn_in(aoi, n_points, source, tile_size, res), "drawn_in_bbox"
        inside = np.ones(len(pts), bool)
    lat, lon = pts["lat"].to_numpy(), pts["lon"].to_numpy()
    written = {r["tile"]: r for r in records if r["status"] == "written"}
    cache: dict[str, dict] = {}
    obs, pred = [], {n: [] for n in cog.BAND_NAMES}
    used = np.isin(pts["point_id"].astype(str).to_numpy(), sorted(exclude))
    for la, lo, clay, ok in zip(lat, lon, pts["clay"].to_numpy(), inside & ~used):
        if not ok:
            continue
        epsg = utm_epsg(la, lo)
        x, y = lonlat_to_xy(epsg, lo, la)
        tile = tile_containing(epsg, float(x), float(y), tile_size, res)
        rec = written.get(tile.name)
        if rec is None:
            continue
        if tile.name not in cache:
            cache[tile.name] = _read_bands(out, rec)
        col = int((float(x) - tile.x_min) // tile.res)
        row = int((tile.y_max - float(y)) // tile.res)
        if np.isfinite(cache[tile.name]["clay_mean"][row, col]):
            obs.append(clay)
            for n in cog.BAND_NAMES:
                pred[n].append(cache[tile.name][n][row, col])
    obs_a = np.asarray(obs, np.float64)
    pred_a = {n: np.asarray(v, np.float64) for n, v in pred.items()}
    return {**_safe_summary(obs_a, pred_a["clay_mean"]), "points_in_aoi": int(inside.sum()),
            "used_to_recalibrate": int((inside & used).sum()), "campaign": campaign,
            **trust_scores(obs_a, pred_a, reference)}


def drawn_in(aoi, n: int, source, tile_size: int, res: float, seed: int = 7):
    """`n` points uniform in the AOI, lab clay = the true clay of their pixel + N(0, 1 %)."""
    import pandas as pd
    import shapely

    rng = np.random.default_rng(seed)
    w, s_, e, n_ = aoi.bounds
    lat, lon = np.zeros(0), np.zeros(0)
    while lat.size < n:
        la, lo = rng.uniform(s_, n_, 4 * n), rng.uniform(w, e, 4 * n)
        ok = shapely.contains_xy(aoi, lo, la)
        lat, lon = np.concatenate([lat, la[ok]])[:n], np.concatenate([lon, lo[ok]])[:n]
    truth: dict[str, np.ndarray] = {}
    clay = np.zeros(n)
    for i, (la, lo) in enumerate(zip(lat, lon)):
        epsg = utm_epsg(la, lo)
        x, y = lonlat_to_xy(epsg, lo, la)
        tile = tile_containing(epsg, float(x), float(y), tile_size, res)
        if tile.name not in truth:
            truth[tile.name] = source.truth_clay(tile)
        clay[i] = truth[tile.name][int((tile.y_max - float(y)) // tile.res), int((float(x) - tile.x_min) // tile.res)]
    clay = np.clip(clay + rng.normal(0.0, 1.0, n), 0.5, 100.0)
    return pd.DataFrame({"point_id": [f"drawn{i}" for i in range(n)], "lat": lat, "lon": lon, "clay": clay})


def report(out: str, records: Sequence[dict], source, aoi, min_obs: int) -> dict:
    """The map report; on the way, the quicklook is redrawn with the truth and error panels."""
    size = int(records[0]["size"]) if records else 256
    res = float(records[0].get("res", PIXEL_SIZE_M)) if records else PIXEL_SIZE_M
    meta = model_meta(out)
    reference = meta.calibration_clay_mean if meta is not None else None
    recalibration = meta.recalibration if meta is not None else None
    rep = {"preset": getattr(getattr(source, "preset", None), "name", None), "min_obs": min_obs,
           "resolution_m": res, "reference_clay": reference,
           "recalibration": recalibration,
           "pixels": pixel_scores(out, records, source, aoi, size, res, reference),
           "sample_points": point_scores(out, records, source, aoi, size, res=res, reference=reference,
                                         exclude=frozenset((recalibration or {}).get("point_ids", [])))}
    truth_quicklook(out, records, source)
    return rep


def truth_quicklook(out: str, records: Sequence[dict], source) -> str | None:
    """Redraw quicklook.png over the mosaic with the world's true clay and the error beside the map."""
    from s2mos_transforms.maps import outputs

    mosaic = f"{out.rstrip('/')}/{outputs.MOSAIC}"
    written = [r for r in records if r["status"] == "written"]
    if not written or not fileio.exists(mosaic) or len({r["epsg"] for r in written}) != 1:
        return None
    c0, c1, r0, r1, size, res = outputs._grid_extent(records)
    truth = np.full(((r1 - r0 + 1) * size, (c1 - c0 + 1) * size), np.nan, np.float32)
    for r in written:
        tile = Tile(int(r["epsg"]), int(r["col"]), int(r["row"]), size, res)
        y, x = (r1 - r["row"]) * size, (r["col"] - c0) * size
        truth[y:y + size, x:x + size] = source.truth_clay(tile)
    return outputs.quicklook(mosaic, f"{out.rstrip('/')}/{outputs.QUICKLOOK}", title="clay_mean (%)", truth=truth)


def write(rep: dict, out: str) -> str:
    return fileio.write_text(f"{out.rstrip('/')}/{REPORT}", json.dumps(rep, indent=2))


def _fmt(block: dict) -> str:
    if "r2" not in block:
        return f"n={block.get('n', 0)} (too few to score)"
    return (f"R² {block['r2']:.2f}  RMSE {block['rmse']:.1f} %  RPIQ {block['rpiq']:.2f}  "
            f"bias {block['bias']:+.1f} %  CCC {block['ccc']:.2f}  r² {block['r2_corr']:.2f}  n={block['n']}")


def _ref(block: dict) -> str:
    ref = block.get("reference")
    if not ref or "r2" not in ref:
        return ""
    return (f"\n      a map of the calibration mean ({ref['clay']:.1f} %) scores: R² {ref['r2']:.2f}  "
            f"RMSE {ref['rmse']:.1f} %  bias {ref['bias']:+.1f} %")


def _used(block: dict) -> str:
    k = block.get("used_to_recalibrate", 0)
    return f"; {k} used to recalibrate the model, not scored" if k else ""


def _trust(block: dict, recalibrated: bool = False) -> list[str]:
    lines = []
    iv = block.get("interval")
    if iv and iv.get("n"):
        short = iv["picp"] < SHORTFALL
        advice = ("the local samples did not show how large the site's errors are; recalibrate with more "
                  "of them" if recalibrated else
                  "the model is out of its depth here; recalibrate with local samples (s2mos recalibrate)")
        lines.append(f"      90 % interval: covers {iv['picp']:.1%} of {iv['n']} (mean width {iv['mean_width']:.1f} %)"
                     + (f" — FALLS SHORT of 90 %: {advice}" if short else ""))
    a = block.get("aoa")
    if a:
        inside = f"{a['mae_inside']:.1f} %" if a["mae_inside"] is not None else "–"
        outside = f"{a['mae_outside']:.1f} %" if a["mae_outside"] is not None else "–"
        ratio = f" (×{a['ratio']:.2f})" if a.get("ratio") else ""
        lines.append(f"      area of applicability: {a['share_inside']:.1%} inside; MAE inside {inside} "
                     f"(n={a['n_inside']}), outside {outside} (n={a['n_outside']}){ratio}")
    return lines


def format_report(rep: dict) -> str:
    px, pt = rep["pixels"], rep["sample_points"]
    recal = rep.get("recalibration")
    head = [f"map report ({rep['preset']} world, min-obs {rep['min_obs']}):"]
    if recal and recal.get("kind") == "fine-tune":
        head.append(f"  model fine-tuned with {recal['n']} local samples spiked ×{recal.get('spike_repeats')} into its "
                    f"calibration set (layers {', '.join(recal.get('trained_layers', []))})")
    elif recal:
        head.append(f"  model recalibrated with {recal['n']} local samples: {recal['kind']} "
                    f"clay' = {recal['a']:+.2f} + {recal['b']:.3f}·clay, 90 % interval ×"
                    f"{recal.get('interval_scale', 1.0):.2f}"
                    + (f"; residuals kriged (range {recal['kriging']['range_km']:.2f} km)" if recal.get("kriging")
                       else ""))
        unc = recal.get("offset_uncertainty")
        if unc:
            head.append(f"  its site offset is uncertain by ±{unc['offset_se']:.1f} % (1 s.e.): a site bias of about "
                        f"{unc['expected_abs_bias']:.1f} % is expected; ≈ {unc['samples_for_target']} samples for "
                        f"{unc['target_abs_bias']:g} %")
    return "\n".join(head + [
        f"  every valid pixel vs true clay: {_fmt(px)}{_ref(px)}", *_trust(px, bool(recal)),
        f"  AOI mapped: {px['share_mapped']:.1%} of {px['aoi_pixels']} pixels",
        f"  sample points in the AOI (lab clay; {pt.get('points_in_aoi', 0)} in the AOI, those on a mapped "
        f"pixel scored{_used(pt)}): {_fmt(pt)}{_ref(pt)}", *_trust(pt, bool(recal))])
