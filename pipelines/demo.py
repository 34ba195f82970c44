"""`s2mos demo`: the whole chain on the embedded world, with the quick settings.

The map step covers a 10 km square at 40 m (`DEMO_MAPS`) rather than the preset's 2 km AOI:
about as many pixels, but the landscape- and regional-scale clay variation of the world
(≈ 10–55 % clay there), so the map, the truth, the error, the interval width and the area of
applicability in the quicklook show what the model does."""
from __future__ import annotations

import argparse
import json
import os
import time


# preset → (W, S, E, N, resolution m, tile size px) of the demo map.
DEMO_MAPS = {"quick": (10.954, 48.459, 11.084, 48.549, 40.0, 128)}


def map_args(preset: str) -> list[str]:
    """predict-map's AOI flags for the demo: `DEMO_MAPS`, else the preset's own AOI."""
    if preset not in DEMO_MAPS:
        return ["--tile-size", "128"]
    w, s, e, n, res, size = DEMO_MAPS[preset]
    return ["--bbox", str(w), str(s), str(e), str(n), "--resolution", f"{res:g}", "--tile-size", str(size)]


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-out", help="output directory (default demo-out)")
    parser.add_argument("--preset", default="quick", help="embedded-world preset (default quick)")


def _step(title: str) -> float:
    print(f"\n== {title} ==", flush=True)
    return time.time()


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from s2mos_transforms.world.export import export_world
    from s2mos_transforms.world.presets import get_preset
    from s2mos_transforms.world.preview import preview_world

    get_preset(args.preset)
    from s2mos_transforms import fileio
    fileio.check_writable(args.out, "--out")
    world_dir = os.path.join(args.out, "world")
    t0 = _step(f"1. Embedded world: export the '{args.preset}' preset")
    summary = export_world(args.preset, world_dir)
    print(json.dumps({k: summary[k] for k in ("preset", "seed", "points", "observations", "clay_quartiles")}))
    print(f"   wrote {world_dir}/ ({', '.join(summary['files'])}) in {time.time() - t0:.1f}s")
    t0 = _step("2. Embedded world: previews")
    for path in preview_world(args.preset, os.path.join(args.out, "preview")):
        print(f"   wrote {path}")
    print(f"   in {time.time() - t0:.1f}s")

    from pipelines.cli import main as s2mos
    data_dir, model_dir = os.path.join(args.out, "dataset"), os.path.join(args.out, "model")
    chain = [
        ("3. Dataset: bare-soil S1+S2 sequences → TFRecords (Beam, DirectRunner)",
         ["build-dataset", "--samples", os.path.join(world_dir, "samples.csv"), "--preset", args.preset,
          "--out", data_dir]),
        ("4. Train: bagged CNN, whole-series model, RF/ANN and temporal-composite forests (quick settings: 20 epochs, 3 bags, small RF grid)",
         ["train", "--data", data_dir, "--model-dir", model_dir, "--epochs", "20", "--bags", "3", "--quick-grid"]),
        ("5. Evaluate: test-set metrics table and report",
         ["evaluate", "--data", data_dir, "--model-dir", model_dir]),
        ("6. Map: distributed inference → Cloud Optimized GeoTIFFs (Beam, DirectRunner)",
         ["predict-map", "--model-dir", model_dir, "--preset", args.preset, "--out", os.path.join(args.out, "map"),
          *map_args(args.preset)]),
    ]
    for title, argv in chain:
        t0 = _step(title)
        rc = s2mos(argv)
        if rc:
            print(f"   step failed with exit status {rc}")
            return rc
        print(f"   in {time.time() - t0:.1f}s")
    return 0
