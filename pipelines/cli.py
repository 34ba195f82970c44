"""`s2mos`: one console command, a subcommand per stage of the product.

Each subcommand lives in its own module exposing ``configure(parser)`` and
``run(args, extra) -> int`` (``extra``: unparsed flags, passed to Beam as PipelineOptions).
Modules keep heavy imports (TensorFlow, Beam) inside ``run`` so ``--help`` stays fast.
A `UserError` prints as one line, ``s2mos: error: …``, with exit status 2.

Library start-up noise (TensorFlow/absl/gRPC C++ logs, Beam INFO logs, library
FutureWarnings) is hidden before any heavy import (`s2mos_transforms.quiet`); the global
``--verbose``/``-v`` (accepted before or after the command) shows it again.
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
    "compare": ("trainer.compare", "model families over seeds and re-splits (KS, random, spatial): intervals, verdicts"),
    "predict-map": ("pipelines.predict_map", "clay map of an AOI from a trained ensemble: COG tiles, mosaic, quicklook"),
    "recalibrate": ("pipelines.recalibrate", "adapt a trained model to a new site from a few local samples (bias/linear)"),
    "demo": ("pipelines.demo", "run the whole chain on the embedded world"),
}

# Subcommands that forward unknown flags (Beam PipelineOptions such as --runner).
PASSES_EXTRA_FLAGS = {"build-dataset", "predict-map"}
VERBOSE_FLAGS = ("-v", "--verbose")


def trainer_outputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    """(path, flag) of the directories `s2mos train` / `evaluate` / `compare` write, checked before
    any work (the other stages check their own outputs: world, build-dataset, tune-thresholds,
    predict-map)."""
    if args.command == "train":
        return [] if getattr(args, "vertex", False) else [(args.model_dir, "--model-dir")]  # the job writes
    if args.command == "evaluate":
        if args.out:
            return [(args.out, "--out")]
        return [(args.model_dir.rstrip("/") + "/evaluation", "--model-dir")]
    if args.command == "compare":
        return [(args.out, "--out")]
    return []


class OneLineErrorParser(argparse.ArgumentParser):
    """Bad arguments: one line naming the problem, exit status 2, no usage dump."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="s2mos",
        description="Topsoil clay maps from Sentinel-1 + Sentinel-2 time series (S2MoS, Tziolas et al. 2020).")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the start-up and log output of TensorFlow, Beam and other libraries "
                             "(hidden by default; accepted anywhere on the line)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subparsers.add_parser(name, help=help_text, description=help_text)
        module.configure(sub)
        sub.set_defaults(_module=module)
    return parser


def take_verbose(argv: list[str]) -> tuple[bool, list[str]]:
    """(whether -v/--verbose was given anywhere before ``--``, argv without it)."""
    end = argv.index("--") if "--" in argv else len(argv)
    verbose = any(a in VERBOSE_FLAGS for a in argv[:end])
    return verbose, [a for a in argv[:end] if a not in VERBOSE_FLAGS] + argv[end:]


def main(argv: list[str] | None = None) -> int:
    from s2mos_transforms import quiet

    verbose, argv = take_verbose(list(sys.argv[1:] if argv is None else argv))
    quiet.configure(verbose)            # before any module imports TensorFlow or Beam
    parser = build_parser()
    if argv and argv[0] in PASSES_EXTRA_FLAGS:
        args, extra = parser.parse_known_args(argv)
    else:
        args, extra = parser.parse_args(argv), []
    args._beam_flags = list(extra)      # a source may size itself to the job (earthengine: --ee-max-rps)
    try:
        from s2mos_transforms import fileio
        for path, flag in trainer_outputs(args):
            fileio.check_writable(path, flag)
        return int(args._module.run(args, extra) or 0)
    except UserError as err:
        print(f"s2mos: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("s2mos: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
