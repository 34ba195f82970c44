"""Benchmark `s2mos build-dataset` on the embedded world: points/s and peak memory.

    python benchmarks/bench_dataset.py                 # paper preset, all ≈ 8 400 points
    python benchmarks/bench_dataset.py --n-points 500  # smaller

Runs the real command (DirectRunner) once in-process mode with 1 worker and once with
``--direct_num_workers=2 --direct_running_mode=multi_processing``, each as a separate
process; peak memory is the largest summed RSS of the process tree (launcher + workers),
sampled every 0.2 s.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import psutil

MODES = {
    "1 worker": [],
    "2 workers": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
}


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc] + proc.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd: list[str]) -> tuple[float, int, str]:
    """Run cmd; return (seconds, peak tree RSS in bytes, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    ps = psutil.Process(proc.pid)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(ps))
            except psutil.Error:
                pass
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    done.set()
    thread.join()
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"bench_dataset: command failed ({proc.returncode}):\n{err[-3000:]}")
    return seconds, peak[0], out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--n-points", type=int, default=None, help="default: the preset's sample count")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of: " + ", ".join(MODES))
    parser.add_argument("--keep", metavar="DIR", help="keep the outputs under DIR")
    args = parser.parse_args(argv)

    from s2mos_transforms.sources.synthetic import SyntheticSource

    work = args.keep or tempfile.mkdtemp(prefix="bench_dataset_")
    os.makedirs(work, exist_ok=True)
    samples = SyntheticSource(args.preset).sample_points(args.n_points)
    samples_path = os.path.join(work, "samples.csv")
    samples.to_csv(samples_path, index=False)
    n = len(samples)
    exe = os.path.join(os.path.dirname(sys.executable), "s2mos")
    print(f"build-dataset benchmark: preset {args.preset}, {n} points, {os.cpu_count()} CPUs")
    rows = []
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        out = os.path.join(work, "out-" + mode.replace(" ", "-"))
        cmd = [exe, "build-dataset", "--samples", samples_path, "--preset", args.preset, "--out", out, *MODES[mode]]
        seconds, peak, _ = run_measured(cmd)
        with open(os.path.join(out, "summary.json")) as fh:
            summary = json.load(fh)
        rows.append({"mode": mode, "points": n, "seconds": round(seconds, 1), "points_per_s": round(n / seconds, 1),
                     "peak_rss_mib": round(peak / 2**20), "calibration": summary["calibration"],
                     "test": summary["test"], "rejected": summary["rejected"]})
        r = rows[-1]
        print(f"  {mode:>9}: {r['seconds']:7.1f} s  {r['points_per_s']:7.1f} points/s  peak RSS {r['peak_rss_mib']} MiB"
              f"  (calibration {r['calibration']}, test {r['test']}, rejected {r['rejected']})", flush=True)
    print(json.dumps(rows))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
