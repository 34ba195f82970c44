"""Peak memory of mapping a GeoTIFF stack does not grow with the stack's size.

Writes two S2 + S1 GeoTIFF stacks with the same dates but different extents (a small one
and one of --large-px × --large-px pixels, by default ≈ 2.9 GB of files), then in a fresh
process per stack builds the `geotiff` source, reads one map tile through the warp path
(the files' grid is offset by 5 m from the map grid, so every band is resampled) and turns it
into per-pixel sequences (`maps.pixels.pixel_sequences`), and prints each process's peak
resident memory. The tile's stack holds dates × tile pixels, whatever the files' extent.

    .venv/bin/python benchmarks/bench_geotiff.py [--dates 6] [--small-px 512] [--large-px 4096] [--tile 256]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

EPSG = 32632
X0, Y1 = 500_005.0, 5_380_005.0            # 5 m off the 10 m map grid: every read is warped
BLOCK = 512


def write_stack(root: str, px: int, dates: int, seed: int = 0) -> int:
    """An index.csv stack: per date one 10-band uint16 S2 file + SCL and an S1 VV/VH pair; bytes."""
    import rasterio
    from affine import Affine
    from s2mos_transforms import bands

    rng = np.random.default_rng(seed)
    transform = Affine(10.0, 0.0, X0, 0.0, -10.0, Y1)
    base = {"driver": "GTiff", "width": px, "height": px, "crs": f"EPSG:{EPSG}", "transform": transform,
            "tiled": True, "blockxsize": BLOCK, "blockysize": BLOCK}
    rows = []
    t0 = np.datetime64("2018-03-01T10:30:00", "s")
    for d in range(dates):
        when = t0 + np.timedelta64(5 * d, "D")
        stamp = str(when).replace("-", "").replace(":", "")
        for sensor, files in (("S2", (("refl.tif", 10, "uint16", 0), ("SCL.tif", 1, "uint8", 0))),
                              ("S1", (("VV.tif", 1, "float32", float("nan")), ("VH.tif", 1, "float32", float("nan"))))):
            folder = os.path.join(root, sensor, stamp)
            os.makedirs(folder, exist_ok=True)
            t = when if sensor == "S2" else when - np.timedelta64(5, "h")
            for name, count, dtype, nodata in files:
                path = os.path.join(folder, name)
                with rasterio.open(path, "w", count=count, dtype=dtype, nodata=nodata, **base) as ds:
                    for r in range(0, px, BLOCK):
                        for c in range(0, px, BLOCK):
                            h, w = min(BLOCK, px - r), min(BLOCK, px - c)
                            win = rasterio.windows.Window(c, r, w, h)
                            if name == "refl.tif":
                                block = rng.integers(300, 4000, (count, h, w), dtype=np.uint16)
                            elif name == "SCL.tif":
                                block = np.full((1, h, w), 4, np.uint8)
                            else:
                                block = rng.normal(-12.0 if name == "VV.tif" else -18.0, 2.0, (1, h, w)).astype(np.float32)
                            ds.write(block, window=win)
                band = ";".join(bands.S2_BANDS) if name == "refl.tif" else name[:-4]
                rows.append(f"{sensor}/{stamp}/{name},{sensor},{t}Z,{band},{'dB' if sensor == 'S1' else ''},5.0")
    with open(os.path.join(root, "index.csv"), "w") as fh:
        fh.write("path,sensor,datetime,band,unit,scene_cloud_pct\n" + "\n".join(rows) + "\n")
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)


def map_one_tile(stack: str, tile_px: int) -> dict:
    """In this process: the source, one tile's stack and its pixel sequences; peak RSS."""
    from s2mos_transforms import bands
    from s2mos_transforms.grid import Tile
    from s2mos_transforms.maps import pixels
    from s2mos_transforms.sources.geotiff import GeoTiffSource

    t0 = time.time()
    src = GeoTiffSource(stack)
    span = tile_px * 10.0
    tile = Tile(EPSG, int(X0 // span) + 1, int(Y1 // span) - 1, tile_px)    # inside every stack
    st = src.tile_stack(tile)
    seqs = pixels.pixel_sequences(st, np.arange(tile_px * tile_px), bands.CHANNELS_S2S1)
    return {"stack_mb": None, "tile_stack_mb": round(st.nbytes / 2**20, 1), "dates_s2": len(st.s2_times),
            "pixels_with_sequences": int((seqs.lengths > 0).sum()), "seconds": round(time.time() - t0, 2),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dates", type=int, default=6)
    ap.add_argument("--small-px", type=int, default=512)
    ap.add_argument("--large-px", type=int, default=4096)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(map_one_tile(args.child, args.tile)))
        return
    work = tempfile.mkdtemp(prefix="bench-geotiff-")
    try:
        for px in (args.small_px, args.large_px):
            root = os.path.join(work, f"stack_{px}")
            t0 = time.time()
            size = write_stack(root, px, args.dates)
            written = time.time() - t0
            out = subprocess.run([sys.executable, __file__, "--child", root, "--tile", str(args.tile)],
                                 check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
            res = json.loads(out)
            res["stack_mb"] = round(size / 2**20, 1)
            print(f"stack {px} x {px} px, {args.dates} dates: {res['stack_mb']:,.0f} MB of files (written in "
                  f"{written:.0f} s); tile {args.tile} px: stack {res['tile_stack_mb']} MB, "
                  f"{res['pixels_with_sequences']} pixels with sequences, {res['seconds']} s, "
                  f"peak RSS {res['peak_rss_mb']:,.0f} MB")
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
