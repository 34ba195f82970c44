"""Benchmark: `s2mos world export --preset paper` wall time and peak memory.

Prints figures, plus the quick preset measured in the same run as a baseline (ratio per point).
Usage: python benchmarks/bench_world.py [--preset paper] [--n-points N]
"""
from __future__ import annotations

import argparse
import resource
import tempfile
import time

from s2mos_transforms.world.export import export_world


def measure(preset: str, n_points: int | None) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = export_world(preset, out, n_points, progress=False)
        return time.perf_counter() - t0, summary["points"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--n-points", type=int, default=None)
    args = parser.parse_args()
    base_s, base_n = measure("quick", None)
    secs, n = measure(args.preset, args.n_points)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"baseline quick export: {base_n} points in {base_s:.1f} s ({base_n / base_s:.0f} points/s)")
    print(f"{args.preset} export: {n} points in {secs:.1f} s ({n / secs:.0f} points/s), "
          f"peak RSS {peak_mib:.0f} MiB")
    print(f"ratio of per-point cost {args.preset}/quick: {(secs / n) / (base_s / base_n):.2f}")


if __name__ == "__main__":
    main()
