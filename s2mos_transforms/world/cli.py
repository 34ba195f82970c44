"""`s2mos world export|preview`: the embedded simulated Sentinel world."""
from __future__ import annotations

import argparse
import json

from s2mos_transforms.cli_types import int_at_least
from s2mos_transforms.errors import UserError

_non_negative_int = int_at_least(0)
FORMATS = ("tables", "geotiff-stack", "datacube")


def configure(parser: argparse.ArgumentParser) -> None:
    from s2mos_transforms.world.presets import PRESETS

    sub = parser.add_subparsers(dest="world_command", metavar="ACTION")
    sub.required = True
    presets = ", ".join(f"{name} ({p.description})" for name, p in PRESETS.items())
    export = sub.add_parser("export", help="write samples, observations, hidden state, lab spectra, truth map",
                            description="Write the world's files for a preset. Presets: " + presets)
    export.add_argument("--preset", default="quick", help="quick | paper | independent-site (default quick)")
    export.add_argument("--out", required=True, help="output directory")
    export.add_argument("--n-points", type=_non_negative_int, default=None,
                        help="number of sample points (default: the preset's)")
    export.add_argument("--seed", type=int, default=None, help="world seed (default: the preset's)")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.add_argument("--format", choices=FORMATS, default="tables",
                        help="tables (default): samples, observations, state, lab spectra, truth map; "
                             "geotiff-stack: the AOI as S2/S1 GeoTIFFs + index.csv, as --source geotiff reads "
                             "them; datacube: the AOI as a netCDF/Zarr datacube, as --source datacube reads it")
    export.add_argument("--bbox", type=float, nargs=4, metavar=("W", "S", "E", "N"), default=None,
                        help="geotiff-stack only: export this part of the AOI (degrees) instead of the whole AOI")
    export.add_argument("--tile-size", type=int, default=64,
                        help="geotiff-stack only: pixels per simulated tile and file block (multiple of 16, "
                             "default 64)")
    preview = sub.add_parser("preview", help="PNG previews: AOI truth clay, S2/S1 trajectories of a few points")
    preview.add_argument("--preset", default="quick")
    preview.add_argument("--out", required=True)
    preview.add_argument("--seed", type=int, default=None)
    preview.add_argument("--n-points", type=_non_negative_int, default=3, help="points to plot (default 3)")


def run(args: argparse.Namespace, extra: list[str]) -> int:
    from s2mos_transforms.world.presets import get_preset

    get_preset(args.preset)  # one-line error for an unknown preset, before any work
    if args.world_command == "export" and args.format != "tables":
        return _export_stack(args)
    if args.world_command == "export":
        if args.bbox is not None:
            raise UserError("--bbox applies to --format geotiff-stack only")
        from s2mos_transforms.world.export import export_world
        summary = export_world(args.preset, args.out, args.n_points, args.seed, progress=not args.quiet)
        print(json.dumps({k: summary[k] for k in ("preset", "seed", "points", "observations", "aoi_pixels",
                                                  "clay_quartiles")}))
        print(f"wrote {', '.join(summary['files'])} to {args.out}")
        return 0
    if args.world_command == "preview":
        if args.n_points < 1:
            raise UserError("--n-points must be ≥ 1 for a preview")
        from s2mos_transforms.world.preview import preview_world
        for path in preview_world(args.preset, args.out, args.seed, args.n_points):
            print(f"wrote {path}")
        return 0
    raise UserError(f"unknown world action {args.world_command!r}")


def _export_stack(args: argparse.Namespace) -> int:
    """--format geotiff-stack | datacube: the AOI as image files a local source reads."""
    if args.n_points is not None:
        raise UserError(f"--n-points applies to --format tables only, not {args.format}")
    if args.format == "geotiff-stack":
        from s2mos_transforms.world.export_geotiff import export_geotiff_stack
        summary = export_geotiff_stack(args.preset, args.out, args.seed, bbox=args.bbox,
                                       tile_size=args.tile_size, progress=not args.quiet)
        print(json.dumps(summary))
        print(f"wrote index.csv, S2/, S1/, aoi_samples.csv, stack.json to {args.out} "
              f"(map it: s2mos predict-map --source geotiff --stack {args.out} …)")
        return 0
    if args.bbox is not None:
        raise UserError("--bbox applies to --format geotiff-stack only")
    try:
        from s2mos_transforms.world.export_datacube import export_datacube
    except ImportError as err:
        raise UserError(f"--format datacube is not available in this installation ({err})") from None
    summary = export_datacube(args.preset, args.out, seed=args.seed)
    print(json.dumps(summary, default=str))
    print(f"wrote a datacube to {args.out}")
    return 0
