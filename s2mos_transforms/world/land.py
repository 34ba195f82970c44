"""Parcels and crop calendars: green cover, crop residue and tillage over time.

Parcels are the Voronoi cells of jittered seeds on a 250 m lattice. Each parcel has a land use
(mostly arable, some permanent grassland that is never bare) and, per year, a crop from a
rotation (winter cereal, summer crop, fallow) with plough, sowing, harvest and stubble dates.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from s2mos_transforms.world import noise
from s2mos_transforms.world.weather import EPOCH

PARCEL_SPACING_KM = 0.25
WINTER, SUMMER, FALLOW = 0, 1, 2
TILL_NONE, TILL_PLOUGH, TILL_STUBBLE, TILL_SEEDBED = 0, 1, 2, 3
GRASSLAND_SHARE = 0.06
ROUGHNESS_SETTLED_CM = 0.7


def parcel_keys(x_km: np.ndarray, y_km: np.ndarray, seed: int) -> np.ndarray:
    """Parcel identifier (int64) of each location: the nearest jittered lattice seed."""
    gx, gy = np.asarray(x_km) / PARCEL_SPACING_KM, np.asarray(y_km) / PARCEL_SPACING_KM
    i0, j0 = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    best_d = np.full(gx.shape, np.inf)
    best_key = np.zeros(gx.shape, np.int64)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = i0 + di, j0 + dj
            sx = i + 0.1 + 0.8 * noise.uniform(seed, 41, i, j)
            sy = j + 0.1 + 0.8 * noise.uniform(seed, 42, i, j)
            d = (gx - sx) ** 2 + (gy - sy) ** 2
            closer = d < best_d
            best_d = np.where(closer, d, best_d)
            best_key = np.where(closer, i * 10_000_019 + j, best_key)
    return best_key


def parcel_centre_km(keys: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seed point (km) of parcels `keys`: where a parcel's own rain is taken, whoever asks."""
    keys = np.asarray(keys, np.int64)
    i, j = np.floor_divide(keys, 10_000_019), np.mod(keys, 10_000_019)
    sx = i + 0.1 + 0.8 * noise.uniform(seed, 41, i, j)
    sy = j + 0.1 + 0.8 * noise.uniform(seed, 42, i, j)
    return sx * PARCEL_SPACING_KM, sy * PARCEL_SPACING_KM


def parcel_latitude(keys: np.ndarray) -> np.ndarray:
    """Latitude (deg) of a parcel's lattice row: one value per parcel, whoever asks."""
    from s2mos_transforms.world.presets import EARTH_RADIUS_KM
    j = np.asarray(keys, np.int64) % 10_000_019
    return np.degrees((j + 0.5) * PARCEL_SPACING_KM / EARTH_RADIUS_KM)


def _year_start_day(year: int) -> float:
    return float((np.datetime64(f"{year}-01-01", "D") - EPOCH.astype("datetime64[D]")).astype(np.int64))


@dataclasses.dataclass
class SurfaceState:
    """Per (location, time): green cover, residue cover (0–1), days since the last tillage
    and its kind; `grassland` per location."""

    green: np.ndarray
    residue: np.ndarray
    till_age: np.ndarray
    till_kind: np.ndarray
    grassland: np.ndarray


def _logistic(z):
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


class LandUse:
    def __init__(self, seed: int):
        self.seed = seed

    def surface(self, keys: np.ndarray, lat: np.ndarray, days: np.ndarray) -> SurfaceState:
        """States of parcels `keys` (n,) at latitude `lat` (n,) for fractional days (m,)."""
        keys = np.asarray(keys, np.int64)
        lat = np.asarray(lat, np.float64)[:, None]
        t = np.asarray(days, np.float64)[None, :]
        n, m = len(keys), t.shape[1]
        # A day sees the crop years around it (the one before, its own, the next), whatever
        # other days are simulated with it: state never depends on how dates are batched.
        t_year = int(str(EPOCH.astype("datetime64[Y]"))) + np.floor(t / 365.25).astype(np.int64)  # (1, m)
        first_year, last_year = int(t_year.min()) - 1, int(t_year.max()) + 1
        s = self.seed
        grass = noise.uniform(s, 50, keys) < GRASSLAND_SHARE
        lat_off = lat[:, 0] - 45.0

        green = np.zeros((n, m))
        residue = np.zeros((n, m))
        events_t, events_k, events_y = [], [], []
        for year in range(first_year, last_year + 1):
            y0, yp = _year_start_day(year), _year_start_day(year - 1)
            u = lambda stream: noise.uniform(s, stream, keys, year)  # noqa: E731
            crop = np.where(u(51) < 0.5, WINTER, np.where(u(51) < 0.9, SUMMER, FALLOW))
            gmax = 0.75 + 0.2 * u(52)
            # Winter cereal: autumn plough + sowing, spring growth, July harvest (later north).
            w_plough = yp + 262 + 35 * u(53) - 0.8 * lat_off
            w_sow = w_plough + 4 + 12 * u(54)
            w_harvest = y0 + 183 + 25 * u(55) + 1.3 * lat_off
            w_spring = y0 + 95 + 1.5 * lat_off
            # Summer crop (maize, sunflower …): spring (or previous autumn) plough, May sowing.
            autumn_plough = u(56) < 0.4
            s_plough = np.where(autumn_plough, yp + 300 + 25 * u(57), y0 + 70 + 35 * u(57) + 0.8 * lat_off)
            s_sow = y0 + 108 + 25 * u(58) + 0.8 * lat_off
            s_harvest = y0 + 255 + 40 * u(59)
            is_w, is_s, is_f = crop == WINTER, crop == SUMMER, crop == FALLOW
            sow = np.where(is_w, w_sow, s_sow)
            harvest = np.where(is_w, w_harvest, s_harvest)
            plough = np.where(is_w, w_plough, np.where(is_s, s_plough, y0 + 80 + 40 * u(60)))
            seedbed = np.where(is_s & autumn_plough, s_sow - 3, np.nan)
            stubble = np.where(u(61) < 0.6, harvest + 10 + 40 * u(62), np.nan)

            tt = t
            near = np.abs(t_year - year) <= 1                             # (1, m)
            sw, hv = sow[:, None], harvest[:, None]
            grow_w = 0.22 * _logistic((tt - sw - 35) / 8) + (gmax[:, None] - 0.22) * _logistic((tt - w_spring[:, None]) / 12)
            grow_s = gmax[:, None] * _logistic((tt - sw - 45) / 10)
            grow = np.where(is_w[:, None], grow_w, grow_s)
            senesce = np.clip((hv - 5 - tt) / 40.0, 0.0, 1.0)          # 1 before senescence, 0 at harvest
            in_season = (tt >= sw) & (tt < hv)
            g_crop = np.where(in_season & ~is_f[:, None], grow * senesce, 0.0)
            dry_crop = np.where(in_season & ~is_f[:, None], grow * (1 - senesce), 0.0)
            # Fallow: weedy cover through the year, ploughed in spring.
            g_fallow = np.where(is_f[:, None] & (tt >= y0) & (tt < y0 + 365),
                                0.12 + 0.18 * np.clip(np.cos(2 * np.pi * (tt - y0 - 150) / 365), 0, 1), 0.0)
            # Residue after harvest decays; stubble tillage and the next plough bury it.
            r0 = (0.3 + 0.5 * u(63))[:, None]
            after = tt >= hv
            resid = np.where(after & ~is_f[:, None], r0 * np.exp(-(tt - hv) / 60.0), 0.0)
            stubble_done = np.nan_to_num(stubble[:, None], nan=np.inf) <= tt
            resid = np.where(stubble_done, resid * 0.2, resid)
            green = np.maximum(green, np.where(near, g_crop + g_fallow, 0.0))
            residue = np.maximum(residue, np.where(near, np.maximum(resid, dry_crop), 0.0))
            events_t += [plough, seedbed, stubble]
            events_k += [TILL_PLOUGH, TILL_SEEDBED, TILL_STUBBLE]
            events_y += [year] * 4
            # Sowing prepares a seedbed too (winter cereals, spring-ploughed summer crops).
            events_t.append(np.where(is_f, np.nan, sow - 1))
            events_k.append(TILL_SEEDBED)

        # Ploughing buries residue: keep only residue from harvests after the last plough.
        ev_t = np.stack(events_t, 1)
        ev_k = np.asarray(events_k)
        ev_t = np.where(np.isnan(ev_t), np.inf, ev_t)
        ev_near = np.abs(np.asarray(events_y)[:, None] - t_year) <= 1    # (E, m)
        past = (ev_t[:, :, None] <= t[:, None, :]) & ev_near[None]      # (n, E, m)
        last_t = np.max(np.where(past, ev_t[:, :, None], -np.inf), axis=1)
        last_idx = np.argmax(np.where(past, ev_t[:, :, None], -np.inf), axis=1)
        till_kind = np.where(np.isfinite(last_t), ev_k[last_idx], TILL_NONE)
        till_age = np.where(np.isfinite(last_t), t - last_t, 365.0)
        residue = np.where((till_kind == TILL_PLOUGH) & (till_age < 120), residue * 0.1, residue)
        # Weeds and volunteers regrow on tilled ground left alone.
        weeds = 0.12 * (1 - np.exp(-till_age / 120.0)) * (noise.uniform(s, 64, keys) < 0.3)[:, None]
        green = np.maximum(green, np.where(green < 0.05, weeds, 0.0))
        # Permanent grassland: always green, never tilled.
        g_grass = 0.55 + 0.25 * np.cos(2 * np.pi * (t - 140) / 365.25)
        green = np.where(grass[:, None], g_grass, green)
        residue = np.where(grass[:, None], 0.15, residue)
        till_age = np.where(grass[:, None], 3650.0, till_age)
        till_kind = np.where(grass[:, None], TILL_NONE, till_kind)
        total = green + residue
        scale = np.where(total > 0.98, 0.98 / np.maximum(total, 1e-9), 1.0)
        return SurfaceState(green * scale, residue * scale, till_age, till_kind, grass)


# RMS height (cm) of freshly tilled soil above the settled crust, by tillage kind (TILL_NONE …
# TILL_SEEDBED): a base and a part growing with clay (%) (clayey soils form larger clods).
FRESH_EXCESS_CM = np.array([0.0, 2.0 - ROUGHNESS_SETTLED_CM, 1.6 - ROUGHNESS_SETTLED_CM, 1.1 - ROUGHNESS_SETTLED_CM])
FRESH_PER_CLAY_CM = np.array([0.0, 0.02, 0.008, 0.003])


def fresh_excess_cm(kind: np.ndarray, clay: np.ndarray) -> np.ndarray:
    """Roughness (cm) above the settled crust of soil freshly tilled by `kind` (…), for clay
    (%) broadcasting against it. Rain and time then settle it towards ROUGHNESS_SETTLED_CM
    (simulator, physics_params.ROUGH_*)."""
    return np.take(FRESH_EXCESS_CM, kind) + np.take(FRESH_PER_CLAY_CM, kind) * clay
