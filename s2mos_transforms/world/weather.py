"""Weather of the embedded world: rain and drying (surface wetness), clouds and snow.

Regional quantities live on coarse lattices (keyed by node index and day), interpolated
bilinearly, so neighbouring pixels share weather and any location can be evaluated alone.
"""
from __future__ import annotations

import numpy as np

from s2mos_transforms.world import noise

RAIN_SPACING_KM = 40.0
CLOUD_SPACING_KM = 150.0
CLOUD_TEXTURE_KM = 2.0
EPOCH = np.datetime64("2016-01-01T00:00:00", "s")  # day 0 of the world's clock


def day_of_year(day: np.ndarray) -> np.ndarray:
    return (np.asarray(day) + 0.0) % 365.25


def seasonal(day, peak_doy: float) -> np.ndarray:
    """cos-shaped seasonality, +1 at `peak_doy`, −1 half a year later."""
    return np.cos(2.0 * np.pi * (day_of_year(day) - peak_doy) / 365.25)


def lat_of_node_y(j: np.ndarray, spacing: float) -> np.ndarray:
    from s2mos_transforms.world.presets import EARTH_RADIUS_KM
    return np.degrees(j * spacing / EARTH_RADIUS_KM)


class Weather:
    def __init__(self, seed: int):
        self.seed = seed

    # ---- rain and surface wetness -------------------------------------------------------
    def _rain_mm(self, i, j, days) -> np.ndarray:
        """Daily rain (mm) at lattice nodes (i, j) for integer days; (nodes, days)."""
        lat = lat_of_node_y(j, RAIN_SPACING_KM)[:, None]
        d = days[None, :]
        # Wetter north, wetter winter; Mediterranean summers (south) are dry.
        south = np.clip((46.0 - lat) / 10.0, 0.0, 1.0)
        p = 0.22 + 0.12 * np.clip((lat - 40.0) / 20.0, 0, 1) + 0.07 * seasonal(d, 15) \
            - 0.12 * south * np.clip(seasonal(d, 200), 0, 1)
        u = noise.uniform(self.seed, 21, i[:, None], j[:, None], d)
        amount = -7.0 * np.log1p(-noise.uniform(self.seed, 22, i[:, None], j[:, None], d))
        return np.where(u < np.clip(p, 0.03, 0.6), amount, 0.0)

    def _wetness_nodes(self, i, j, day_lo: int, day_hi: int) -> np.ndarray:
        """Surface wetness in [0, 1] per node and day, by a bucket that rain fills and
        evaporation drains (faster in summer and in the south). Spins up 60 days early."""
        spin = 60
        days = np.arange(day_lo - spin, day_hi + 1)
        rain = self._rain_mm(i, j, days)
        lat = lat_of_node_y(j, RAIN_SPACING_KM)
        dry_rate = (0.10 + 0.10 * np.clip(seasonal(days, 196), 0, 1)[None, :]
                    + 0.05 * np.clip((48.0 - lat) / 12.0, 0, 1)[:, None])
        keep = np.exp(-dry_rate)
        w = np.zeros((len(i), len(days)))
        state = np.full(len(i), 0.4)
        for t in range(len(days)):
            state = np.minimum(state * keep[:, t] + rain[:, t] / 20.0, 1.0)
            w[:, t] = state
        return w[:, spin:]

    def wetness(self, x_km, y_km, days: np.ndarray) -> np.ndarray:
        """Surface wetness (0–1) at locations (n,) for integer days (m,) → (n, m)."""
        x_km, y_km = np.asarray(x_km, float).ravel(), np.asarray(y_km, float).ravel()
        days = np.asarray(days, np.int64)
        gi = np.floor(x_km / RAIN_SPACING_KM).astype(np.int64)
        gj = np.floor(y_km / RAIN_SPACING_KM).astype(np.int64)
        nodes = np.unique(np.concatenate([np.stack([gi + di, gj + dj], 1)
                                          for di in (0, 1) for dj in (0, 1)]), axis=0)
        day_lo, day_hi = int(days.min()), int(days.max())
        table = self._wetness_nodes(nodes[:, 0], nodes[:, 1], day_lo, day_hi)[:, days - day_lo]
        keys = nodes[:, 0] * 4_000_037 + nodes[:, 1]
        order = np.argsort(keys)

        def values_at(ii, jj):
            rows = order[np.searchsorted(keys, ii * 4_000_037 + jj, sorter=order)]
            return table[rows]

        return noise.lattice_bilinear(values_at, x_km, y_km, RAIN_SPACING_KM)

    # ---- clouds and snow ---------------------------------------------------------------
    def cloud_cover(self, x_km, y_km, acq: np.ndarray) -> np.ndarray:
        """Regional cloud fraction (0–1) for days `acq` (m,) at (n,) → (n, m). Synoptic
        systems (~600 km) decide clear vs. cloudy days; cover varies smoothly within them.
        North and winter are cloudier, Mediterranean summers clearest."""
        day = np.asarray(acq, np.int64)
        x_km, y_km = np.asarray(x_km, float), np.asarray(y_km, float)

        def values_at(i, j):
            lat = lat_of_node_y(j, CLOUD_SPACING_KM)[..., None]
            north = np.clip((lat - 38.0) / 20.0, 0, 1)
            mean = np.clip(0.45 + 0.2 * north + 0.1 * seasonal(day, 15), 0.2, 0.85)
            u = noise.uniform(self.seed, 31, i[..., None], j[..., None], day)
            return u ** (1.0 / mean - 1.0)

        smooth = noise.lattice_bilinear(values_at, x_km, y_km, CLOUD_SPACING_KM)
        lat = np.degrees(y_km / 6371.0)[..., None]
        north = np.clip((lat - 38.0) / 20.0, 0, 1)
        p_clear = np.clip(0.42 - 0.25 * north - 0.10 * seasonal(day, 15), 0.08, 0.6)
        syn = noise.uniform(self.seed, 30, np.floor(x_km / 600.0)[..., None], np.floor(y_km / 600.0)[..., None], day)
        return np.where(syn < p_clear, 0.07 * smooth, 0.15 + 0.85 * smooth)

    def cloud_texture(self, x_km, y_km, acq: np.ndarray, stream: int = 32) -> np.ndarray:
        """Pixel-scale cloud texture, ≈ U(0, 1), correlated over ~2 km: a pixel is cloudy where
        texture < regional cover, so cloud cover matches the scene percentage."""
        day = np.asarray(acq, np.int64)

        def values_at(i, j):
            return noise.normal(self.seed, stream, i[..., None], j[..., None], day)

        z = noise.lattice_bilinear(values_at, np.asarray(x_km, float), np.asarray(y_km, float), CLOUD_TEXTURE_KM)
        return noise.gaussian_to_uniform(z * 1.5)

    def snow(self, lat, acq_day, u: np.ndarray) -> np.ndarray:
        """Snow on the ground: north, mid-winter only."""
        p = 0.35 * np.clip((np.asarray(lat)[..., None] - 49.0) / 10.0, 0, 1) \
            * np.clip(seasonal(acq_day, 20), 0, 1) ** 2
        return u < p
