"""Map-level outputs built from the per-tile COGs and the tile records.

* ``tiles.jsonl``: one record per tile (written / empty / failed + reason), sorted by name.
* ``tiles_<epsg>.vrt``: a GDAL VRT per UTM zone indexing the tiles (relative paths), always;
  over a large zone it indexes block VRTs (``vrt/<epsg>/``) of 32 × 32 tiles each.
* ``mosaic.tif``: one COG over every tile of the AOI, when it lies in one zone and has at
  most ``--mosaic-max-tiles`` tiles.
* ``quicklook.png`` (one zone, ≤ ``QUICKLOOK_MAX_TILES`` tiles): clay_mean (scale bar), 90 %
  interval width and AOA side by side (the map report adds the embedded world's true clay and
  the error).
* ``map.stac.json``: a STAC Item describing the map (projection and raster extensions).
* ``summary.json``: the counts the command prints.
* ``map_settings.json``: what the tiles depend on (model, dates, resolution, extraction
  settings …); a re-run into the same directory must agree with it, so reused tiles never
  mix two maps.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from typing import Iterable, Sequence

import numpy as np

from s2mos_transforms import fileio
from s2mos_transforms.maps import cog
from s2mos_transforms.grid import PIXEL_SIZE_M

MANIFEST = "tiles.jsonl"
SETTINGS = "map_settings.json"
MOSAIC = "mosaic.tif"
QUICKLOOK = "quicklook.png"
STAC_ITEM = "map.stac.json"
SUMMARY = "summary.json"
STATUSES = ("written", "empty", "failed")
BAND_UNITS = {"clay_mean": "%", "clay_std": "%", "n_obs": "count", "clay_p05": "%", "clay_p95": "%",
              "di": "1", "aoa": "1"}
BAND_DESCRIPTIONS = {
    "clay_mean": "topsoil clay, mean of the bagged CNNs (recalibrated when the model is)",
    "clay_std": "spread (population sd) of the bagged CNNs; not an interval",
    "n_obs": "bare-soil observations used",
    "clay_p05": "lower bound of the 90 % prediction interval (split-conformal, 5th percentile)",
    "clay_p95": "upper bound of the 90 % prediction interval (split-conformal, 95th percentile)",
    "di": "dissimilarity index to the training data (Meyer & Pebesma 2021)",
    "aoa": "area of applicability: 1 where di <= the training threshold, 0 outside"}
# An overview pixel is the mean of the map pixels under it (nodata left out, `overview.py`), so
# its bands read differently where a mean changes their meaning.
OVERVIEW_DESCRIPTIONS = BAND_DESCRIPTIONS | {
    "n_obs": "mean number of bare-soil observations used by the mapped pixels under this pixel",
    "aoa": "share (0–1) of the mapped pixels under this pixel inside the area of applicability"}


def trust_properties(model_dir: str) -> dict:
    """STAC properties of the model's trust layer (intervals, AOA threshold, recalibration)."""
    try:
        from trainer import model_dir as md
        meta = md.read_meta(model_dir)
    except Exception:  # noqa: BLE001 — a map without readable metadata keeps its other properties
        return {}
    aoa = meta.aoa and {k: meta.aoa[k] for k in ("method", "threshold", "features", "n_training") if k in meta.aoa}
    return {"s2mos:intervals": meta.intervals, "s2mos:aoa": aoa, "s2mos:recalibration": meta.recalibration}


def claim_output(out: str, settings: dict) -> None:
    """Record the map's settings in `out`, or check a previous run's agree (then its complete
    tiles are reused). Raises UserError naming the first setting that differs."""
    from s2mos_transforms.errors import UserError

    path = f"{out.rstrip('/')}/{SETTINGS}"
    wanted = json.loads(json.dumps(settings, sort_keys=True))
    if fileio.exists(path):
        before = json.loads(fileio.read_text(path))
        diff = sorted(k for k in set(before) | set(wanted) if before.get(k) != wanted.get(k))
        if diff:
            k = diff[0]
            raise UserError(f"{out} holds a map made with other settings ({k}: {before.get(k)!r} there, "
                            f"{wanted.get(k)!r} now); use another --out or delete it")
        return
    try:
        fileio.write_text(path, json.dumps(wanted, indent=2, sort_keys=True))
    except OSError as err:
        raise UserError(f"--out {out}: cannot write {SETTINGS} ({err.strerror or err})") from None


# ------------------------------------------------------------------ manifest and summary

def manifest_line(record: dict) -> tuple[str, str]:
    """(tile name, the record's JSON line): what the manifest's one writer collects, as text
    (a third of the memory of the dicts at a million tiles, `benchmarks/bench_finish.py`)."""
    return record["tile"], json.dumps(record, sort_keys=True) + "\n"


def write_manifest_lines(lines: Iterable[tuple[str, str]], path: str) -> str:
    """``tiles.jsonl`` from `manifest_line` pairs, sorted by tile name, written line by line."""
    with fileio.open_write(path) as fh:
        for _, line in sorted(lines):
            fh.write(line.encode("utf-8"))
    return path


def write_manifest(records: Iterable[dict], path: str) -> str:
    return write_manifest_lines(map(manifest_line, records), path)


FINISH_KEYS = ("tile", "epsg", "col", "row", "size", "res", "status", "reused", "n_valid", "reason")


def read_manifest(path: str, keys: Sequence[str] | None = None) -> list[dict]:
    """The tile records of ``tiles.jsonl``, read line by line (a continent's is ≈ 300 MB);
    with `keys`, only those fields (`FINISH_KEYS`: what `finalize` uses, a third of the
    memory of whole records at a million tiles)."""
    with fileio.open_read(path) as fh:
        rows = (json.loads(line) for line in iter(fh.readline, b"") if line.strip())
        if keys is None:
            return list(rows)
        return [{k: r[k] for k in keys if k in r} for r in rows]


def summarize(records: Sequence[dict]) -> dict:
    counts = {s: sum(r["status"] == s for r in records) for s in STATUSES}
    return {"tiles": len(records), **counts,
            "reused": sum(bool(r.get("reused")) for r in records),
            "written_now": sum(r["status"] == "written" and not r.get("reused") for r in records),
            "pixels_mapped_now": int(sum(r.get("n_valid", 0) or 0 for r in records if not r.get("reused"))),
            "failures": {r["tile"]: r.get("reason", "") for r in records if r["status"] == "failed"}}


def format_summary(s: dict) -> str:
    line = (f"tiles: {s['tiles']} — written {s['written']} ({s['reused']} already there, "
            f"{s['written_now']} now), empty {s['empty']}, failed {s['failed']}; "
            f"{s['pixels_mapped_now']} pixels mapped in this run")
    if s.get("seconds") is not None:
        line += f" in {s['seconds']:.1f} s"
    return line


# ------------------------------------------------------------------ grid helpers

def _grid_extent(records: Sequence[dict]) -> tuple[int, int, int, int, int, float]:
    """(col_min, col_max, row_min, row_max, size, res) of tile records of one zone."""
    cols = [r["col"] for r in records]
    rows = [r["row"] for r in records]
    sizes = {r["size"] for r in records}
    if len(sizes) != 1:
        raise ValueError(f"tiles of different sizes in one output: {sorted(sizes)}")
    res = {float(r.get("res", PIXEL_SIZE_M)) for r in records}
    if len(res) != 1:
        raise ValueError(f"tiles of different resolutions in one output: {sorted(res)}")
    return min(cols), max(cols), min(rows), max(rows), sizes.pop(), res.pop()


def _by_epsg(records: Sequence[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for r in records:
        out.setdefault(int(r["epsg"]), []).append(r)
    return out


def tile_relpath(record: dict) -> str:
    return f"tiles/{record['tile']}.tif"


QUICKLOOK_MAX_TILES = 4096  # the quicklook reads every tile's overview: at most this many
VRT_BLOCK_TILES = 32     # a zone's VRT over more than 32 × 32 tiles indexes block VRTs instead
VRT_DIR = "vrt"
VRT_SOURCE_BLOCK = 128   # GDAL's block size of a VRT band that states none (a block VRT's)


def _vrt_xml(epsg: int, records: Sequence[dict], sources: Sequence[tuple[str, int, int, int, int, int]]) -> str:
    """VRT XML of every map band over the grid of `records`' tiles; `sources`: (path relative
    to the VRT, x offset, y offset, width, height, block size) of the datasets it mosaics,
    each with the map's bands."""
    from rasterio.crs import CRS

    c0, c1, r0, r1, size, res = _grid_extent(records)
    x0, y1 = c0 * size * res, (r1 + 1) * size * res
    width, height = (c1 - c0 + 1) * size, (r1 - r0 + 1) * size
    srs = CRS.from_epsg(epsg).to_wkt().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{srs}</SRS>",
             f"  <GeoTransform>{x0!r}, {res!r}, 0.0, {y1!r}, 0.0, {-res!r}</GeoTransform>"]
    for b, name in enumerate(cog.BAND_NAMES, start=1):
        lines += [f'  <VRTRasterBand dataType="Float32" band="{b}">',
                  f"    <Description>{name}</Description>",
                  f"    <NoDataValue>{cog.NODATA!r}</NoDataValue>"]
        for path, xoff, yoff, w, h, block in sources:
            lines += ["    <ComplexSource>",
                      f'      <SourceFilename relativeToVRT="1">{path}</SourceFilename>',
                      f"      <SourceBand>{b}</SourceBand>",
                      f'      <SourceProperties RasterXSize="{w}" RasterYSize="{h}" DataType="Float32" '
                      f'BlockXSize="{block}" BlockYSize="{block}" />',
                      f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}" />',
                      f'      <DstRect xOff="{xoff}" yOff="{yoff}" xSize="{w}" ySize="{h}" />',
                      f"      <NODATA>{cog.NODATA!r}</NODATA>",
                      "    </ComplexSource>"]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    return "\n".join(lines) + "\n"


def build_vrt(records: Sequence[dict], epsg: int, prefix: str = "") -> str:
    """VRT XML over the written tiles of one zone, spanning every record's tile; each tile's
    path is `prefix` + ``tiles/<name>.tif``, relative to the VRT (``../../`` from a block VRT)."""
    c0, _, _, r1, size, _ = _grid_extent(records)
    sources = [(prefix + tile_relpath(r), (r["col"] - c0) * size, (r1 - r["row"]) * size, size, size,
                cog.block_size(size)) for r in records if r["status"] == "written"]
    return _vrt_xml(epsg, records, sources)


def write_zone_vrt(out: str, records: Sequence[dict], epsg: int, block_tiles: int = VRT_BLOCK_TILES) -> str:
    """``tiles_<epsg>.vrt`` over the written tiles of one zone. When they span more than one
    block of ``block_tiles`` × ``block_tiles`` tiles, it mosaics one VRT per block
    (``vrt/<epsg>/<block col>_<block row>.vrt``) instead of the tiles: a VRT over a zone of a
    continent (≈ 160 000 tiles) would be ≈ 460 MB of XML that every reader parses whole, the
    block VRTs are ≈ 3 MB each, and GDAL opens only those a read touches."""
    out = out.rstrip("/")
    blocks: dict[tuple[int, int], list[dict]] = {}
    for r in records:
        blocks.setdefault((r["col"] // block_tiles, r["row"] // block_tiles), []).append(r)
    blocks = {k: v for k, v in blocks.items() if any(r["status"] == "written" for r in v)}
    path = f"{out}/tiles_{epsg}.vrt"
    if len(blocks) <= 1:
        return fileio.write_text(path, build_vrt(records, epsg))
    c0, _, _, r1, size, _ = _grid_extent(records)
    sources = []
    for (bc, br), recs in sorted(blocks.items()):
        rel = f"{VRT_DIR}/{epsg}/{bc}_{br}.vrt"
        fileio.write_text(f"{out}/{rel}", build_vrt(recs, epsg, prefix="../../"))
        b0, b1, q0, q1, _, _ = _grid_extent(recs)
        sources.append((rel, (b0 - c0) * size, (r1 - q1) * size, (b1 - b0 + 1) * size, (q1 - q0 + 1) * size,
                        VRT_SOURCE_BLOCK))
    return fileio.write_text(path, _vrt_xml(epsg, records, sources))


def write_mosaic(out: str, records: Sequence[dict], epsg: int) -> str:
    """One COG over every tile of the records (one zone); empty/failed tiles stay nodata."""
    import rasterio
    from affine import Affine

    c0, c1, r0, r1, size, res = _grid_extent(records)
    span = size * res
    data = np.full((len(cog.BAND_NAMES), (r1 - r0 + 1) * size, (c1 - c0 + 1) * size), cog.NODATA, np.float32)
    for r in records:
        if r["status"] != "written":
            continue
        with fileio.local_copy(f"{out}/{tile_relpath(r)}") as path, rasterio.open(path) as ds:
            y, x = (r1 - r["row"]) * size, (r["col"] - c0) * size
            data[:, y:y + size, x:x + size] = ds.read()
    transform = Affine(res, 0.0, c0 * span, 0.0, -res, (r1 + 1) * span)
    return cog.write_cog(f"{out}/{MOSAIC}", data, transform, f"EPSG:{epsg}")


# ------------------------------------------------------------------ quicklook

def _nice_length(max_m: float) -> float:
    """The largest 1/2/5 × 10^k metres not above max_m."""
    k = 10 ** math.floor(math.log10(max_m))
    for m in (5, 2, 1):
        if m * k <= max_m:
            return m * k
    return k


def read_decimated(path: str, max_pixels: int = 1024) -> tuple[dict[str, np.ma.MaskedArray], float]:
    """Every map band (`cog.BAND_NAMES`) as a masked array at most max_pixels on a side, read in
    one pass (one copy of a remote file), and the decimated pixel size (m). A band the file
    lacks (an older map) is fully masked."""
    import rasterio
    with fileio.local_copy(path) as local, rasterio.open(local) as ds:
        f = max(1, math.ceil(max(ds.width, ds.height) / max_pixels))
        shape = (max(1, ds.height // f), max(1, ds.width // f))
        data = {name: ds.read(i, out_shape=shape, masked=True) if i <= ds.count else
                np.ma.masked_all(shape, np.float32)
                for i, name in enumerate(cog.BAND_NAMES, start=1)}
        metres = 1.0
        if ds.crs is not None and ds.crs.is_geographic:     # degrees of longitude at mid-latitude
            metres = 111_320.0 * math.cos(math.radians((ds.bounds.bottom + ds.bounds.top) / 2))
        return data, float(ds.res[0]) * metres * ds.width / shape[1]


def _decimate(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour sample of a full-resolution array onto a decimated grid."""
    rows = (np.arange(shape[0]) * a.shape[0] // shape[0]).astype(int)
    cols = (np.arange(shape[1]) * a.shape[1] // shape[1]).astype(int)
    return a[np.ix_(rows, cols)]


def _panel(fig, ax, data, cmap, vmin, vmax, title: str, label: str):
    import matplotlib
    cm = matplotlib.colormaps[cmap].with_extremes(bad="#d9d9d9")
    im = ax.imshow(data, cmap=cm, vmin=vmin, vmax=vmax, interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cb.set_label(label)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def quicklook(src: str, dest: str, title: str = "clay_mean", vmin: float | None = None,
              vmax: float | None = None, truth: np.ndarray | None = None) -> str:
    """PNG panels side by side: clay_mean (scale bar), [true clay, error = map − truth when
    `truth` (full resolution, the grid of `src`) is given], 90 % interval width, AOA."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bands, px = read_decimated(src)
    band, p05, p95, area = bands["clay_mean"], bands["clay_p05"], bands["clay_p95"], bands["aoa"]
    valid = band.compressed()
    if vmin is None or vmax is None:
        lo, hi = (np.percentile(valid, [2, 98]) if valid.size else (0.0, 60.0))
        if truth is not None and np.isfinite(truth).any():
            t = _decimate(truth, band.shape)
            lo, hi = min(lo, np.nanpercentile(t, 2)), max(hi, np.nanpercentile(t, 98))
        vmin, vmax = (lo, hi) if hi > lo else (lo - 1, hi + 1)
    panels = [(band, "YlOrBr", vmin, vmax, title, "clay (%)")]
    if truth is not None:                  # the truth inside the AOI only (n_obs is nodata outside)
        t = np.ma.masked_array(_decimate(truth, band.shape), mask=np.ma.getmaskarray(bands["n_obs"]))
        t = np.ma.masked_invalid(t)
        err = np.ma.masked_array(band.filled(np.nan) - t.filled(np.nan), mask=band.mask | t.mask)
        e = float(np.nanpercentile(np.abs(err.compressed()), 98)) if err.count() else 1.0
        panels += [(t, "YlOrBr", vmin, vmax, "true clay (embedded world)", "clay (%)"),
                   (err, "RdBu_r", -max(e, 0.1), max(e, 0.1), "error: map − truth", "% clay")]
    if p05.count():
        width = p95 - p05
        w_lo, w_hi = np.percentile(width.compressed(), [2, 98])
        panels.append((width, "viridis", float(w_lo), float(w_hi) + 1e-6,
                       "90 % interval width (p95 − p05)", "% clay"))
    if area.count():
        panels.append((area, "RdYlGn", 0.0, 1.0, "area of applicability (share inside)", "AOA"))
    h, w = band.shape
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2 * h / w + 0.8), dpi=110,
                             squeeze=False)
    for ax, (data, cmap, lo_, hi_, name, label) in zip(axes[0], panels):
        _panel(fig, ax, data, cmap, lo_, hi_, name, label)
    ax = axes[0][0]
    bar_m = _nice_length(w * px / 4)
    bar_px = bar_m / px
    x0, y0 = w * 0.05, h * 0.94
    ax.plot([x0, x0 + bar_px], [y0, y0], color="black", lw=4, solid_capstyle="butt")
    ax.text(x0 + bar_px / 2, y0 - h * 0.02, f"{bar_m / 1000:g} km" if bar_m >= 1000 else f"{bar_m:g} m",
            ha="center", va="bottom", fontsize=9)
    with tempfile.TemporaryDirectory(prefix="s2mos-ql-") as d:
        local = os.path.join(d, os.path.basename(dest))
        fig.savefig(local, bbox_inches="tight")
        plt.close(fig)
        cog.publish(local, dest)
    return dest


# ------------------------------------------------------------------ STAC

def stac_item(out: str, records: Sequence[dict], aoi, start: str, end: str, model_dir: str,
              mosaic: str | None, vrts: dict[int, str], ql: str | None, properties: dict | None = None,
              overviews: Sequence[str] = ()) -> dict:
    """A STAC Item of the map (projection + raster extensions) as a dict; `properties` are
    added to the item's (the map's settings, extraction included)."""
    import datetime as dt
    import pystac
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension
    from shapely.geometry import mapping

    item = pystac.Item(
        id=f"s2mos-clay-{os.path.basename(out.rstrip('/')) or 'map'}",
        geometry=mapping(aoi), bbox=list(aoi.bounds), datetime=None,
        start_datetime=dt.datetime.fromisoformat(start).replace(tzinfo=dt.timezone.utc),
        end_datetime=dt.datetime.fromisoformat(end).replace(tzinfo=dt.timezone.utc),
        properties={"title": "Topsoil clay content (S2MoS)", "s2mos:model_dir": model_dir,
                    "s2mos:tiles": summarize(records) | {"failures": None}, **trust_properties(model_dir),
                    **(properties or {})})
    def bands_meta(resolution: float, descriptions: dict[str, str]) -> list:
        out = []
        for n in cog.BAND_NAMES:
            b = RasterBand.create(nodata=cog.NODATA, data_type=DataType.FLOAT32, unit=BAND_UNITS[n],
                                  spatial_resolution=resolution)
            b.properties.update(name=n, description=descriptions[n])
            out.append(b)
        return out

    def add_raster(key: str, href: str, title: str, epsg: int, recs: Sequence[dict], media: str,
                   px: int | None = None, roles: Sequence[str] = ("data",)):
        """An asset over the grid of `recs`' tiles, `px` pixels a tile side (default: full)."""
        c0, c1, r0, r1, size, res = _grid_extent(recs)
        span = size * res
        px = px or size
        asset = pystac.Asset(href=href, media_type=media, title=title, roles=list(roles),
                             extra_fields={"description": "bands: " + ", ".join(cog.BAND_NAMES)})
        item.add_asset(key, asset)
        proj = ProjectionExtension.ext(asset, add_if_missing=True)
        proj.apply(epsg=epsg, shape=[(r1 - r0 + 1) * px, (c1 - c0 + 1) * px],
                   transform=[span / px, 0.0, c0 * span, 0.0, -span / px, (r1 + 1) * span],
                   bbox=[c0 * span, r0 * span, (c1 + 1) * span, (r1 + 1) * span])
        descriptions = OVERVIEW_DESCRIPTIONS if "overview" in roles else BAND_DESCRIPTIONS
        RasterExtension.ext(asset, add_if_missing=True).apply(bands_meta(span / px, descriptions))

    groups = _by_epsg(records)
    if mosaic:
        (epsg, recs), = groups.items()
        add_raster("mosaic", os.path.basename(mosaic), "clay map mosaic (COG)", epsg, recs,
                   pystac.MediaType.COG)
    for epsg, path in sorted(vrts.items()):
        add_raster(f"tiles_{epsg}", os.path.basename(path), f"tile index, EPSG:{epsg} (VRT)", epsg,
                   groups[epsg], "application/x-gdal-vrt")
    from s2mos_transforms.maps import overview
    for path in overviews:                               # overview_<epsg>.tif: the zone's written tiles
        epsg = int(os.path.basename(path)[len(overview.PREFIX):-len(".tif")])
        recs = [r for r in groups.get(epsg, []) if r["status"] == "written"]
        if recs:
            add_raster(f"overview_{epsg}", os.path.basename(path), f"overview, EPSG:{epsg} (COG)", epsg,
                       recs, pystac.MediaType.COG, px=overview.OVERVIEW_PX, roles=("overview",))
    if ql:
        item.add_asset("quicklook", pystac.Asset(href=os.path.basename(ql), media_type=pystac.MediaType.PNG,
                                                 roles=["overview"], title="clay_mean quicklook"))
    item.add_asset("manifest", pystac.Asset(href=MANIFEST, media_type="application/x-ndjson",
                                            roles=["metadata"], title="per-tile status"))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


# ------------------------------------------------------------------ everything at the end

def finalize(out: str, records: Sequence[dict], aoi, start: str, end: str, model_dir: str,
             mosaic_max_tiles: int = 64, seconds: float | None = None, properties: dict | None = None,
             vrt_block_tiles: int = VRT_BLOCK_TILES, overviews: Sequence[str] = ()) -> dict:
    """Write VRT(s), mosaic (small AOIs), quicklook, STAC Item and summary; return their paths.
    The quicklook reads the mosaic, else the one zone's VRT (up to `QUICKLOOK_MAX_TILES`
    tiles), else the zones' `overviews` (`overview.py`, reprojected when there are several)."""
    out = out.rstrip("/")
    groups = _by_epsg(records)
    written = [r for r in records if r["status"] == "written"]
    vrts: dict[int, str] = {}
    for epsg, recs in groups.items():
        if any(r["status"] == "written" for r in recs):
            vrts[epsg] = write_zone_vrt(out, recs, epsg, vrt_block_tiles)
    mosaic = None
    if written and len(groups) == 1 and len(records) <= mosaic_max_tiles:
        mosaic = write_mosaic(out, records, next(iter(groups)))
    ql, title = None, f"clay_mean (%), {start} … {end}"
    if mosaic or (len(vrts) == 1 and len(written) <= QUICKLOOK_MAX_TILES):
        ql = quicklook(mosaic or next(iter(vrts.values())), f"{out}/{QUICKLOOK}", title=title)
    elif len(overviews) == 1:
        ql = quicklook(overviews[0], f"{out}/{QUICKLOOK}", title=title + " (overview)")
    elif overviews:
        from s2mos_transforms.maps import overview
        with tempfile.TemporaryDirectory(prefix="s2mos-ql-") as d:
            merged = overview.geographic_mosaic(overviews, os.path.join(d, "overviews_4326.tif"))
            ql = quicklook(merged, f"{out}/{QUICKLOOK}", title=title + f" ({len(overviews)} zones)")
    item = stac_item(out, records, aoi, start, end, model_dir, mosaic, vrts, ql, properties, overviews)
    item_path = fileio.write_text(f"{out}/{STAC_ITEM}", json.dumps(item, indent=2))
    paths = {"mosaic": mosaic, "vrt": sorted(vrts.values()), "overview": list(overviews), "quicklook": ql,
             "stac_item": item_path, "manifest": f"{out}/{MANIFEST}"}
    summary = summarize(records) | {"seconds": seconds, "outputs": paths}
    fileio.write_text(f"{out}/{SUMMARY}", json.dumps(summary, indent=2))
    return {"summary": summary, **paths}
