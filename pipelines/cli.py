"""`s2mos`: one console command, a subcommand per stage of the product.

Each subcommand lives in its own module exposing ``configure(parser)`` and
``run(args, extra) -> int`` (``extra``: unparsed flags, passed to Beam as PipelineOptions).
Modules keep heavy imports (TensorFlow, Beam) inside ``run`` so ``--help`` stays fast.
A `UserError` prints as one line, ``s2mos: error: …``, with exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from s2mos_transforms.errors import UserError

# name → (module, one-line help). Order is the order of the chain.
COMMANDS: dict[str, tuple[str, str]] = {
    "world": ("s2mos_transforms.world.cli", "the embedded simulated Sentinel world: export, preview"),
    "build-dataset": ("pipelines.build_dataset", "soil samples -> bare-soil S1+S2 sequences -> TFRecords (Beam)"),
    "tune-thresholds": ("pipelines.tune_thresholds", "NDVI x NBR2 bare-soil threshold grid scored against lab spectra"),
    "train": ("trainer.train", "train the bagged CNN ensemble, its ablations and the RF/ANN baselines"),
    "evaluate": ("trainer.evaluate", "test-set metrics, paper-style report, scatter and filter figures"),
    "predict-map": ("pipelines.predict_map", "clay map of an AOI from a trained ensemble: COG tiles, mosaic, quicklook"),
    "demo": ("pipelines.demo", "run the whole chain on the embedded world"),
}

# Subcommands that forward unknown flags (Beam PipelineOptions such as --runner).
PASSES_EXTRA_FLAGS = {"build-dataset", "predict-map"}


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments: one line naming the problem, exit status 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="s2mos",
        description="Topsoil clay maps from Sentinel-1 + Sentinel-2 time series (S2MoS, Tziolas et al. 2020).")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.configure(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] in PASSES_EXTRA_FLAGS:
        args, extra = parser.parse_known_args(argv)
    else:
        args, extra = parser.parse_args(argv), []
    try:
        return int(args._module.run(args, extra) or 0)
    except UserError as err:
        print(f"s2mos: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("s2mos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
