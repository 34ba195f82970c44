"""Benchmark the embedded world: `s2mos world export` and `SyntheticSource.tile_stack`.

Export: wall time and peak memory of `s2mos world export --preset paper`, plus the quick preset
measured in the same run as a baseline (ratio per point).
Tiles: seconds per map tile of the quick preset (2 years, S2 every 5 days + S1 every 6 days) at
64, 128 and 256 px, pixels per second, and peak RSS; each tile size runs in a fresh process so
its peak memory is its own.
Usage: python benchmarks/bench_world.py [--preset paper] [--n-points N]
                                        [--only export|tiles] [--tile-sizes 64,128,256]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

from s2mos_transforms.world.export import export_world


def measure(preset: str, n_points: int | None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = export_world(preset, out, n_points, progress=False)
        return time.perf_counter() - t0, summary["points"]


def aoi_tile(preset: str, size: int):
    """The tile of `size` px containing the centre of the preset's map AOI."""
    import numpy as np

    from s2mos_transforms.grid import Tile, lonlat_to_xy, utm_epsg
    from s2mos_transforms.world.presets import get_preset
    w, s, e, n = get_preset(preset).aoi_bbox
    lat, lon = (s + n) / 2, (w + e) / 2
    epsg = utm_epsg(lat, lon)
    x, y = lonlat_to_xy(epsg, lon, lat)
    return Tile(epsg, int(np.floor(x / (size * 10))), int(np.floor(y / (size * 10))), size)


def time_tile(preset: str, size: int) -> dict:
    """One tile_stack in this process: seconds, pixels/s, peak RSS (MiB)."""
    from s2mos_transforms.sources.synthetic import SyntheticSource
    source = SyntheticSource(preset)
    tile = aoi_tile(preset, size)
    t0 = time.perf_counter()
    stack = source.tile_stack(tile)
    secs = time.perf_counter() - t0
    return {"size": size, "seconds": secs, "pixels_per_s": size * size / secs,
            "s2_dates": len(stack.s2_times), "s1_dates": len(stack.s1_times),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def tile_benchmark(preset: str, sizes: list[int]) -> None:
    for size in sizes:
        proc = subprocess.run([sys.executable, __file__, "--tile-child", preset, str(size)],
                              capture_output=True, text=True, check=True)
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{preset} tile_stack {size:>4} px ({r['s2_dates']} S2 + {r['s1_dates']} S1 dates): "
              f"{r['seconds']:.1f} s/tile, {r['pixels_per_s']:.0f} pixels/s, peak RSS {r['peak_rss_mib']:.0f} MiB",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--n-points", type=int, default=None)
    parser.add_argument("--only", choices=("export", "tiles"), default=None)
    parser.add_argument("--tile-preset", default="quick")
    parser.add_argument("--tile-sizes", default="64,128,256", help="comma-separated tile sizes in px")
    parser.add_argument("--tile-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tile_child:
        print(json.dumps(time_tile(args.tile_child[0], int(args.tile_child[1]))))
        return
    if args.only in (None, "tiles"):
        tile_benchmark(args.tile_preset, [int(s) for s in args.tile_sizes.split(",") if s])
    if args.only in (None, "export"):
        base_s, base_n = measure("quick", None)
        secs, n = measure(args.preset, args.n_points)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"baseline quick export: {base_n} points in {base_s:.1f} s ({base_n / base_s:.0f} points/s)")
        print(f"{args.preset} export: {n} points in {secs:.1f} s ({n / secs:.0f} points/s), "
              f"peak RSS {peak_mib:.0f} MiB")
        print(f"ratio of per-point cost {args.preset}/quick: {(secs / n) / (base_s / base_n):.2f}")


if __name__ == "__main__":
    main()
