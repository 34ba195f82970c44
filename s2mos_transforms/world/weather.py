"""Weather of the embedded world: rain, the drying of two soil layers after it, clouds and snow.

Regional quantities live on coarse lattices (keyed by node index and day), interpolated
bilinearly, so neighbouring pixels share weather and any location can be evaluated alone.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from s2mos_transforms.world import noise
from s2mos_transforms.world import physics_params as P

RAIN_SPACING_KM = 40.0
CLOUD_SPACING_KM = 150.0
CLOUD_TEXTURE_KM = 2.0
EPOCH = np.datetime64("2016-01-01T00:00:00", "s")  # day 0 of the world's clock
WETNESS_SPIN_DAYS = 60       # the bucket forgets its start within ~60 days (drying ≥ 0.1/day)
WETNESS_PERIOD_DAYS = 365    # days are grouped by a fixed yearly grid of bucket starts
RAIN_MEMORY_DAYS = 400       # rain since tillage is summed over at most this many days
# The moisture reservoirs: optical skin and few-cm layer, each at the sandy and the clayey end
# of the drydown times (a location mixes the two ends by its texture index).
SKIN_FAST, SKIN_SLOW, DEEP_FAST, DEEP_SLOW = range(4)
LAYER_TAU = np.array([*P.TAU_SKIN_DAYS, *P.TAU_DEEP_DAYS])
LAYER_CAPACITY = np.array([P.SKIN_CAPACITY_MM] * 2 + [P.DEEP_CAPACITY_MM] * 2)


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


def clear_probability(lat, day=None, season=None) -> np.ndarray:
    """Probability that a synoptic cell is clear on a day: lower in the north and in winter.
    `season` (0.10 · seasonal(day, 15)) may be given instead of the day."""
    north = np.clip((np.asarray(lat) - 38.0) / 20.0, 0, 1)
    season = 0.10 * seasonal(day, 15) if season is None else season
    return np.clip(0.42 - 0.25 * north - season, 0.08, 0.6)


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
        p_clear = clear_probability(lat, season=self.season)
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
        # Rain and cloud share their weather systems: on a synoptically clear day (the draw
        # `Sky` uses) rain is RAIN_ON_CLEAR_DAYS as likely, on cloudy days more likely, so the
        # climatological rain frequency p is kept; clear S2 dates thus tend to follow dry days.
        ci, cj, where = synoptic_cells(i * RAIN_SPACING_KM, j * RAIN_SPACING_KM)
        clear = noise.uniform(self.seed, 30, ci[:, None], cj[:, None], d)[where] \
            < clear_probability(lat, d)
        pc = clear_probability(lat, d)
        p = np.clip(p, 0.03, 0.6) * np.where(clear, P.RAIN_ON_CLEAR_DAYS,
                                             (1.0 - P.RAIN_ON_CLEAR_DAYS * pc) / (1.0 - pc))
        u = noise.uniform(self.seed, 21, i[:, None], j[:, None], d)
        amount = -7.0 * np.log1p(-noise.uniform(self.seed, 22, i[:, None], j[:, None], d))
        return np.where(u < p, amount, 0.0)

    def demand(self, j, days) -> np.ndarray:
        """Evaporative demand relative to a mid-latitude summer day, per node row j (K,) and
        day (D,) → (K, D): low in winter, higher in summer and in the south."""
        lat = lat_of_node_y(np.asarray(j), RAIN_SPACING_KM)[:, None]
        summer = 0.5 * (1.0 + seasonal(np.asarray(days)[None, :], 196))
        south = np.clip((48.0 - lat) / 12.0, 0.0, 1.0)
        return P.DEMAND_WINTER + (P.DEMAND_SUMMER - P.DEMAND_WINTER + P.DEMAND_SOUTH * south) * summer

    def _layer_inputs(self, i, j, days):
        """Per layer, node and day: drain rate (1/day), rain fill (share of capacity) and the
        hour (fraction of the day) the rain fell → three (LAYERS, K, D) / (1, K, D) arrays."""
        rain = self._rain_mm(i, j, days)                                      # (K, D)
        hour = noise.uniform(self.seed, 23, i[:, None], j[:, None], days[None, :])[None]
        rate = self.demand(j, days)[None] / LAYER_TAU[:, None, None]
        return rate, rain[None] / LAYER_CAPACITY[:, None, None], hour

    def _layer_ends(self, i, j, anchors: list[int]) -> list[np.ndarray]:
        """Wetness of the LAYERS at RAIN nodes (K,) at the end of each day of each anchor's
        run, days anchor … anchor + WETNESS_SPIN_DAYS + WETNESS_PERIOD_DAYS − 1 → one
        (LAYERS, K, D) array per anchor. Each layer is a linear reservoir: rain (at a random
        hour of its day) fills it by rain / capacity, it drains towards air-dry with e-folding
        time tau / demand. Every run starts at its anchor, at 0.3; the runs of several anchors
        step through their days together (the same arithmetic, one loop)."""
        span = np.arange(WETNESS_SPIN_DAYS + WETNESS_PERIOD_DAYS)
        days = (np.asarray(anchors, np.int64)[:, None] + span[None, :]).ravel()
        rate, fill, hour = self._layer_inputs(i, j, days)                    # (L|1, K, A·D)
        shape = (rate.shape[0], len(i), len(anchors), span.size)

        def day_major(a: np.ndarray) -> np.ndarray:
            # (L, K, A·D) → (D, L, K, A), contiguous: the loop below reads and writes one day
            # at a time, which along the last axis would be a strided walk over the whole array.
            return np.ascontiguousarray(np.moveaxis(np.broadcast_to(a, shape[:2] + (a.shape[-1],))
                                                    .reshape(shape), -1, 0))

        to_rain = day_major(np.exp(-rate * hour))
        after_rain = day_major(np.exp(-rate * (1.0 - hour)))
        fill = day_major(fill)
        ends = np.empty((span.size,) + shape[:3])
        state = np.full(shape[:3], 0.3)
        for d in range(span.size):
            state = np.minimum(state * to_rain[d] + fill[d], 1.0) * after_rain[d]
            ends[d] = state
        ends = np.moveaxis(ends, 0, -1)                                      # (L, K, A, D)
        return [np.ascontiguousarray(ends[:, :, k]) for k in range(len(anchors))]

    def layers_nodes(self, lattice: noise.Lattice, t: np.ndarray, cache: dict | None = None) -> np.ndarray:
        """Wetness (0 air-dry … 1 saturated) of the LAYERS at the lattice's distinct RAIN
        nodes at fractional days t (m,) → (LAYERS, K, m). `cache` (a dict kept with the
        lattice) holds the runs already made, so dates simulated in blocks share them.

        A day's reservoirs start from its own anchor (`wetness_anchor`), never from the first
        day asked for, so a date's value does not depend on which other dates are simulated
        with it (a point equals its map pixel; a date range equals the same dates of a longer
        one)."""
        t = np.asarray(t, np.float64)
        days = np.floor(t).astype(np.int64)
        cache = {} if cache is None else cache
        out = np.empty((len(LAYER_TAU), len(lattice.i), t.size))
        anchors = wetness_anchor(days)
        todo = [int(a) for a in np.unique(anchors) if int(a) not in cache]
        if todo:
            cache.update(zip(todo, self._layer_ends(lattice.i, lattice.j, todo)))
        for a in np.unique(anchors):
            sel = np.flatnonzero(anchors == a)
            ends = cache[int(a)]
            d = days[sel]
            rate, fill, hour = self._layer_inputs(lattice.i, lattice.j, d)
            prev = ends[:, :, d - int(a) - 1]
            phase = (t[sel] - d)[None, None, :]
            rained = np.minimum(prev * np.exp(-rate * hour) + fill, 1.0) * np.exp(-rate * np.maximum(phase - hour, 0.0))
            out[:, :, sel] = np.where(hour < phase, rained, prev * np.exp(-rate * phase))
        return out

    def layers(self, x_km, y_km, t: np.ndarray) -> np.ndarray:
        """Layer wetness at locations (n,) for fractional days t (m,) → (LAYERS, n, m)."""
        x_km, y_km = np.asarray(x_km, float).ravel(), np.asarray(y_km, float).ravel()
        lattice = noise.Lattice(x_km, y_km, RAIN_SPACING_KM)
        return np.moveaxis(lattice.interpolate(np.moveaxis(self.layers_nodes(lattice, t), 0, 1)), 1, 0)

    def rain_since(self, lattice: noise.Lattice, since: np.ndarray, t: np.ndarray,
                   cache: dict | None = None) -> np.ndarray:
        """Rain (mm) that fell after day `since` (n, m) up to fractional day t (m,) at the
        lattice's locations (n,), over at most RAIN_MEMORY_DAYS: drives roughness decay and
        crusting after tillage. `cache` (a dict kept with the lattice) keeps the cumulative
        rain made for earlier calls."""
        t = np.asarray(t, np.float64)
        day = np.floor(t).astype(np.int64)
        lo, hi = int(day.min()) - RAIN_MEMORY_DAYS, int(day.max())
        cache = {} if cache is None else cache
        if not cache or lo < cache["lo"] or hi >= cache["lo"] + cache["cum"].shape[1]:
            if cache:
                lo, hi = min(lo, cache["lo"]), max(hi, cache["lo"] + cache["cum"].shape[1] - 1)
            days = np.arange(lo, hi + 1)
            # Whole hundredths of a mm, summed as integers: exact, so a difference never
            # depends on the first day the sum started from.
            cache["lo"] = lo
            cache["cum"] = np.cumsum(np.round(self._rain_mm(lattice.i, lattice.j, days) * 100).astype(np.int64),
                                     axis=1)
        lo, cum = cache["lo"], cache["cum"]
        start = np.maximum(np.floor(since).astype(np.int64), (day - RAIN_MEMORY_DAYS)[None, :]) - lo
        end = (day - lo)[None, :]
        n = start.shape[0]
        total = np.zeros(start.shape)
        w = [(0, lattice.gx1 * lattice.gy1), (1, lattice.fx * lattice.gy1),
             (2, lattice.gx1 * lattice.fy), (3, lattice.fx * lattice.fy)]
        for c, weight in w:
            node = lattice.corners[c][:, None]
            total += weight.reshape(n, 1) * (cum[node, end] - cum[node, start])
        return np.maximum(total, 0.0) / 100.0

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
