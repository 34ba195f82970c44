"""Weather of the embedded world: rain and drying (surface wetness), clouds and snow.

Regional quantities live on coarse lattices (keyed by node index and day), interpolated
bilinearly, so neighbouring pixels share weather and any location can be evaluated alone.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from s2mos_transforms.world import noise

RAIN_SPACING_KM = 40.0
CLOUD_SPACING_KM = 150.0
CLOUD_TEXTURE_KM = 2.0
EPOCH = np.datetime64("2016-01-01T00:00:00", "s")  # day 0 of the world's clock
WETNESS_SPIN_DAYS = 60       # the bucket forgets its start within ~60 days (drying ≥ 0.1/day)
WETNESS_PERIOD_DAYS = 365    # days are grouped by a fixed yearly grid of bucket starts


def wetness_anchor(days: np.ndarray) -> np.ndarray:
    """Start of the bucket run (minus the spin-up) that gives day d its wetness: the last
    point of a fixed 365-day grid at least WETNESS_SPIN_DAYS before d."""
    d = np.asarray(days, np.int64) - WETNESS_SPIN_DAYS
    return np.floor_divide(d, WETNESS_PERIOD_DAYS) * WETNESS_PERIOD_DAYS


def day_of_year(day: np.ndarray) -> np.ndarray:
    return (np.asarray(day) + 0.0) % 365.25


def seasonal(day, peak_doy: float) -> np.ndarray:
    """cos-shaped seasonality, +1 at `peak_doy`, −1 half a year later."""
    return np.cos(2.0 * np.pi * (day_of_year(day) - peak_doy) / 365.25)


def synoptic_cells(x_km, y_km) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ~600 km synoptic cells of locations: distinct cells (i, j) and each location's."""
    ci = np.floor(np.asarray(x_km, float) / 600.0).astype(np.int64)
    cj = np.floor(np.asarray(y_km, float) / 600.0).astype(np.int64)
    (ui, uj), where = noise.distinct(ci, cj)
    return ui, uj, where.reshape(ci.shape)


@dataclasses.dataclass
class Sky:
    """Regional clouds over a set of locations for some days: node values of the smooth
    cover (K, m) on the CLOUD lattice, and the clear-or-cloudy draw per synoptic cell (C, m)."""

    lattice: noise.Lattice
    smooth: np.ndarray
    season: np.ndarray          # (m,): 0.10 · seasonal(day, 15)
    synoptic: np.ndarray
    cell_of: np.ndarray         # each location's synoptic cell

    def cover(self, y_km, rows=slice(None)) -> np.ndarray:
        """Cloud fraction (0–1) at the locations `rows` (y_km of those rows) → (rows, m)."""
        smooth = self.lattice.interpolate(self.smooth, rows)
        lat = np.degrees(np.asarray(y_km, float) / 6371.0)[..., None]
        north = np.clip((lat - 38.0) / 20.0, 0, 1)
        p_clear = np.clip(0.42 - 0.25 * north - self.season, 0.08, 0.6)
        syn = self.synoptic[self.cell_of[rows]]
        return np.where(syn < p_clear, 0.07 * smooth, 0.15 + 0.85 * smooth)


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
        spin = WETNESS_SPIN_DAYS
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

    def wetness_nodes(self, lattice: noise.Lattice, days: np.ndarray) -> np.ndarray:
        """Wetness at the lattice's distinct RAIN nodes (K,) for integer days (m,) → (K, m).

        A day's bucket starts from its own anchor (`wetness_anchor`), never from the first day
        asked for, so a day's value does not depend on which other days are simulated with
        it (a point equals its map pixel; a date range equals the same dates of a longer one).
        """
        days = np.asarray(days, np.int64)
        out = np.empty((len(lattice.i), days.size))
        anchors = wetness_anchor(days)
        for a in np.unique(anchors):
            sel = np.flatnonzero(anchors == a)
            lo, hi = int(a) + WETNESS_SPIN_DAYS, int(days[sel].max())
            out[:, sel] = self._wetness_nodes(lattice.i, lattice.j, lo, hi)[:, days[sel] - lo]
        return out

    def wetness(self, x_km, y_km, days: np.ndarray) -> np.ndarray:
        """Surface wetness (0–1) at locations (n,) for integer days (m,) → (n, m)."""
        x_km, y_km = np.asarray(x_km, float).ravel(), np.asarray(y_km, float).ravel()
        lattice = noise.Lattice(x_km, y_km, RAIN_SPACING_KM)
        return lattice.interpolate(self.wetness_nodes(lattice, days))

    # ---- clouds and snow ---------------------------------------------------------------
    def sky(self, lattice: noise.Lattice, cells: tuple[np.ndarray, np.ndarray, np.ndarray],
            acq: np.ndarray) -> "Sky":
        """The regional cloud state for days `acq` (m,) over a set of locations, given their
        CLOUD lattice and synoptic_cells: evaluated per location by `Sky.cover`."""
        day = np.asarray(acq, np.int64)
        lat = lat_of_node_y(lattice.j, CLOUD_SPACING_KM)[..., None]
        north = np.clip((lat - 38.0) / 20.0, 0, 1)
        mean = np.clip(0.45 + 0.2 * north + 0.1 * seasonal(day, 15), 0.2, 0.85)
        u = noise.uniform(self.seed, 31, lattice.i[..., None], lattice.j[..., None], day)
        ci, cj, where = cells
        return Sky(lattice, u ** (1.0 / mean - 1.0), 0.10 * seasonal(day, 15),
                   noise.uniform(self.seed, 30, ci[:, None], cj[:, None], day), where)

    def cloud_cover(self, x_km, y_km, acq: np.ndarray) -> np.ndarray:
        """Regional cloud fraction (0–1) for days `acq` (m,) at (n,) → (n, m). Synoptic
        systems (~600 km) decide clear vs. cloudy days; cover varies smoothly within them.
        North and winter are cloudier, Mediterranean summers clearest."""
        x_km, y_km = np.asarray(x_km, float), np.asarray(y_km, float)
        sky = self.sky(noise.Lattice(x_km, y_km, CLOUD_SPACING_KM), synoptic_cells(x_km, y_km), acq)
        return sky.cover(y_km)

    def texture_nodes(self, lattice: noise.Lattice, acq: np.ndarray, stream: int = 32) -> np.ndarray:
        """Gaussian cloud texture at the distinct nodes of a CLOUD_TEXTURE lattice → (K, m)."""
        day = np.asarray(acq, np.int64)
        return noise.normal(self.seed, stream, lattice.i[..., None], lattice.j[..., None], day)

    @staticmethod
    def texture_from(z: np.ndarray) -> np.ndarray:
        """Texture from interpolated node values (consumed)."""
        z *= 1.5
        return noise.gaussian_to_uniform(z)

    def cloud_texture(self, x_km, y_km, acq: np.ndarray, stream: int = 32) -> np.ndarray:
        """Pixel-scale cloud texture, ≈ U(0, 1), correlated over ~2 km: a pixel is cloudy where
        texture < regional cover, so cloud cover matches the scene percentage."""
        lattice = noise.Lattice(np.asarray(x_km, float), np.asarray(y_km, float), CLOUD_TEXTURE_KM)
        return self.texture_from(lattice.interpolate(self.texture_nodes(lattice, acq, stream)))

    def snow(self, lat, acq_day, u: np.ndarray) -> np.ndarray:
        """Snow on the ground: north, mid-winter only."""
        p = 0.35 * np.clip((np.asarray(lat)[..., None] - 49.0) / 10.0, 0, 1) \
            * np.clip(seasonal(acq_day, 20), 0, 1) ** 2
        return u < p
