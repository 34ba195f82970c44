"""Min–max normalisation to [−1, 1] (paper Section 2.1.2), statistics from calibration only."""
from __future__ import annotations

import dataclasses
import json

import numpy as np

STATS_FILE = "stats.json"


@dataclasses.dataclass(frozen=True)
class MinMax:
    lo: np.ndarray
    hi: np.ndarray

    def scale(self, x: np.ndarray) -> np.ndarray:
        """Map [lo, hi] to [−1, 1]; constant columns map to 0."""
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        return (2.0 * (np.asarray(x, np.float64) - self.lo) / span - 1.0).astype(np.float32)

    def unscale(self, z: np.ndarray) -> np.ndarray:
        span = np.where(self.hi > self.lo, self.hi - self.lo, 1.0)
        return ((np.asarray(z, np.float64) + 1.0) / 2.0 * span + self.lo).astype(np.float32)

    @staticmethod
    def fit(x: np.ndarray) -> "MinMax":
        x = np.asarray(x, np.float64)
        x = x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(-1, 1)
        return MinMax(np.nanmin(x, axis=0), np.nanmax(x, axis=0))


@dataclasses.dataclass(frozen=True)
class NormStats:
    """Per-group min/max: 's2s1' (12 channels), 's2' (10), 'coords' (lat, lon), 'clay' (1)."""

    groups: dict[str, MinMax]

    def __getitem__(self, key: str) -> MinMax:
        return self.groups[key]

    def to_json(self) -> str:
        return json.dumps({k: {"min": v.lo.tolist(), "max": v.hi.tolist()} for k, v in self.groups.items()},
                          indent=2)

    @staticmethod
    def from_json(text: str) -> "NormStats":
        raw = json.loads(text)
        return NormStats({k: MinMax(np.asarray(v["min"], np.float64), np.asarray(v["max"], np.float64))
                          for k, v in raw.items()})

    def save(self, directory: str) -> str:
        from s2mos_transforms import fileio
        return fileio.write_text(f"{directory.rstrip('/')}/{STATS_FILE}", self.to_json())

    @staticmethod
    def load(directory: str) -> "NormStats":
        from s2mos_transforms import fileio
        return NormStats.from_json(fileio.read_text(f"{directory.rstrip('/')}/{STATS_FILE}"))
