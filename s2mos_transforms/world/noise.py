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


_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def _mix_owned(z):
    """`_mix` of a freshly made array, in place (no temporaries beyond one scratch array)."""
    if not isinstance(z, np.ndarray) or z.ndim == 0:
        return _mix(z)
    t = np.right_shift(z, _S30)
    z ^= t
    z *= _M1
    np.right_shift(z, _S27, out=t)
    z ^= t
    z *= _M2
    np.right_shift(z, _S31, out=t)
    z ^= t
    return z


def _as_key(k) -> np.ndarray:
    return np.asarray(k).astype(np.int64).astype(np.uint64)


def _fold(h, k):
    """One step of `hash_keys`: h ← mix(h + golden + k) (mod 2⁶⁴, so golden + k first is the
    same sum, made on the key's own, usually small, shape); h None is the empty prefix (0)."""
    gk = _as_key(k) + _GOLDEN
    return _mix_owned(gk if h is None else h + gk)


def hash_prefix(*keys):
    """`hash_keys` of leading keys, to be extended by `hash_extend` (shared prefixes)."""
    with np.errstate(over="ignore"):
        h = None
        for k in keys:
            h = _fold(h, k)
    return h


def hash_extend(h, *keys):
    with np.errstate(over="ignore"):
        for k in keys:
            h = _fold(h, k)
    return h


def hash_keys(*keys) -> np.ndarray:
    """Combine integer keys (broadcast arrays) into well-mixed uint64 values.

    Folded key by key, each step only as large as the keys seen so far broadcast to, so
    leading scalar / per-pixel keys cost little; the value is that of mixing the broadcast
    arrays element by element (h ← mix(h + golden + key), h = 0 at first)."""
    return hash_prefix(*keys)


def _unit(h):
    """U[0, 1) from hashed values (consumes `h` when it is an array)."""
    if isinstance(h, np.ndarray) and h.ndim:
        h >>= np.uint64(11)
        u = h.astype(np.float64)
        u *= (1.0 / 9007199254740992.0)
        return u
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def uniform(*keys) -> np.ndarray:
    """U[0, 1) from integer keys."""
    return _unit(hash_keys(*keys))


def _box_muller(u1, u2):
    if isinstance(u1, np.ndarray) and u1.ndim and isinstance(u2, np.ndarray) and u2.shape == u1.shape:
        np.negative(u1, out=u1)
        np.log1p(u1, out=u1)
        u1 *= -2.0
        np.sqrt(u1, out=u1)
        u2 *= 2.0 * np.pi
        np.cos(u2, out=u2)
        u1 *= u2
        return u1
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def normal_from_prefix(h) -> np.ndarray:
    """`normal(*keys)` given h = hash_prefix(*keys)."""
    return _box_muller(_unit(hash_extend(h, 1)), _unit(hash_extend(h, 2)))


def normal(*keys) -> np.ndarray:
    """N(0, 1) from integer keys (Box–Muller on two hashed uniforms, keys + (1,) and + (2,))."""
    return normal_from_prefix(hash_prefix(*keys))


def normal_pair(h) -> tuple[np.ndarray, np.ndarray]:
    """Two independent N(0, 1) from h = hash_prefix(*keys): both outputs of one Box–Muller
    pair (half the hashing of two `normal` calls)."""
    radius = _unit(hash_extend(h, 1))
    np.negative(radius, out=radius)
    np.log1p(radius, out=radius)
    radius *= -2.0
    np.sqrt(radius, out=radius)
    u2 = _unit(hash_extend(h, 2))
    sign = np.where(u2 < 0.5, radius, -radius)           # angle in (0, π): sine ≥ 0
    u2 *= 2.0 * np.pi
    z1 = np.cos(u2)
    np.multiply(z1, z1, out=u2)                          # sine from cosine: cheaper than sin
    np.subtract(1.0, u2, out=u2)
    np.maximum(u2, 0.0, out=u2)
    np.sqrt(u2, out=u2)
    z1 *= radius
    u2 *= sign
    return z1, u2


def logistic(*keys) -> np.ndarray:
    """Logistic noise of mean 0 and variance 1 from integer keys: one hash (half the cost of
    `normal`), bell-shaped with slightly heavier tails; for smooth physical scatter."""
    u = _unit(hash_keys(*keys))
    np.clip(u, 1e-12, 1.0 - 1e-12, out=u)
    z = np.log(u)
    np.subtract(1.0, u, out=u)
    np.log(u, out=u)
    z -= u
    z *= np.sqrt(3.0) / np.pi
    return z


def _wilson_hilferty(z, shape: float):
    c = 1.0 / (9.0 * shape)
    return np.maximum(1.0 - c + z * np.sqrt(c), 0.05) ** 3


def gamma_pair(shape: float, *keys) -> tuple[np.ndarray, np.ndarray]:
    """Two independent Gamma(shape, 1/shape) from integer keys (one Box–Muller pair)."""
    z1, z2 = normal_pair(hash_prefix(*keys))
    return _wilson_hilferty(z1, shape), _wilson_hilferty(z2, shape)


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


def distinct(*keys) -> tuple[list[np.ndarray], np.ndarray]:
    """Distinct rows of integer key arrays (one shape): their columns, and the row of each
    element (flat). Lets a quantity keyed by few distinct values be computed once per value."""
    cols = [np.asarray(k).astype(np.int64).ravel() for k in keys]
    if not cols[0].size:
        return [c[:0] for c in cols], np.zeros(0, np.int64)
    code = np.zeros(cols[0].size, np.int64)
    total = 1
    for c in cols:
        lo, span = int(c.min()), int(c.max()) - int(c.min()) + 1
        total *= span
        if total >= 1 << 62:
            rows, where = np.unique(np.stack(cols, 1), axis=0, return_inverse=True)
            return [rows[:, i] for i in range(len(cols))], where.ravel()
        code = code * span + (c - lo)
    _, first, where = np.unique(code, return_index=True, return_inverse=True)
    return [c[first] for c in cols], where.ravel()


class Lattice:
    """Where locations fall on a square lattice of `spacing_km`: their cell corners, listed
    once per distinct node, and their bilinear weights. Made once per set of locations and
    reused for any quantity on that lattice (any day), so node values are evaluated once per
    node, not once per location."""

    def __init__(self, x_km, y_km, spacing_km: float):
        gx, gy = np.asarray(x_km) / spacing_km, np.asarray(y_km) / spacing_km
        i0, j0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
        self.shape = np.shape(i0)
        self.fx, self.fy = gx - i0, gy - j0
        self.gx1, self.gy1 = 1 - self.fx, 1 - self.fy
        (ci, cj), cell_of = distinct(i0, j0)
        (self.i, self.j), node_of = distinct(np.concatenate([ci, ci + 1, ci, ci + 1]),
                                             np.concatenate([cj, cj, cj + 1, cj + 1]))
        # Distinct node of each location's corners; rows: (0,0), (1,0), (0,1), (1,1).
        self.corners = node_of.reshape(4, -1)[:, cell_of]

    def __len__(self) -> int:
        return len(self.i)

    def interpolate(self, node_values: np.ndarray, rows=slice(None)) -> np.ndarray:
        """Bilinear values from values at the distinct nodes (K, ...) → (locations, ...);
        `rows` selects locations (flat index or slice) of a 1-d set of locations."""
        c = self.corners[:, rows]
        v00, v10 = node_values[c[0]], node_values[c[1]]
        v01, v11 = node_values[c[2]], node_values[c[3]]
        fx, fy = self.fx.ravel()[rows], self.fy.ravel()[rows]
        gx1, gy1 = self.gx1.ravel()[rows], self.gy1.ravel()[rows]
        if isinstance(rows, slice) and rows == slice(None):
            shape = self.shape + v00.shape[1:]
            v00, v10, v01, v11 = (v.reshape(shape) for v in (v00, v10, v01, v11))
            fx, fy, gx1, gy1 = self.fx, self.fy, self.gx1, self.gy1
        extra = (1,) * (v00.ndim - fx.ndim)
        fx, fy, gx1, gy1 = (a.reshape(a.shape + extra) for a in (fx, fy, gx1, gy1))
        # v00·(1−fx)·(1−fy) + v10·fx·(1−fy) + v01·(1−fx)·fy + v11·fx·fy, in that order.
        out = v00 * gx1
        out *= gy1
        t = v10 * fx
        t *= gy1
        out += t
        np.multiply(v01, gx1, out=t)
        t *= fy
        out += t
        np.multiply(v11, fx, out=t)
        t *= fy
        out += t
        return out


def lattice_bilinear(values_at, x_km: np.ndarray, y_km: np.ndarray, spacing_km: float) -> np.ndarray:
    """Bilinear interpolation of a lattice quantity: `values_at(i, j)` gives node values for
    integer node indices (arrays); smooth in space, and identical for any query order."""
    lat = Lattice(x_km, y_km, spacing_km)
    return lat.interpolate(np.asarray(values_at(lat.i, lat.j)))


def gaussian_to_uniform(z: np.ndarray) -> np.ndarray:
    return ndtr(z)
