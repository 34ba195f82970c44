"""Flags shared by `s2mos train`, `s2mos evaluate` and `python -m trainer.task` (no TF imports)."""
from __future__ import annotations

import argparse

from s2mos_transforms.cli_types import int_at_least
from s2mos_transforms.errors import UserError

_positive = int_at_least(1)


def add_train_flags(parser: argparse.ArgumentParser, require_paths: bool = True,
                    vertex: bool | None = None) -> None:
    """The training flags; ``vertex`` (default: ``require_paths``, i.e. `s2mos train`, not the
    job's own entry `python -m trainer.task`) adds the Vertex AI submission flags."""
    parser.add_argument("--data", required=require_paths, metavar="DIR",
                        help="dataset directory of `s2mos build-dataset` (local or gs://)")
    parser.add_argument("--model-dir", required=require_paths, metavar="DIR",
                        help="output model directory (local or gs://)")
    parser.add_argument("--channels", choices=("s2s1", "s2"), default="s2s1",
                        help="main CNN input: S2+S1 paired dates (12 channels) or every bare S2 date (10)")
    parser.add_argument("--no-coords", dest="use_coords", action="store_false",
                        help="main CNN without the lat/lon auxiliary input")
    parser.add_argument("--epochs", type=_positive, default=100, help="epochs per bag (paper: 100)")
    parser.add_argument("--bags", type=_positive, default=5, help="bagged models per family (paper: 5)")
    parser.add_argument("--batch-size", type=_positive, default=8, help="mini-batch size (paper: 8)")
    parser.add_argument("--models", default="all",
                        help="comma list of models or groups: all | paper (the paper's models: cnn, ablations, "
                             "baselines, appendix) | cnn, ablations (cnn_nocoords, cnn_nosar, "
                             "cnn_nosar_nocoords), baselines (rf, rf_nocoords, ann, ann_nocoords), "
                             "appendix (rf_ts, ann_ts), beyond (series, rf_strong, qrf_strong)")
    parser.add_argument("--serve", choices=("cnn", "series"), default="cnn",
                        help="the model exported as the serving ensemble that predict-map uses: the paper's CNN "
                             "(S1-paired dates only) or the whole-series model (every bare S2 date)")
    parser.add_argument("--quick-grid", action="store_true",
                        help="small RF grid (mtry {6,24}, node {5,20}, 100 trees) instead of the paper's")
    parser.add_argument("--cv-folds", type=_positive, default=5, help="RF grid-search folds (paper: 5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of bags, initialisation, shuffling, CV")
    parser.add_argument("--steps-per-execution", type=_positive, default=32,
                        help="optimiser steps per compiled call (speed only; same maths)")
    parser.add_argument("--jit", dest="jit_compile", action="store_true",
                        help="XLA-compile the train step (helps on GPU; slower on CPU; ignored under determinism)")
    parser.add_argument("--no-determinism", dest="deterministic", action="store_false",
                        help="allow non-deterministic TF kernels (faster on some GPUs)")
    parser.add_argument("--parallel-bags", action="store_true",
                        help="train the bags of each Keras model side by side in one model, one batch per bag "
                             "per step (the same updates as one after another; speed only)")
    parser.add_argument("--save-rf", action="store_true", help="also save every RF bag (joblib; can be large)")
    parser.add_argument("--quiet", dest="verbose", action="store_const", const=0, default=1,
                        help="no progress output")
    if require_paths:   # `s2mos train`; the Vertex entry point has its own (AIP_CHECKPOINT_DIR first)
        parser.add_argument("--checkpoint-dir", default=None, metavar="DIR",
                            help="back up every Keras fit after each epoch here: the same command, killed and "
                                 "run again, resumes the interrupted fit from its last epoch (local or gs://)")
    if (require_paths if vertex is None else vertex):
        add_vertex_flags(parser)


class _VertexAction(argparse.Action):
    """``--vertex``: the command's module becomes `trainer.vertex` (`pipelines.cli` runs
    ``args._module.run``), so `s2mos train --vertex` submits instead of training here."""

    def __call__(self, parser, namespace, values, option_string=None):
        from trainer import vertex
        setattr(namespace, self.dest, True)
        namespace._module = vertex


def add_vertex_flags(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "Vertex AI", "--vertex: run this training as a Vertex AI custom job on the project's image instead "
                     "of here; every path gs://; the model lands in MODEL_DIR/model (AIP_MODEL_DIR)")
    g.add_argument("--vertex", nargs=0, action=_VertexAction, default=False,
                   help="submit as a Vertex AI custom job (prints its resource name) instead of training here")
    g.add_argument("--project", help="Google Cloud project of the job")
    g.add_argument("--region", help="Vertex AI region, e.g. europe-west4")
    g.add_argument("--staging-bucket", metavar="gs://BUCKET", help="Vertex AI staging bucket")
    g.add_argument("--machine-type", default=None,
                   help="machine type (default: one that holds the accelerators, n1-standard-8 for a T4)")
    g.add_argument("--accelerator-type", default=None,
                   help="Vertex AI accelerator: NVIDIA_TESLA_T4 (N1; the default), NVIDIA_TESLA_V100/P4/P100 (N1), "
                        "NVIDIA_L4 (G2), NVIDIA_TESLA_A100/NVIDIA_A100_80GB (A2), or none for CPU only "
                        "(default: the GPU of a G2/A2 --machine-type, else NVIDIA_TESLA_T4)")
    g.add_argument("--accelerator-count", type=_positive, default=None,
                   help="GPUs per machine (default 1; G2/A2 machine types fix it)")
    g.add_argument("--image", default=None,
                   help="training image (default REGION-docker.pkg.dev/PROJECT/s2mos/s2mos:latest, "
                        "built by cloudbuild.yaml)")
    g.add_argument("--display-name", default=None, help="job name (default s2mos-train-<UTC time>)")
    g.add_argument("--service-account", default=None,
                   help="service account the job runs as (default: Vertex AI's custom code service agent)")
    g.add_argument("--dry-run", action="store_true",
                   help="with --vertex: print the CustomJob spec as JSON, send nothing")


def check_vertex_flags(args) -> None:
    """Vertex flags without --vertex would be ignored silently (a --dry-run would train): refuse."""
    from trainer.vertex import VERTEX_DESTS

    given = [f"--{d.replace('_', '-')}" for d in VERTEX_DESTS[1:]
             if getattr(args, d, None) not in (None, False)]
    if given and not getattr(args, "vertex", False):
        raise UserError(f"{', '.join(given)}: only with --vertex (a Vertex AI job)")


def train_config(args, model_dir: str | None = None, checkpoint_dir: str | None = None,
                 tensorboard_dir: str | None = None):
    from trainer.config import TrainConfig

    check_vertex_flags(args)
    model_dir = model_dir or args.model_dir
    if not args.data or not model_dir:
        raise UserError("--data and --model-dir are required")
    return TrainConfig(data=args.data, model_dir=model_dir, channels=args.channels, use_coords=args.use_coords,
                       epochs=args.epochs, bags=args.bags, batch_size=args.batch_size, models=args.models,
                       quick_grid=args.quick_grid, seed=args.seed, cv_folds=args.cv_folds,
                       jit_compile=args.jit_compile, steps_per_execution=args.steps_per_execution,
                       deterministic=args.deterministic, save_rf=args.save_rf, verbose=args.verbose,
                       parallel_bags=args.parallel_bags, serve=args.serve,
                       checkpoint_dir=checkpoint_dir, tensorboard_dir=tensorboard_dir)


def add_evaluate_flags(parser: argparse.ArgumentParser, require_paths: bool = True) -> None:
    parser.add_argument("--data", required=require_paths, metavar="DIR",
                        help="dataset directory (its test split is scored; calibration feeds the activation figure)")
    parser.add_argument("--model-dir", required=require_paths, metavar="DIR", help="model directory of `s2mos train`")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="report directory (default: MODEL_DIR/evaluation)")
    parser.add_argument("--top-fraction", type=float, default=0.05,
                        help="share of most activating training patterns per filter (paper: 5%%)")
    parser.add_argument("--quiet", dest="verbose", action="store_const", const=0, default=1,
                        help="no table on stdout")
