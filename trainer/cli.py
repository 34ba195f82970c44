"""Flags shared by `s2mos train`, `s2mos evaluate` and `python -m trainer.task` (no TF imports)."""
from __future__ import annotations

import argparse

from s2mos_transforms.cli_types import int_at_least
from s2mos_transforms.errors import UserError

_positive = int_at_least(1)


def add_train_flags(parser: argparse.ArgumentParser, require_paths: bool = True) -> None:
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
                        help="comma list of models or groups: all | cnn, ablations (cnn_nocoords, cnn_nosar, "
                             "cnn_nosar_nocoords), baselines (rf, rf_nocoords, ann, ann_nocoords), "
                             "appendix (rf_ts, ann_ts)")
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


def train_config(args, model_dir: str | None = None, checkpoint_dir: str | None = None,
                 tensorboard_dir: str | None = None):
    from trainer.config import TrainConfig

    model_dir = model_dir or args.model_dir
    if not args.data or not model_dir:
        raise UserError("--data and --model-dir are required")
    return TrainConfig(data=args.data, model_dir=model_dir, channels=args.channels, use_coords=args.use_coords,
                       epochs=args.epochs, bags=args.bags, batch_size=args.batch_size, models=args.models,
                       quick_grid=args.quick_grid, seed=args.seed, cv_folds=args.cv_folds,
                       jit_compile=args.jit_compile, steps_per_execution=args.steps_per_execution,
                       deterministic=args.deterministic, save_rf=args.save_rf, verbose=args.verbose,
                       parallel_bags=args.parallel_bags,
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
