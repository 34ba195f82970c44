"""`s2mos world export`: samples, observations, hidden state, lab spectra and the AOI truth map.

Every timestamp written (observations.parquet, state.parquet) is timezone-aware UTC
(`datetime64[ns, UTC]`, Parquet ``timestamp[ns, tz=UTC]``), also when there are no rows.
"""
from __future__ import annotations

import contextlib
import json

import numpy as np

from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError
from s2mos_transforms.grid import lonlat_to_xy, utm_epsg
from s2mos_transforms.sources import SamplePoint
from s2mos_transforms.sources.synthetic import SyntheticSource

POINTS_PER_CHUNK = 500


def prepare_out_dir(out: str) -> None:
    """One-line UserError unless ``out`` (local or gs://) can be written; then create it."""
    fileio.check_writable(out, "--out")
    fileio.makedirs(out)


def aoi_grid(source: SyntheticSource) -> tuple[int, float, float, int, int]:
    """The AOI's 10 m pixel grid in its UTM zone: (epsg, x_min, y_max, width, height)."""
    w, s, e, n = source.preset.aoi_bbox
    epsg = utm_epsg((s + n) / 2, (w + e) / 2)
    xs, ys = lonlat_to_xy(epsg, [w, e, w, e], [s, s, n, n])
    x0, x1 = np.floor(np.min(xs) / 10) * 10, np.ceil(np.max(xs) / 10) * 10
    y0, y1 = np.floor(np.min(ys) / 10) * 10, np.ceil(np.max(ys) / 10) * 10
    return epsg, float(x0), float(y1), int((x1 - x0) / 10), int((y1 - y0) / 10)


def truth_clay_raster(source: SyntheticSource) -> tuple[np.ndarray, dict]:
    """True clay (%) over the AOI grid, computed in row blocks to bound memory."""
    from affine import Affine
    from s2mos_transforms.grid import xy_to_lonlat
    from s2mos_transforms.world.presets import lonlat_to_km

    epsg, x0, y1, width, height = aoi_grid(source)
    out = np.empty((height, width), np.float32)
    xs = x0 + (np.arange(width) + 0.5) * 10
    for r0 in range(0, height, 128):
        rows = np.arange(r0, min(height, r0 + 128))
        xx, yy = np.meshgrid(xs, y1 - (rows + 0.5) * 10)
        lon, lat = xy_to_lonlat(epsg, xx, yy)
        kx, ky = lonlat_to_km(lon, lat)
        out[rows] = source.world.soil_model.properties(lat, lon, kx, ky).clay.astype(np.float32)
    profile = {"driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "float32",
               "crs": f"EPSG:{epsg}", "transform": Affine(10, 0, x0, 0, -10, y1), "nodata": np.nan,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    return out, profile


def export_world(preset: str, out: str, n_points: int | None = None, seed: int | None = None,
                 progress: bool = True) -> dict:
    """Write the world's files for a preset; returns a summary dict (also world.json)."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import rasterio.io
    from tqdm import tqdm

    if n_points is not None and n_points < 0:
        raise UserError(f"--n-points must be ≥ 0, got {n_points}")
    source = SyntheticSource(preset, seed)
    prepare_out_dir(out)
    samples = source.sample_points(n_points)
    fileio.write_text(fileio.join(out, "samples.csv"), samples.to_csv(index=False))
    aoi_samples = source.sample_points(min(24, source.preset.n_points), within_aoi=True)
    fileio.write_text(fileio.join(out, "aoi_samples.csv"), aoi_samples.to_csv(index=False))
    fileio.write_text(fileio.join(out, "lab_spectra.csv"), source.lab_spectra(samples).to_csv(index=False))

    obs_writer = state_writer = None
    files = contextlib.ExitStack()  # the two Parquet sinks (uploaded on close for gs://)
    n_obs = 0
    points = [SamplePoint(r.point_id, r.lat, r.lon, r.clay) for r in samples.itertuples()]
    chunks = range(0, len(points), POINTS_PER_CHUNK)
    for lo in tqdm(chunks, desc=f"world export ({preset})", unit="chunk", disable=not progress):
        obs, state = source.observations_and_state(points[lo:lo + POINTS_PER_CHUNK], with_state=True)
        t_obs, t_state = pa.Table.from_pandas(obs, preserve_index=False), pa.Table.from_pandas(state, preserve_index=False)
        if obs_writer is None:
            obs_writer = pq.ParquetWriter(files.enter_context(fileio.open_write(fileio.join(out, "observations.parquet"))),
                                          t_obs.schema, compression="zstd")
            state_writer = pq.ParquetWriter(files.enter_context(fileio.open_write(fileio.join(out, "state.parquet"))),
                                            t_state.schema, compression="zstd")
        obs_writer.write_table(t_obs)
        state_writer.write_table(t_state)
        n_obs += len(obs)
    if obs_writer is None:  # zero points: still write well-formed, empty tables
        obs, state = source.observations_and_state([], with_state=True)
        _write_parquet(pa.Table.from_pandas(obs, preserve_index=False), fileio.join(out, "observations.parquet"))
        _write_parquet(pa.Table.from_pandas(state, preserve_index=False), fileio.join(out, "state.parquet"))
    else:
        obs_writer.close()
        state_writer.close()
        files.close()

    truth, profile = truth_clay_raster(source)
    with rasterio.io.MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(truth, 1)
            dst.set_band_description(1, "clay_percent")
        fileio.write_bytes(fileio.join(out, "truth_clay.tif"), mem.read())
    summary = {
        "preset": preset, "seed": source.seed, "description": source.preset.description,
        "start": source.preset.start, "end": source.preset.end,
        "points": len(samples), "aoi_points": len(aoi_samples), "observations": n_obs,
        "aoi_bbox": list(source.preset.aoi_bbox), "aoi_pixels": int(truth.size),
        "clay_quartiles": [float(q) for q in np.percentile(samples["clay"], [0, 25, 50, 75, 100])] if len(samples) else [],
        "files": ["samples.csv", "aoi_samples.csv", "observations.parquet", "state.parquet", "lab_spectra.csv",
                  "truth_clay.tif", "world.json"],
    }
    fileio.write_text(fileio.join(out, "world.json"), json.dumps(summary, indent=2))
    return summary


def _write_parquet(table, path: str) -> None:
    import pyarrow.parquet as pq
    with fileio.open_write(path) as fh:
        pq.write_table(table, fh)
