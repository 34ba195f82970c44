"""`s2mos tune-thresholds`: the paper's NDVI × NBR2 grid (Section 2.2) scored against lab spectra.

For every threshold pair of `bands.NDVI_GRID` × `bands.NBR2_GRID`, each sample's bare S2
observations (scene filter, SCL mask, bare-soil test, 3σ outliers — the same `masks`
code as the dataset build) are reduced to their median reflectance, and for each band the
Pearson correlation across points between that median and the sample's laboratory
spectrum resampled to S2 is computed. A pair's score is the mean of the band
correlations; it must also keep at least ``--min-coverage`` of the points that the
loosest pair keeps (strict thresholds leave few, noisy points). The best-scoring pair is
printed with the table; ties go to the stricter pair (smaller NDVI, then NBR2).

Only the S2 dates count (no S1 pairing), so build-dataset's ``--require-s1-pair`` (a dataset
inclusion rule) does not apply here, and S2-only observation tables score the grid as well.
"""
from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np

from s2mos_transforms import bands, fileio
from s2mos_transforms.errors import UserError

REPORT_BANDS = ("B2", "B4", "B8", "B11", "B12")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--samples", required=True, metavar="PATH", help="sample table (point_id, lat, lon, clay)")
    parser.add_argument("--lab-spectra", required=True, metavar="PATH",
                        help="lab spectra resampled to S2: point_id, B2 … B12 (reflectance 0–1)")
    parser.add_argument("--scene-cloud-max", type=float, default=bands.SCENE_CLOUD_MAX_PCT)
    parser.add_argument("--min-coverage", type=float, default=0.5,
                        help="a pair must keep this share of the points the loosest pair keeps (default 0.5)")
    parser.add_argument("--batch-size", type=int, default=100, help="points per source request")
    parser.add_argument("--json", metavar="PATH", help="also write the table and the choice as JSON")
    from s2mos_transforms import sources
    sources.add_source_arguments(parser, sources.POINTS)


def read_lab_spectra(path: str) -> dict[str, np.ndarray]:
    """point_id → reflectance (10 bands); UserError if unreadable or columns are missing."""
    import pandas as pd

    from s2mos_transforms.tables import read_table_file

    df = read_table_file(path, "lab spectra")
    missing = [c for c in ("point_id",) + bands.S2_BANDS if c not in df.columns]
    if missing:
        raise UserError(f"lab spectra {path}: missing required column(s) {', '.join(missing)}")
    values = np.stack([pd.to_numeric(df[b], errors="coerce").to_numpy(np.float64) for b in bands.S2_BANDS], axis=1)
    ids = df["point_id"].astype(str).str.strip().to_numpy()
    return {pid: v for pid, v in zip(ids, values) if np.isfinite(v).all()}


def median_bare_spectra(per_point: dict, thresholds) -> dict[str, np.ndarray]:
    """point_id → median reflectance of its bare observations (points without any omitted)."""
    from s2mos_transforms import masks

    out = {}
    for pid, obs in per_point.items():
        if obs.s2_dn.shape[0] == 0:
            continue
        m = masks.observation_masks(obs.s2_dn, obs.scl, obs.scene_cloud_pct, thresholds)
        if m.kept.any():
            out[pid] = np.median(masks.to_reflectance(obs.s2_dn[m.kept]), axis=0)
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 3 or np.std(x) == 0 or np.std(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def score_grid(per_point: dict, lab: dict[str, np.ndarray], scene_cloud_max: float,
               min_coverage: float) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Rows of the grid table and the chosen row (None when no pair qualifies)."""
    from s2mos_transforms.masks import MaskThresholds

    rows = []
    for ndvi_max in bands.NDVI_GRID:
        for nbr2_max in bands.NBR2_GRID:
            med = median_bare_spectra(per_point, MaskThresholds(scene_cloud_max, ndvi_max, nbr2_max))
            ids = [pid for pid in med if pid in lab]
            sat = np.asarray([med[p] for p in ids]).reshape(len(ids), len(bands.S2_BANDS))
            ref = np.asarray([lab[p] for p in ids]).reshape(len(ids), len(bands.S2_BANDS))
            r = {b: pearson(sat[:, i], ref[:, i]) for i, b in enumerate(bands.S2_BANDS)}
            finite = [v for v in r.values() if np.isfinite(v)]
            rows.append({"ndvi_max": ndvi_max, "nbr2_max": nbr2_max, "points": len(ids),
                         "r": r, "score": float(np.mean(finite)) if finite else float("nan")})
    most = max((row["points"] for row in rows), default=0)
    eligible = [row for row in rows if most and row["points"] >= min_coverage * most and np.isfinite(row["score"])]
    chosen = None
    for row in eligible:               # grid order is strict → loose; keep the first best
        if chosen is None or row["score"] > chosen["score"]:
            chosen = row
    return rows, chosen


def format_table(rows: list[dict[str, Any]], chosen: dict[str, Any] | None) -> str:
    head = f"{'NDVI<':>6} {'NBR2<':>6} {'points':>7} " + " ".join(f"{'r ' + b:>7}" for b in REPORT_BANDS) \
        + f" {'mean r':>7}"
    lines = [head, "-" * len(head)]
    for row in rows:
        mark = "  <- chosen" if row is chosen else ""
        lines.append(f"{row['ndvi_max']:>6.2f} {row['nbr2_max']:>6.3f} {row['points']:>7d} "
                     + " ".join(f"{row['r'][b]:>7.3f}" for b in REPORT_BANDS) + f" {row['score']:>7.3f}{mark}")
    return "\n".join(lines)


def run(args, extra) -> int:
    from s2mos_transforms.dataset.samples import read_samples
    from s2mos_transforms.sequences import point_observations
    from s2mos_transforms import sources
    from s2mos_transforms.sources import SamplePoint

    if not 0.0 <= args.min_coverage <= 1.0:
        raise UserError(f"--min-coverage must be in [0, 1], got {args.min_coverage:g}")
    if args.json:
        fileio.check_writable(args.json, "--json", is_file=True)
    table = read_samples(args.samples)
    lab = read_lab_spectra(args.lab_spectra)
    try:
        name, options = sources.resolve_source(args, sources.POINTS)
        source = sources.create(name, options)
    except sources.SourceError as err:
        raise UserError(str(err)) from None
    pts = table.points[table.points["point_id"].isin(list(lab))]
    if pts.empty:
        raise UserError(f"no sample of {args.samples} has a lab spectrum in {args.lab_spectra}")
    inside = np.asarray(source.covers(pts["lat"].to_numpy(), pts["lon"].to_numpy()), bool)
    pts = pts[inside]
    per_point = {}
    sample = [SamplePoint(r.point_id, r.lat, r.lon, r.clay) for r in pts.itertuples(index=False)]
    for i in range(0, len(sample), max(1, args.batch_size)):
        per_point.update(point_observations(source.observations(sample[i:i + args.batch_size])))
    rows, chosen = score_grid(per_point, lab, args.scene_cloud_max, args.min_coverage)
    print(f"tune-thresholds: {len(per_point)} points with observations and a lab spectrum; "
          f"score = mean Pearson r over the 10 bands (median bare reflectance vs lab)")
    print(format_table(rows, chosen))
    if chosen is None:
        print("no threshold pair keeps enough points to be scored")
    else:
        print(f"chosen: --ndvi-max {chosen['ndvi_max']:g} --nbr2-max {chosen['nbr2_max']:g} "
              f"(mean r {chosen['score']:.3f}, r B12 {chosen['r']['B12']:.3f}, {chosen['points']} points)")
    if args.json:
        fileio.write_text(args.json, json.dumps(_finite({"rows": rows, "chosen": chosen}), indent=1))
    return 0 if chosen is not None else 1


def _finite(value):
    """NaN → None, so the JSON is standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
