"""What a map costs per pixel with each tile source: the embedded world vs the files it exports.

`predict-map --dry-run` estimates a map's compute from one rate per source
(`SourcePlugin.map_core_seconds_per_pixel`). A map's work after the source (masks, sequences,
inference, COGs) is the same whatever the source, so a source's rate is the embedded world's
(`maps.plan.CORE_SECONDS_PER_PIXEL`, benchmarks/bench_map.py) with the simulator's reads
replaced by the source's. This script measures those reads for the sources that run offline:

1. Exports the quick preset's AOI as a GeoTIFF stack and as a netCDF datacube
   (`s2mos world export --format geotiff-stack|datacube`), unless --stacks-dir holds them.
2. Per source, in a fresh process: the CPU seconds of reading every map tile's stack as
   predict-map does (`sources.base.map_stack` with the default scene filter's `StackNeeds`),
   per AOI pixel. `synthetic` simulates the stacks; `geotiff` reads the stack's files through
   GDAL; `datacube` reads the cube's chunks.
3. Per source, in a fresh process: `s2mos predict-map` of the AOI (DirectRunner) — wall time,
   CPU, peak RSS, and whether its COG tiles equal the synthetic map's bit for bit (the files
   hold the world's own pixels, so they must).
4. Prints the table and each source's dry-run rate: CORE_SECONDS_PER_PIXEL − the synthetic
   reads per pixel + the source's reads per pixel, all measured in this run except the first.

    .venv/bin/python benchmarks/bench_sources.py [--model-dir M] [--tile-size 128] [--stacks-dir D]

Without --model-dir an untrained 5-bag paper CNN is used (benchmarks/bench_map.py): the cost
of inference does not depend on the weights, and step 2 does not use the model.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.bench_map import cpu_seconds, peak_rss_mb, untrained_model  # noqa: E402
from s2mos_transforms.maps.plan import CORE_SECONDS_PER_PIXEL  # noqa: E402

SOURCES = ("synthetic", "geotiff", "datacube")
PRESET = "quick"


def export(stacks_dir: str) -> dict[str, list[str]]:
    """The quick AOI as a GeoTIFF stack and a datacube under `stacks_dir` → each source's flags."""
    from pipelines.cli import main
    stack, cube = os.path.join(stacks_dir, "stack"), os.path.join(stacks_dir, "cube.nc")
    if not os.path.exists(os.path.join(stack, "index.csv")):
        assert main(["world", "export", "--preset", PRESET, "--format", "geotiff-stack", "--out", stack, "--quiet"]) == 0
    if not os.path.exists(cube):
        assert main(["world", "export", "--preset", PRESET, "--format", "datacube", "--out", cube, "--quiet"]) == 0
    return {"synthetic": ["--source", "synthetic", "--preset", PRESET],
            "geotiff": ["--source", "geotiff", "--stack", stack],
            "datacube": ["--source", "datacube", "--cube", cube]}


def source_options(stacks_dir: str) -> dict[str, dict]:
    """Each source's options (`sources.create`) for the exports under `stacks_dir`."""
    return {"synthetic": {"preset": PRESET, "seed": None},
            "geotiff": {"stack": os.path.abspath(os.path.join(stacks_dir, "stack"))},
            "datacube": {"cube": os.path.abspath(os.path.join(stacks_dir, "cube.nc"))}}


def child_reads(args) -> None:
    """Every map tile's stack of the quick AOI from one source, read as predict-map reads it → JSON."""
    from s2mos_transforms import sources
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.sequences import ExtractConfig
    from s2mos_transforms.sources.base import StackNeeds, map_stack
    from s2mos_transforms.world.presets import get_preset

    name, options = json.loads(args.reads)
    preset = get_preset(PRESET)
    source = sources.create(name, options)
    tasks = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*preset.aoi_bbox), args.tile_size)
    needs = StackNeeds.of(ExtractConfig())
    map_stack(source, tasks[0].tile, preset.start, preset.end, needs)       # warm-up: indexes, caches
    c0, t0 = cpu_seconds(), time.perf_counter()
    for task in tasks:
        map_stack(source, task.tile, preset.start, preset.end, needs)
    cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
    pixels = int(sum(task.inside_mask().sum() for task in tasks))
    print(json.dumps({"tiles": len(tasks), "aoi_pixels": pixels, "read_cpu_seconds": cpu, "read_seconds": wall}))


def child_run(args) -> None:
    """One `s2mos predict-map` of the quick AOI in this process → JSON: CPU, wall, peak RSS."""
    from pipelines.cli import main
    from s2mos_transforms.world.presets import get_preset

    preset = get_preset(PRESET)
    c0, t0 = cpu_seconds(), time.perf_counter()
    rc = main(["predict-map", "--model-dir", args.model_dir, "--bbox", *map(str, preset.aoi_bbox),
               "--start", preset.start, "--end", preset.end, "--tile-size", str(args.tile_size),
               "--out", args.out, "--no-report", "--runner", "DirectRunner", *json.loads(args.child)])
    print(json.dumps({"rc": rc, "seconds": time.perf_counter() - t0, "cpu_seconds": cpu_seconds() - c0,
                      "peak_rss_mb": peak_rss_mb()}))


def same_tiles(a: str, b: str) -> bool:
    """Every COG tile of map `a` equals map `b`'s, band for band."""
    import numpy as np
    import rasterio
    names = sorted(os.path.relpath(p, a) for p in glob.glob(os.path.join(a, "tiles", "**", "*.tif"), recursive=True))
    if not names or names != sorted(os.path.relpath(p, b) for p in glob.glob(os.path.join(b, "tiles", "**", "*.tif"),
                                                                               recursive=True)):
        return False
    for n in names:
        with rasterio.open(os.path.join(a, n)) as x, rasterio.open(os.path.join(b, n)) as y:
            if not np.array_equal(x.read(), y.read()):
                return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", help="trained model directory (default: an untrained 5-bag paper CNN)")
    ap.add_argument("--tile-size", type=int, default=128)
    ap.add_argument("--stacks-dir", help="where the exports are (or go); default a temporary directory")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--reads", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_run(args)
        return
    if args.reads:
        child_reads(args)
        return
    work = tempfile.mkdtemp(prefix="bench-sources-")
    if args.model_dir is None:
        args.model_dir = untrained_model(os.path.join(work, "model"))
    t0 = time.perf_counter()
    stacks_dir = args.stacks_dir or os.path.join(work, "stacks")
    flags, options = export(stacks_dir), source_options(stacks_dir)
    print(f"exports ready in {time.perf_counter() - t0:.0f} s; mapping the {PRESET} AOI in tiles of "
          f"{args.tile_size} px, one fresh process per source")
    results = {}
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def child(*flags_) -> dict | None:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--tile-size", str(args.tile_size),
                               "--model-dir", args.model_dir, *flags_], capture_output=True, text=True, cwd=here)
        line = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if proc.returncode or not line or json.loads(line[-1]).get("rc"):
            print(f"  failed: {' '.join(flags_)[:200]}\n{proc.stderr[-3000:]}")
            return None
        return json.loads(line[-1])

    for name in SOURCES:
        reads = child("--reads", json.dumps([name, options[name]]))
        out = os.path.join(work, f"map-{name}")
        mapped = child("--child", json.dumps(flags[name]), "--out", out)
        if not (reads and mapped):
            continue
        r = reads | mapped
        r["read_core_ms_per_pixel"] = 1e3 * r["read_cpu_seconds"] / max(r["aoi_pixels"], 1)
        r["same_tiles_as_synthetic"] = name == "synthetic" or same_tiles(os.path.join(work, "map-synthetic"), out)
        results[name] = r
    base = results.get("synthetic")
    print(f"| source | reads: core-ms per AOI pixel | vs synthetic | dry-run rate, core-ms per pixel | "
          f"predict-map wall s | CPU s | peak RSS MB | tiles equal to synthetic |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, r in results.items():
        ratio = rate = "—"
        if base:
            ratio = f"{r['read_core_ms_per_pixel'] / base['read_core_ms_per_pixel']:.2f}×"
            r["dry_run_core_seconds_per_pixel"] = (CORE_SECONDS_PER_PIXEL
                                                   + (r["read_core_ms_per_pixel"] - base["read_core_ms_per_pixel"]) / 1e3)
            rate = f"{r['dry_run_core_seconds_per_pixel'] * 1e3:.3f}"
        print(f"| {name} | {r['read_core_ms_per_pixel']:.3f} | {ratio} | {rate} | {r['seconds']:.1f} | "
              f"{r['cpu_seconds']:.1f} | {r['peak_rss_mb']:.0f} | {'yes' if r['same_tiles_as_synthetic'] else 'NO'} |")
    print(f"({len(results)} sources; {base['tiles'] if base else '?'} tiles of {args.tile_size} px, "
          f"{base['aoi_pixels'] if base else '?'} AOI pixels; CORE_SECONDS_PER_PIXEL = {CORE_SECONDS_PER_PIXEL * 1e3:.2f} core-ms)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
