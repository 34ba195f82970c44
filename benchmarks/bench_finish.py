"""The end of a map at continental scale: manifest, VRTs, STAC Item and summary of N tiles.

    python benchmarks/bench_finish.py                          # Europe-like: 1.1 M tiles in 7 zones
    python benchmarks/bench_finish.py --zones 1 --tiles-per-zone 20000

`FinishMap` runs on one worker after every tile is written, so its time and memory grow with
the number of tiles, not with their pixels. This measures it without the tiles themselves:
the records are those `WriteTile` yields (the demo's fields), on square blocks of the 10 m
grid, and the map spans several UTM zones, so no mosaic or quicklook is made (those read the
COGs; `--mosaic-max-tiles` and the quicklook's limit keep them to small maps). Each step runs
in a fresh process, so its peak RSS is its own:

1. ``manifest``: the records' JSON lines (the list `WriteManifest` collects) → ``tiles.jsonl``;
   baseline ``manifest-dicts``: the writer before session 13 (a list of the record dicts,
   sorted, joined into one string);
2. ``finish``: `maps.finish.finish_map` on that manifest (VRTs, STAC Item, summary);
   baseline ``finish-flat``: whole records and one flat VRT per zone over all its tiles
   (before session 13);
3. ``overview``: one zone's ``overview_<epsg>.tif`` from its tiles' 8 × 8 previews (what
   `ZoneOverviews` does on one worker after its GroupByKey), for the largest zone of Europe
   (176 × 1 040 tiles), then the quicklook over 7 such zones reprojected (what FinishMap
   draws for a continent). No baseline: before, a map this size had no quicklook at all.

Prints seconds, peak RSS and the size of what was written, and the ratios.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

STEPS = ("manifest-dicts", "manifest", "finish-flat", "finish", "overview")   # baseline, then now, per step
EUROPE_TILES = 1_093_871         # predict-map --dry-run --bbox -9 36 27 60 (docs/maps.md)


def fake_records(zones: int, per_zone: int, size: int = 256, res: float = 10.0):
    """Tile records of `zones` UTM zones, `per_zone` tiles each on a square block of the grid;
    one tile in 50 empty, one in 5 000 failed, as a large AOI's edges and a few bad reads give."""
    import math
    side = math.ceil(math.sqrt(per_zone))
    for z in range(zones):
        epsg = 32629 + z
        for k in range(per_zone):
            col, row = 100 + k % side, 16_000 + k // side
            name = f"{epsg}_{col}_{row}"
            base = {"tile": name, "epsg": epsg, "col": col, "row": row, "size": size, "res": res}
            if k % 5000 == 4999:
                yield base | {"status": "failed", "reason": "read failed (HTTP 503)"}
            elif k % 50 == 49:
                yield base | {"status": "empty", "reason": "no pixel with ≥ 1 bare observations", "n_aoi": 65536}
            else:
                yield base | {"status": "written", "reused": False, "path": f"gs://b/map/tiles/{name}.tif",
                              "n_aoi": 65536, "n_valid": 60_000 + k % 5000, "n_outside_aoa": k % 300,
                              "clay_mean": round(20 + (k % 400) / 10, 3), "reason": ""}


def step(args) -> dict:
    """One step in this process; its figures as a dict."""
    from shapely.geometry import box

    from s2mos_transforms import fileio
    from s2mos_transforms.maps import finish, outputs
    t0, opened, extra = time.perf_counter(), None, {}
    out = os.path.join(args.out, args.step)
    manifest = os.path.join(args.out, outputs.MANIFEST)
    if args.step == "manifest":
        lines = [outputs.manifest_line(r) for r in fake_records(args.zones, args.tiles_per_zone)]
        outputs.write_manifest_lines(lines, manifest)      # as WriteManifest: one list of lines
        written = {"tiles.jsonl": os.path.getsize(manifest)}
    elif args.step == "overview":
        import numpy as np
        from s2mos_transforms.maps import overview
        rng = np.random.default_rng(0)
        cols, rows, px = 176, 1040, overview.OVERVIEW_PX
        cell = rng.uniform(5, 60, (len(outputs.cog.BAND_NAMES), px, px)).astype(np.float32)
        paths = []
        for z in range(args.zones):
            paths.append(overview.write_zone_overview(
                out, 32629 + z, ((300 + c, 3_500 + r, cell) for r in range(rows) for c in range(cols)), 256, 10.0))
            if z == 0:
                extra["one zone's overview"] = f"{time.perf_counter() - t0:.1f} s"
        t1 = time.perf_counter()
        merged = overview.geographic_mosaic(paths, os.path.join(out, "merged.tif"))
        outputs.quicklook(merged, os.path.join(out, "quicklook.png"))
        extra["quicklook over the zones"] = f"{time.perf_counter() - t1:.1f} s"
        written = {"overview_32629.tif": os.path.getsize(paths[0])}
    elif args.step == "manifest-dicts":
        records = sorted(fake_records(args.zones, args.tiles_per_zone), key=lambda r: r["tile"])
        path = os.path.join(out, outputs.MANIFEST)
        fileio.write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
        written = {"tiles.jsonl": os.path.getsize(path)}
    else:
        spec = finish.MapFinishSpec(out=out, aoi_wkb=box(-9, 36, 27, 60).wkb, start="2018-01-01",
                                    end="2019-12-31", model_dir="gs://b/model")
        if args.step == "finish":
            finish.finish_map(manifest, spec)
        else:
            outputs.finalize(out, outputs.read_manifest(manifest), box(-9, 36, 27, 60), spec.start, spec.end,
                             spec.model_dir, vrt_block_tiles=10 ** 9)
        import rasterio
        seconds = t1 = time.perf_counter()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # before the reader's open
        with rasterio.open(os.path.join(out, "tiles_32629.vrt")) as ds:   # what every reader does first
            ds.block_shapes
        opened = round(time.perf_counter() - t1, 2)
        written = {}
        for root, _, files in os.walk(out):
            for f in files:
                if f != outputs.MANIFEST:
                    key = os.path.relpath(os.path.join(root, f), out).split(os.sep)[0]
                    written[key] = written.get(key, 0) + os.path.getsize(os.path.join(root, f))
    if opened is None:
        seconds, peak = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"step": args.step, "seconds": seconds - t0, "peak_rss_mib": round(peak),
            "open_zone_vrt_s": opened, "extra": extra,
            "written_mb": {k: round(v / 1e6, 1) for k, v in sorted(written.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--zones", type=int, default=7)
    p.add_argument("--tiles-per-zone", type=int, default=EUROPE_TILES // 7)
    p.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.step:
        print(json.dumps(step(args)))
        return
    with tempfile.TemporaryDirectory(prefix="s2mos-bench-finish-") as out:
        print(f"finish of {args.zones * args.tiles_per_zone:,} tiles in {args.zones} UTM zone(s)")
        runs = {}
        for name in STEPS:
            cmd = [sys.executable, os.path.abspath(__file__), "--zones", str(args.zones),
                   "--tiles-per-zone", str(args.tiles_per_zone), "--step", name, "--out", out]
            r = runs[name] = json.loads(subprocess.run(cmd, check=True, capture_output=True,
                                                       text=True).stdout.splitlines()[-1])
            print(f"  {name:15s} {r['seconds']:7.1f} s, peak RSS {r['peak_rss_mib']:6,} MiB, "
                  f"written: {', '.join(f'{k} {v:,} MB' for k, v in r['written_mb'].items())}"
                  + (f"; opening one zone's VRT: {r['open_zone_vrt_s']} s" if r["open_zone_vrt_s"] is not None else "")
                  + "".join(f"; {k}: {v}" for k, v in r["extra"].items()))
        for now, before in (("manifest", "manifest-dicts"), ("finish", "finish-flat")):
            a, b = runs[now], runs[before]
            print(f"  {now} vs {before}: time ×{a['seconds'] / b['seconds']:.2f}, "
                  f"peak RSS ×{a['peak_rss_mib'] / b['peak_rss_mib']:.2f}")


if __name__ == "__main__":
    main()
