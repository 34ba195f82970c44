"""Map inference speed and memory: the fast path vs a plain padded Keras baseline, same run.

    python benchmarks/bench_map.py                       # untrained 5-bag paper CNN, quick AOI
    python benchmarks/bench_map.py --model-dir MODEL_DIR # a trained model (same cost)
    python benchmarks/bench_map.py --memory-tiles 1 4 9  # peak memory of the whole pipeline vs AOI size

1. Per-pixel sequences of every pixel of the quick preset's map AOI (source time reported
   apart: it is the simulator's cost, not inference's; the stacks are what predict-map reads,
   `StackNeeds`, with the whole stacks' time beside), timed beside the dense chain they
   replaced (`_baseline_sequences.py`, a verbatim copy) on the same stacks; the two must agree
   bit for bit.
2. Fast path (`maps.engines.FastEnsemble`): pixels/s, CPU core-seconds per pixel.
3. Baseline: the same bag models called with Keras ``predict`` on every pixel padded to 150
   dates (normalised as the SavedModel does), averaged over the bags. Same pixels, same run.
4. Ratio, agreement of the two, and estimated core-hours for 10^10 bare pixels.
5. Optional: `s2mos predict-map` in a fresh process per AOI size (1, 4, 9 … tiles): peak RSS
   should stay flat as the AOI grows (memory is bounded by the tile size); the process's CPU
   per AOI pixel and the COG tiles' bytes per AOI pixel, the two rates `maps.plan`
   (`--dry-run`) estimates a map's compute and output from.
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
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

CONTINENT_PIXELS = 1e10


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM: reset at exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def untrained_model(out: str, bags: int = 5) -> str:
    """A model directory in the trainer's export layout: paper CNNs, seeded, untrained."""
    import keras
    from s2mos_transforms import bands
    from s2mos_transforms.normalize import MinMax, NormStats
    from trainer import ensemble, models

    os.makedirs(os.path.join(out, "bags"), exist_ok=True)
    members = []
    for k in range(bags):
        keras.utils.set_random_seed(k)
        m = models.build_cnn(12, use_coords=True)
        m.save(os.path.join(out, "bags", f"bag_{k}.keras"))
        members.append(m)
    hi = np.array([0.25, 0.3, 0.35, 0.4, 0.42, 0.45, 0.5, 0.5, 0.6, 0.55, -3.0, -10.0])
    lo = np.concatenate([np.zeros(10), [-22.0, -30.0]])
    stats = NormStats({"s2s1": MinMax(lo, hi), "coords": MinMax(np.array([44.0, 2.0]), np.array([52.0, 14.0])),
                       "clay": MinMax(np.array([1.0]), np.array([79.0]))})
    ensemble.export(os.path.join(out, "ensemble"), members, stats, bands.CHANNELS_S2S1, "s2s1", True)
    return out


def collect_sequences(preset_name: str, tile_size: int, channels):
    """Ragged sequences (values, lengths, coords) of every AOI pixel with ≥ 1 observation; the
    dense pre-rewrite chain (`_baseline_sequences`) runs on the same stacks for the ratio."""
    import _baseline_sequences as dense
    from s2mos_transforms import bands
    from s2mos_transforms.maps import pixels, tiling
    from s2mos_transforms.sequences import ExtractConfig
    from s2mos_transforms.world.presets import get_preset
    from s2mos_transforms.sources.synthetic import SyntheticSource

    from s2mos_transforms.sources.base import StackNeeds, map_stack

    preset = get_preset(preset_name)
    source = SyntheticSource(preset_name)
    tasks = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*preset.aoi_bbox), tile_size)
    vals, lens, coords = [], [], []
    n_aoi = 0
    t_src = t_whole = t_seq = t_dense = 0.0
    identical = True
    for task in tasks:
        t0 = time.perf_counter()
        whole = source.tile_stack(task.tile, preset.start, preset.end)     # the whole stack, for the ratio
        t_whole += time.perf_counter() - t0
        del whole
        t0 = time.perf_counter()
        # what predict-map reads: the scenes the scene filter keeps, the S1 dates that can pair
        stack = map_stack(source, task.tile, preset.start, preset.end, StackNeeds.of(ExtractConfig()))
        t1 = time.perf_counter()
        inside = np.flatnonzero(task.inside_mask().ravel())
        seqs = pixels.pixel_sequences(stack, inside, channels)
        t2 = time.perf_counter()
        d_len, d_val = dense.pixel_sequences(stack, inside, tuple(channels) == bands.CHANNELS_S2S1, ExtractConfig())
        t_dense += time.perf_counter() - t2
        identical &= bool(np.array_equal(d_len, seqs.lengths) and d_val.shape == seqs.values.shape
                          and np.array_equal(d_val.view(np.uint32), seqs.values.view(np.uint32)))
        seqs = seqs.subset(seqs.lengths >= 1)
        t_seq += t2 - t1
        t_src += t1 - t0
        n_aoi += inside.size
        vals.append(seqs.values)
        lens.append(seqs.lengths)
        coords.append(pixels.coords_of(task.tile, seqs.pixels))
    return (np.concatenate(vals), np.concatenate(lens), np.concatenate(coords),
            {"tiles": len(tasks), "aoi_pixels": int(n_aoi), "source_s": t_src, "source_whole_s": t_whole,
             "sequences_s": t_seq,
             "sequences_baseline_s": t_dense, "sequences_identical": identical})


def baseline_predict(fast, values, lengths, coords, batch_size: int) -> tuple[np.ndarray, float, float]:
    """Keras predict on every pixel padded to 150 dates, mean over the bags (% clay)."""
    from s2mos_transforms.maps import engines

    meta = fast.meta
    offsets = np.concatenate([[0], np.cumsum(lengths.astype(np.int64))])
    sel = np.arange(lengths.size)
    x = engines.pad_batch(values, offsets, lengths.astype(np.int64), sel, meta.max_dates)
    valid = (np.arange(meta.max_dates)[None, :] < np.minimum(lengths, meta.max_dates)[:, None])[..., None]
    xn = np.where(valid, meta.seq_stats.scale(x), np.float32(0)).astype(np.float32)
    cn = meta.stats["coords"].scale(coords)
    inputs = {"sequence": xn, "coords": cn} if meta.use_coords else {"sequence": xn}
    for m in fast.models:                                   # warm-up (graph build) outside the timing
        m.predict({k: v[:batch_size] for k, v in inputs.items()}, batch_size=batch_size, verbose=0)
    c0, t0 = cpu_seconds(), time.perf_counter()
    z = np.stack([m.predict(inputs, batch_size=batch_size, verbose=0).reshape(-1) for m in fast.models])
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    clay = meta.stats["clay"].unscale(z.reshape(-1, 1)).reshape(z.shape)
    return clay.mean(axis=0), wall, cpu


def child_run(args) -> None:
    """One `s2mos predict-map` in this process; print its peak RSS (MB) as JSON."""
    from pipelines.cli import main
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.grid import xy_to_lonlat
    from s2mos_transforms.world.presets import get_preset

    first = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*get_preset("quick").aoi_bbox), args.tile_size)[0].tile
    k = int(round(args.child ** 0.5))
    span = args.tile_size * first.res
    x0, y0 = first.col * span + 30, first.row * span + 30
    x1, y1 = (first.col + k) * span - 30, (first.row + k) * span - 30
    lon, lat = xy_to_lonlat(first.epsg, np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]))
    bbox = [max(lon[0], lon[2]), max(lat[0], lat[1]), min(lon[1], lon[3]), min(lat[2], lat[3])]
    out = tempfile.mkdtemp(prefix="bench-map-")
    t0, c0 = time.perf_counter(), cpu_seconds()
    rc = main(["predict-map", "--model-dir", args.model_dir, "--preset", "quick", "--bbox", *map(str, bbox),
               "--tile-size", str(args.tile_size), "--out", out, "--no-report", "--runner", "DirectRunner"])
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    sizes = cog_bytes(out)
    print(json.dumps({"tiles": args.child, "rc": rc, "seconds": seconds, "cpu_seconds": cpu,
                      "core_ms_per_pixel": 1e3 * cpu / max(sizes["aoi_pixels"], 1),
                      "peak_rss_mb": peak_rss_mb(), **sizes}))


def cog_bytes(map_dir: str) -> dict:
    """The map's COG tiles: bytes per AOI pixel (n_obs is written inside the AOI only) and over
    the raw float32 bytes of every band — `maps.plan`'s output estimate."""
    import glob
    import rasterio
    from s2mos_transforms.maps import cog
    paths = glob.glob(os.path.join(map_dir, "tiles", "**", "*.tif"), recursive=True)
    size = sum(os.path.getsize(p) for p in paths)
    aoi = 0
    for p in paths:
        with rasterio.open(p) as ds:
            aoi += int(ds.read(cog.BAND_NAMES.index("n_obs") + 1, masked=True).count())
    per_px = size / max(aoi, 1)
    return {"cog_bytes": size, "aoi_pixels": aoi, "cog_bytes_per_pixel": per_px,
            "cog_bytes_per_raw_byte": per_px / (4 * len(cog.BAND_NAMES))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-dir", help="trained model directory (default: an untrained 5-bag paper CNN)")
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--tile-size", type=int, default=128, help="tile size for the sequences (default 128)")
    ap.add_argument("--batch-size", type=int, default=2048)
    ap.add_argument("--memory-tiles", type=int, nargs="*", default=[1, 4, 9],
                    help="AOI sizes (tiles of --memory-tile-size) for the peak-memory runs; none to skip")
    ap.add_argument("--memory-tile-size", type=int, default=64)
    ap.add_argument("--memory-only", action="store_true", help="only the peak-memory runs")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.model_dir is None:
        args.model_dir = untrained_model(tempfile.mkdtemp(prefix="bench-map-model-"))
    if args.child:
        args.tile_size = args.memory_tile_size
        child_run(args)
        return

    if args.memory_only:
        memory_runs(args)
        return
    from s2mos_transforms.maps import engines

    fast = engines.FastEnsemble(args.model_dir)
    values, lengths, coords, info = collect_sequences(args.preset, args.tile_size, fast.meta.channels)
    n = int(lengths.size)
    print(f"{args.preset} AOI: {info['tiles']} tiles of {args.tile_size} px, {info['aoi_pixels']} pixels, "
          f"{n} with ≥ 1 bare observation; lengths median {np.median(lengths):.0f}, "
          f"p90 {np.percentile(lengths, 90):.0f}, max {lengths.max()}")
    seq_rate = n / max(info["sequences_s"], 1e-9)
    dense_rate = n / max(info["sequences_baseline_s"], 1e-9)
    print(f"  source (simulator) {info['source_s']:.1f} s for the map's stacks (StackNeeds); "
          f"the whole stacks {info['source_whole_s']:.1f} s")
    print(f"  masks + sequences: {seq_rate:9.0f} px/s ({info['sequences_s']:.2f} s) vs {dense_rate:.0f} px/s "
          f"({info['sequences_baseline_s']:.2f} s) for the dense chain before: {seq_rate / dense_rate:.1f}×, "
          f"{'bit-identical' if info['sequences_identical'] else 'DIFFERENT'}")

    fast.predict(values[:4096], lengths[:256], coords[:256], args.batch_size)      # warm-up / traces
    c0, t0 = cpu_seconds(), time.perf_counter()
    m_fast, _ = fast.predict(values, lengths, coords, args.batch_size)
    fast_wall, fast_cpu = time.perf_counter() - t0, cpu_seconds() - c0
    m_base, base_wall, base_cpu = baseline_predict(fast, values, lengths, coords, args.batch_size)
    agree = float(np.abs(m_fast - m_base).max())
    fast_rate, base_rate = n / fast_wall, n / base_wall
    res = {
        "pixels": n, "tiles": info["tiles"], "tile_size": args.tile_size, "bags": fast.meta.bags,
        "cores": os.cpu_count(), "median_length": float(np.median(lengths)),
        "fast_px_per_s": fast_rate, "baseline_px_per_s": base_rate, "speedup": fast_rate / base_rate,
        "fast_core_s_per_px": fast_cpu / n, "baseline_core_s_per_px": base_cpu / n,
        "max_abs_diff_pct_clay": agree,
        "continent_core_hours_fast": CONTINENT_PIXELS * fast_cpu / n / 3600.0,
        "continent_core_hours_baseline": CONTINENT_PIXELS * base_cpu / n / 3600.0,
        "sequences_px_per_s": seq_rate, "sequences_baseline_px_per_s": dense_rate,
        "sequences_speedup": seq_rate / dense_rate, "sequences_identical": info["sequences_identical"],
        "sequence_core_hours_continent": CONTINENT_PIXELS * info["sequences_s"] / n / 3600.0,
        "peak_rss_mb_inference": peak_rss_mb(),
    }
    print(f"  fast path : {fast_rate:9.0f} px/s  ({fast_cpu / n * 1e3:.3f} core-ms/px)   "
          f"[masks + sequences: {seq_rate:.0f} px/s, {seq_rate / fast_rate:.1f}× the inference rate]")
    print(f"  baseline  : {base_rate:9.0f} px/s  ({base_cpu / n * 1e3:.3f} core-ms/px)  "
          f"[Keras predict, every pixel padded to {fast.meta.max_dates}]")
    print(f"  speed-up  : {res['speedup']:.1f}×   max |fast − baseline| = {agree:.2e} % clay")
    print(f"  10^10 bare pixels: {res['continent_core_hours_fast']:.0f} core-h inference (fast) vs "
          f"{res['continent_core_hours_baseline']:.0f} core-h (baseline); "
          f"+ {res['sequence_core_hours_continent']:.0f} core-h masks/sequences, + the source's reads")
    print(f"  peak RSS of this process: {res['peak_rss_mb_inference']:.0f} MB")

    res["memory_runs"] = memory_runs(args)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


def memory_runs(args) -> list[dict]:
    """`s2mos predict-map` in a fresh process per AOI size; peak RSS of each."""
    mem = []
    for k in args.memory_tiles:
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(k),
                               "--model-dir", args.model_dir, "--memory-tile-size", str(args.memory_tile_size)],
                              capture_output=True, text=True)
        line = [l for l in proc.stdout.splitlines() if l.startswith("{")]
        if proc.returncode or not line:
            print(f"  memory run with {k} tiles failed:\n{proc.stderr[-2000:]}")
            continue
        r = json.loads(line[-1])
        mem.append(r)
        print(f"  predict-map, {k:3d} tiles of {args.memory_tile_size} px: peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"{r['seconds']:.1f} s, {r['core_ms_per_pixel']:.3f} core-ms per AOI pixel end to end; COG tiles {r['cog_bytes_per_pixel']:.1f} B per AOI pixel "
              f"({r['cog_bytes_per_raw_byte']:.2f} of the raw float32 bands)")
    return mem


if __name__ == "__main__":
    main()
