"""The settings of one `s2mos train` run and its progress printer (no TF imports).

Kept apart from `trainer.train` so the fitting modules (`trainer.fit`, `trainer.fit_bags`)
can take a `TrainConfig` without importing the run that drives them.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from trainer import bagging

Log = Callable[[str], None]


@dataclasses.dataclass
class TrainConfig:
    data: str
    model_dir: str
    channels: str = "s2s1"
    use_coords: bool = True
    epochs: int = 100
    bags: int = bagging.N_BAGS
    batch_size: int = 8
    models: str = "all"
    quick_grid: bool = False
    seed: int = 0
    cv_folds: int = 5
    jit_compile: bool = False         # XLA: slower than oneDNN for this CNN on CPU (bench_train.py)
    steps_per_execution: int = 32
    deterministic: bool = True
    save_rf: bool = False
    rf_jobs: int = -1
    checkpoint_dir: str | None = None
    tensorboard_dir: str | None = None
    verbose: int = 1
    rf_grid: object | None = None        # a baselines.RFGrid overriding the paper/quick grid
    parallel_bags: bool = False          # train a Keras model's bags side by side in one model (same maths)
    serve: str = "cnn"                   # the model exported as the serving ensemble (cnn | series)


def printer(verbose: int) -> Log:
    def log(msg: str) -> None:
        if verbose:
            print(msg, flush=True)
    return log
