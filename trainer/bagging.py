"""Bootstrap aggregation *without* replacement (paper Section 2.3.4).

Each of the `n_bags` models (5 in the paper) trains on a random 80 % of the calibration set
(3920 of 4901), drawn without replacement; predictions are the mean over the bags and their
spread (standard deviation) is kept as an uncertainty. The draws depend only on the seed
and the calibration size, so the same bags are used by every model family of a run.
"""
from __future__ import annotations

import numpy as np

BAG_FRACTION = 0.8
N_BAGS = 5


def bag_size(n: int, fraction: float = BAG_FRACTION) -> int:
    """floor(fraction · n), at least 1 and at most n (4901 → 3920 as in the paper)."""
    return int(min(n, max(1, int(fraction * n + 1e-9))))


def draw_bags(n: int, n_bags: int = N_BAGS, fraction: float = BAG_FRACTION, seed: int = 0
              ) -> list[np.ndarray]:
    """`n_bags` sorted index sets of size bag_size(n), each drawn without replacement.

    Bag k uses its own child of SeedSequence(seed), so adding bags never changes earlier ones.
    """
    if n < 1:
        raise ValueError("cannot bag an empty calibration set")
    size = bag_size(n, fraction)
    children = np.random.SeedSequence(seed).spawn(n_bags)
    return [np.sort(np.random.default_rng(c).choice(n, size=size, replace=False)) for c in children]


def out_of_bag(n: int, bag: np.ndarray) -> np.ndarray:
    """Calibration indices not in `bag` (used only to monitor training, never to pick a model)."""
    mask = np.ones(n, bool)
    mask[bag] = False
    return np.flatnonzero(mask)


def combine(predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(n_bags, N) predictions in % clay → (mean, std over bags, population std: ddof = 0)."""
    p = np.asarray(predictions, np.float64)
    if p.ndim == 1:
        p = p[None, :]
    return p.mean(axis=0), p.std(axis=0)


def bag_seed(seed: int, bag: int) -> int:
    """The seed of bag `bag`'s model initialisation, dropout and shuffling."""
    return int(seed) * 1000 + int(bag)


def parallel_mismatch(train_rows: list[int], batch_sizes: list[int], val_rows: list[int]) -> str | None:
    """Why the bags of one model cannot be trained side by side in one model, or None if they can.

    `--parallel-bags` gives every bag its own batch at every step, so the bags must take the
    same steps: the same number of training rows and the same batch size (hence the same batch
    sizes, the last partial one included, and the same number of optimiser steps per epoch),
    and the same number of out-of-bag rows (their evaluation is zipped the same way).
    Point-level inputs always qualify: every bag has bag_size(n) points. Per-date inputs
    (one row per date) usually do not, because bags hold different numbers of dates; those
    bags are then trained one after another. Nothing is repeated or truncated: stacking bags
    with different step counts would change their training, so it is never done.
    """
    for what, values in (("training rows", train_rows), ("batch sizes", batch_sizes),
                         ("out-of-bag rows", val_rows)):
        if len(set(int(v) for v in values)) > 1:
            return f"bags differ in {what} ({', '.join(str(int(v)) for v in values)})"
    return None
