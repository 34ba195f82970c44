"""Deterministic randomness for the embedded world, addressable by position and time.

Every random quantity of the world is a pure function of (seed, stream, integer keys …), via a
counter-based hash (SplitMix64), so a sample point and the map pixel that contains it see
exactly the same values, in any order, on any worker.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash_keys(*keys) -> np.ndarray:
    """Combine integer keys (broadcast arrays) into well-mixed uint64 values."""
    with np.errstate(over="ignore"):
        h = np.zeros(np.broadcast_shapes(*(np.shape(k) for k in keys)), np.uint64)
        for k in keys:
            h = _mix(h + _GOLDEN + np.asarray(k).astype(np.int64).astype(np.uint64))
    return h


def uniform(*keys) -> np.ndarray:
    """U[0, 1) from integer keys."""
    return (hash_keys(*keys) >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def normal(*keys) -> np.ndarray:
    """N(0, 1) from integer keys (Box–Muller on two hashed uniforms)."""
    u1 = uniform(*keys, 1)
    u2 = uniform(*keys, 2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def gamma_unit_mean(shape: float, *keys) -> np.ndarray:
    """Gamma(shape, 1/shape) (mean 1) by the Wilson–Hilferty approximation: SAR speckle."""
    z = normal(*keys)
    c = 1.0 / (9.0 * shape)
    return np.maximum(1.0 - c + z * np.sqrt(c), 0.05) ** 3


class GaussianField:
    """Stationary Gaussian random field (unit variance, squared-exponential covariance of
    length `length_km`) by random Fourier features; evaluated anywhere, cheaply."""

    def __init__(self, seed: int, stream: int, length_km: float, n_features: int = 64):
        rng = np.random.default_rng([seed, stream, int(length_km * 1000)])
        self.w = rng.normal(0.0, 1.0 / length_km, size=(n_features, 2))
        self.b = rng.uniform(0.0, 2.0 * np.pi, size=n_features)
        self.scale = np.sqrt(2.0 / n_features)

    def __call__(self, x_km: np.ndarray, y_km: np.ndarray) -> np.ndarray:
        x = np.asarray(x_km, np.float64)
        y = np.asarray(y_km, np.float64)
        out = np.zeros(np.broadcast_shapes(x.shape, y.shape))
        for (wx, wy), b in zip(self.w, self.b):
            out += np.cos(wx * x + wy * y + b)
        return out * self.scale


class MultiScaleField:
    """Weighted sum of GaussianFields at several length scales, unit variance overall."""

    def __init__(self, seed: int, stream: int, scales: dict[float, float], n_features: int = 64):
        total = sum(scales.values())
        self.parts = [(np.sqrt(w / total), GaussianField(seed, stream * 101 + i, L, n_features))
                      for i, (L, w) in enumerate(sorted(scales.items()))]

    def __call__(self, x_km, y_km) -> np.ndarray:
        return sum(w * f(x_km, y_km) for w, f in self.parts)


def lattice_bilinear(values_at, x_km: np.ndarray, y_km: np.ndarray, spacing_km: float) -> np.ndarray:
    """Bilinear interpolation of a lattice quantity: `values_at(i, j)` gives node values for
    integer node indices (arrays); smooth in space, and identical for any query order."""
    gx, gy = np.asarray(x_km) / spacing_km, np.asarray(y_km) / spacing_km
    i0, j0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    fx, fy = gx - i0, gy - j0
    v00, v10 = values_at(i0, j0), values_at(i0 + 1, j0)
    v01, v11 = values_at(i0, j0 + 1), values_at(i0 + 1, j0 + 1)
    fx = fx.reshape(fx.shape + (1,) * (v00.ndim - fx.ndim))
    fy = fy.reshape(fy.shape + (1,) * (v00.ndim - fy.ndim))
    return (v00 * (1 - fx) * (1 - fy) + v10 * fx * (1 - fy) + v01 * (1 - fx) * fy + v11 * fx * fy)


def gaussian_to_uniform(z: np.ndarray) -> np.ndarray:
    return ndtr(z)
