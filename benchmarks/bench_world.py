"""Benchmark the embedded world: `s2mos world export` and `SyntheticSource.tile_stack`.

Export: wall time, CPU time and peak memory of `s2mos world export --preset paper`, plus the
quick preset measured in the same run as a baseline (ratio per point). CPU seconds are printed
next to wall seconds because on a shared machine the wall time follows the load.
To compare two versions of the world in one session, run this script with PYTHONPATH set to
the other tree (e.g. `git archive REV | tar -x -C /tmp/old`; `PYTHONPATH=/tmp/old python
benchmarks/bench_world.py`): the script uses only interfaces both keep.
Tiles: seconds per map tile of the quick preset (2 years, S2 every 5 days + S1 every 6 days) at
64, 128 and 256 px, pixels per second, and peak RSS; each tile size runs in a fresh process so
its peak memory is its own. Two places: `inside`, a tile west of the AOI wholly inside one orbit
band and one granule, and `aoi`, the tile at the AOI centre, which at 128 and 256 px straddles
the 9° E orbit-band boundary (its stack holds both bands' acquisitions, each pixel nodata on
the other band's dates).
Each tile is made twice, in its own process: `whole` (every acquisition touching it, what a
GeoTIFF or datacube export writes) and `map` (what predict-map asks for: `StackNeeds`, the
scenes the scene filter keeps and the S1 dates that can pair with them; a tree without
`StackNeeds` makes the whole stack there and says so); the ratio map/whole is printed.
Usage: python benchmarks/bench_world.py [--preset paper] [--n-points N]
                                        [--only export|tiles] [--tile-sizes 64,128,256]
                                        [--tile-places inside,aoi]
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


def measure(preset: str, n_points: int | None) -> tuple[float, int, float]:
    """Wall seconds, points and CPU seconds (this process) of one export."""
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), time.process_time()
        summary = export_world(preset, out, n_points, progress=False)
        return time.perf_counter() - t0, summary["points"], time.process_time() - c0


# How far west of the AOI centre the `inside` tile lies (deg): > half a 256 px tile off 9° E.
INSIDE_SHIFT_DEG = 0.05


def aoi_tile(preset: str, size: int, place: str = "aoi"):
    """The tile of `size` px containing the centre of the preset's map AOI (`aoi`), or the
    point INSIDE_SHIFT_DEG west of it (`inside`)."""
    import numpy as np

    from s2mos_transforms.grid import Tile, lonlat_to_xy, utm_epsg
    from s2mos_transforms.world.presets import get_preset
    w, s, e, n = get_preset(preset).aoi_bbox
    lat, lon = (s + n) / 2, (w + e) / 2
    if place == "inside":
        lon -= INSIDE_SHIFT_DEG
    epsg = utm_epsg(lat, lon)
    x, y = lonlat_to_xy(epsg, lon, lat)
    return Tile(epsg, int(np.floor(x / (size * 10))), int(np.floor(y / (size * 10))), size)


def time_tile(preset: str, size: int, place: str, kind: str = "whole") -> dict:
    """One tile_stack in this process (`kind`: whole, or map = with predict-map's `StackNeeds`):
    seconds, pixels/s, peak RSS (MiB), orbit bands and granules the tile touches."""
    import numpy as np

    from s2mos_transforms.sources.synthetic import SyntheticSource
    from s2mos_transforms.world.simulator import GRANULE_DEG, orbit_band
    source = SyntheticSource(preset)
    tile = aoi_tile(preset, size, place)
    lon, lat = tile.pixel_centres_lonlat()
    granules = {(a, o) for a, o in zip(np.floor(lat.ravel() / GRANULE_DEG), np.floor(lon.ravel() / GRANULE_DEG))}
    kw = {}
    if kind == "map":
        try:
            from s2mos_transforms.sources.base import StackNeeds
            kw = {"needs": StackNeeds()}
        except ImportError:                       # a tree from before StackNeeds: whole stacks only
            kind = "map (whole: no StackNeeds in this tree)"
    t0, c0 = time.perf_counter(), time.process_time()
    stack = source.tile_stack(tile, **kw)
    secs = time.perf_counter() - t0
    return {"size": size, "kind": kind, "seconds": secs, "cpu_seconds": time.process_time() - c0,
            "pixels_per_s": size * size / secs,
            "s2_dates": len(stack.s2_times), "s1_dates": len(stack.s1_times),
            "bands": int(np.unique(orbit_band(lon)).size), "granules": len(granules),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def tile_benchmark(preset: str, sizes: list[int], places: list[str]) -> None:
    for place in places:
        for size in sizes:
            runs = {}
            for kind in ("whole", "map"):
                proc = subprocess.run([sys.executable, __file__, "--tile-child", preset, str(size), place, kind],
                                      capture_output=True, text=True, check=True)
                r = runs[kind] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"{preset} tile_stack {r['kind']:>5} {place:>6} {size:>4} px ({r['bands']} orbit band(s), "
                      f"{r['granules']} granule(s); {r['s2_dates']} S2 + {r['s1_dates']} S1 dates): "
                      f"{r['seconds']:.1f} s/tile (CPU {r['cpu_seconds']:.1f} s), "
                      f"{r['pixels_per_s']:.0f} pixels/s, peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
            w, m = runs["whole"], runs["map"]
            print(f"  map/whole: CPU ×{m['cpu_seconds'] / w['cpu_seconds']:.2f}, "
                  f"peak RSS ×{m['peak_rss_mib'] / w['peak_rss_mib']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--n-points", type=int, default=None)
    parser.add_argument("--only", choices=("export", "tiles"), default=None)
    parser.add_argument("--tile-preset", default="quick")
    parser.add_argument("--tile-sizes", default="64,128,256", help="comma-separated tile sizes in px")
    parser.add_argument("--tile-places", default="inside,aoi",
                        help="comma-separated tile places: inside (one orbit band), aoi (the AOI centre)")
    parser.add_argument("--tile-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tile_child:
        preset, size, place, kind = args.tile_child
        print(json.dumps(time_tile(preset, int(size), place, kind)))
        return
    if args.only in (None, "tiles"):
        places = [p for p in args.tile_places.split(",") if p]
        bad = set(places) - {"inside", "aoi"}
        if bad:
            parser.error(f"--tile-places: unknown place(s) {', '.join(sorted(bad))} (inside, aoi)")
        tile_benchmark(args.tile_preset, [int(s) for s in args.tile_sizes.split(",") if s], places)
    if args.only in (None, "export"):
        base_s, base_n, base_cpu = measure("quick", None)
        secs, n, cpu = measure(args.preset, args.n_points)
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"baseline quick export: {base_n} points in {base_s:.1f} s (CPU {base_cpu:.1f} s, "
              f"{base_n / base_s:.0f} points/s)")
        print(f"{args.preset} export: {n} points in {secs:.1f} s (CPU {cpu:.1f} s, {n / secs:.0f} points/s), "
              f"peak RSS {peak_mib:.0f} MiB")
        print(f"ratio of per-point cost {args.preset}/quick: {(secs / n) / (base_s / base_n):.2f}")


if __name__ == "__main__":
    main()
