"""The partitions of `s2mos compare`: Kennard–Stone (the paper's), random and spatial-block splits.

Every builder works on the POOLED points of a dataset (its calibration and test splits together)
and returns a boolean ``is_test`` per point; the rest is calibration. Held-out points (an
independent site, `build-dataset --holdout`) go to test in every scheme, as in the dataset's
own split, and ``test_fraction`` applies to the other points.

* ``ks``: `s2mos_transforms.dataset.split.assign_splits` on each point's mean S2 spectrum (the
  mean over its recorded bare S2 dates, the dataset build's split feature), points in the
  dataset build's order (main table rows, then held-out rows: split.csv). Deterministic, so one
  partition; on an unchanged dataset it reproduces the dataset's own split.
* ``random``: a seeded permutation; the first round(n × fraction) points are test.
* ``spatial``: points grouped into square blocks of ``block_km`` km (latitude bands of
  ``block_km``, each cut into ``block_km`` of longitude at the band's central latitude, so
  blocks stay square over a continent); blocks in a seeded random order join the test set
  while adding the next block brings the test count closer to round(n × fraction). A block is
  never split, so neighbours of a test point are not in calibration unless across a border.

Repeat r of a seeded scheme draws from ``SeedSequence([SPLIT_SEED, scheme index, r])``: the same
repeat gives the same partition on every run (and every resumed run).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from s2mos_transforms.dataset import split as ks_split

SCHEMES: tuple[str, ...] = ("ks", "random", "spatial")
SPLIT_SEED = 20200521                 # fixed salt of the random/spatial partitions (any constant)
EARTH_KM_PER_DEG = 6371.0088 * math.pi / 180.0


@dataclasses.dataclass(frozen=True)
class Partition:
    scheme: str
    repeat: int
    is_test: np.ndarray               # (N,) bool over the pooled points

    @property
    def name(self) -> str:
        return f"{self.scheme}-{self.repeat}"

    @property
    def test_index(self) -> np.ndarray:
        return np.flatnonzero(self.is_test)

    @property
    def calibration_index(self) -> np.ndarray:
        return np.flatnonzero(~self.is_test)


def rng_for(scheme: str, repeat: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([SPLIT_SEED, SCHEMES.index(scheme), int(repeat)]))


def ks_features(s2_sequences: list[np.ndarray], n_bands: int = 10) -> np.ndarray:
    """Mean S2 spectrum of each point over its recorded dates: the dataset build's split feature
    (`dataset.transforms.point_result` ``mean_s2``)."""
    return np.stack([np.asarray(s, np.float64).reshape(-1, n_bands).mean(axis=0) for s in s2_sequences]) \
        if s2_sequences else np.zeros((0, n_bands))


def ks_partition(features: np.ndarray, held_out: np.ndarray, order: np.ndarray, test_fraction: float) -> np.ndarray:
    """``is_test`` by Kennard–Stone with the points fed in `order` (the dataset build's order)."""
    order = np.asarray(order, np.int64)
    labels = ks_split.assign_splits(np.asarray(features, np.float64)[order], np.asarray(held_out, bool)[order],
                                    test_fraction)
    is_test = np.zeros(len(order), bool)
    is_test[order] = labels == ks_split.TEST
    return is_test


def random_partition(n: int, held_out: np.ndarray, test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``is_test``: round(n_main × fraction) main points drawn at random, and every held-out point."""
    held_out = np.asarray(held_out, bool)
    main = np.flatnonzero(~held_out)
    is_test = held_out.copy()
    is_test[rng.permutation(main)[:ks_split.n_test_for(main.size, test_fraction)]] = True
    return is_test


def block_ids(lat: np.ndarray, lon: np.ndarray, block_km: float) -> np.ndarray:
    """Integer id of the ``block_km`` square block of each point (equal ids = same block)."""
    if not block_km > 0:
        raise ValueError(f"block size must be > 0 km, got {block_km}")
    step = block_km / EARTH_KM_PER_DEG                        # degrees of latitude per block
    row = np.floor((np.asarray(lat, np.float64) + 90.0) / step).astype(np.int64)
    centre = np.clip(-90.0 + (row + 0.5) * step, -89.9, 89.9)
    lon_step = step / np.cos(np.radians(centre))              # degrees of longitude per block there
    col = np.floor((np.asarray(lon, np.float64) + 180.0) / lon_step).astype(np.int64)
    _, ids = np.unique(np.stack([row, col], 1), axis=0, return_inverse=True)
    return ids.ravel()


def spatial_partition(lat: np.ndarray, lon: np.ndarray, held_out: np.ndarray, block_km: float,
                      test_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """``is_test``: whole blocks of main points, in a random order, until the test count is closest
    to round(n_main × fraction) (a block is added only if that brings the count closer)."""
    held_out = np.asarray(held_out, bool)
    main = np.flatnonzero(~held_out)
    is_test = held_out.copy()
    target = ks_split.n_test_for(main.size, test_fraction)
    ids = block_ids(np.asarray(lat)[main], np.asarray(lon)[main], block_km)
    sizes = np.bincount(ids)
    count = 0
    for b in rng.permutation(sizes.size):
        if count >= target:
            break
        if abs(count + sizes[b] - target) < abs(count - target):
            is_test[main[ids == b]] = True
            count += int(sizes[b])
    return is_test


def build_partitions(schemes: list[str], repeats: int, test_fraction: float, block_km: float, *,
                     features: np.ndarray, lat: np.ndarray, lon: np.ndarray, held_out: np.ndarray,
                     order: np.ndarray) -> list[Partition]:
    """Every partition of a compare run: one for ``ks``, `repeats` for ``random`` and ``spatial``."""
    out = []
    for scheme in schemes:
        if scheme == "ks":
            out.append(Partition("ks", 0, ks_partition(features, held_out, order, test_fraction)))
        elif scheme == "random":
            out += [Partition("random", r, random_partition(len(lat), held_out, test_fraction, rng_for("random", r)))
                    for r in range(repeats)]
        elif scheme == "spatial":
            out += [Partition("spatial", r, spatial_partition(lat, lon, held_out, block_km, test_fraction,
                                                              rng_for("spatial", r))) for r in range(repeats)]
        else:
            raise ValueError(f"unknown split scheme {scheme!r} (choose from {', '.join(SCHEMES)})")
    for p in out:
        if p.is_test.all() or not p.is_test.any():
            raise ValueError(f"split {p.name}: {int(p.is_test.sum())} of {p.is_test.size} points in test; "
                             "both calibration and test need points")
    return out
