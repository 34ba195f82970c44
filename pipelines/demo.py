"""`s2mos demo`: the whole chain on the embedded world, with the quick settings."""
from __future__ import annotations

import argparse
import json
import os
import time


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
    world_dir = os.path.join(args.out, "world")
    t0 = _step(f"1. Embedded world: export the '{args.preset}' preset")
    summary = export_world(args.preset, world_dir)
    print(json.dumps({k: summary[k] for k in ("preset", "seed", "points", "observations", "clay_quartiles")}))
    print(f"   wrote {world_dir}/ ({', '.join(summary['files'])}) in {time.time() - t0:.1f}s")
    t0 = _step("2. Embedded world: previews")
    for path in preview_world(args.preset, os.path.join(args.out, "preview")):
        print(f"   wrote {path}")
    print(f"   in {time.time() - t0:.1f}s")
    return 0
