"""The embedded world's simulator: S2 and S1 acquisitions at any set of 10 m pixels.

Points are snapped to the centre of their pixel of the UTM 10 m grid, and every random draw is
keyed by (pixel, acquisition), so a sample point's observations equal the map pixel's values.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile, lonlat_to_xy, utm_epsg, xy_to_lonlat
from s2mos_transforms.world import noise, optics, radar
from s2mos_transforms.world.land import LandUse, parcel_keys, parcel_latitude, roughness_cm
from s2mos_transforms.world.presets import Preset, lonlat_to_km
from s2mos_transforms.world.soil import SoilModel, SoilProperties
from s2mos_transforms.world.weather import EPOCH, Weather

S2_REVISIT_DAYS = 5
S1_REVISIT_DAYS = 6
ORBIT_BAND_DEG = 3.0   # locations in one 3° longitude band share their acquisition schedule
GRANULE_DEG = 1.0      # S2 scene (granule) over which the cloud percentage is reported
CHUNK_ELEMENTS = 1 << 20  # (locations × dates) simulated at once: bounds memory for large tiles


@dataclasses.dataclass
class Locations:
    lat: np.ndarray
    lon: np.ndarray
    epsg: np.ndarray
    ix: np.ndarray
    iy: np.ndarray
    x_km: np.ndarray
    y_km: np.ndarray
    soil: SoilProperties
    parcel: np.ndarray
    dry: np.ndarray          # (n, 10) dry soil reflectance

    def __len__(self) -> int:
        return len(self.lat)


@dataclasses.dataclass
class Schedule:
    times: np.ndarray        # datetime64[s] UTC
    acq: np.ndarray          # global acquisition number (noise key)
    day: np.ndarray          # fractional days since EPOCH
    angle: float = float("nan")


def _date_chunk(n_locations: int) -> int:
    return max(4, CHUNK_ELEMENTS // max(n_locations, 1))


def orbit_band(lon) -> np.ndarray:
    return np.floor((np.asarray(lon, float) + 180.0) / ORBIT_BAND_DEG).astype(np.int64)


class World:
    def __init__(self, preset: Preset, seed: int | None = None):
        self.preset = preset
        self.seed = int(preset.seed if seed is None else seed)
        self.soil_model = SoilModel(preset, self.seed)
        self.weather = Weather(self.seed)
        self.land = LandUse(self.seed)

    # ---- locations ---------------------------------------------------------------------
    def _locations(self, epsg, ix, iy) -> Locations:
        epsg = np.asarray(epsg, np.int64)
        lon = np.empty(len(ix))
        lat = np.empty(len(ix))
        for code in np.unique(epsg):
            sel = epsg == code
            lo, la = xy_to_lonlat(int(code), (ix[sel] + 0.5) * 10.0, (iy[sel] + 0.5) * 10.0)
            lon[sel], lat[sel] = lo, la
        x_km, y_km = lonlat_to_km(lon, lat)
        soil = self.soil_model.properties(lat, lon, x_km, y_km)
        dry = optics.dry_soil_spectrum(soil.clay, soil.sand, soil.soc, soil.iron, soil.albedo, soil.swir_mineral)
        return Locations(lat, lon, epsg, np.asarray(ix, np.int64), np.asarray(iy, np.int64), x_km, y_km,
                         soil, parcel_keys(x_km, y_km, self.seed), dry)

    def locate_points(self, lat, lon) -> Locations:
        """Snap points to the centre of their 10 m pixel in their UTM zone."""
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
        epsg = np.array([utm_epsg(a, o) for a, o in zip(lat, lon)], np.int64)
        ix, iy = np.empty(len(lat), np.int64), np.empty(len(lat), np.int64)
        for code in np.unique(epsg):
            sel = epsg == code
            x, y = lonlat_to_xy(int(code), lon[sel], lat[sel])
            ix[sel], iy[sel] = np.floor(np.asarray(x) / 10.0), np.floor(np.asarray(y) / 10.0)
        return self._locations(epsg, ix, iy)

    def locate_tile(self, tile: Tile) -> Locations:
        cols, rows = np.meshgrid(np.arange(tile.size), np.arange(tile.size))
        step = tile.res / 10.0
        ix = np.floor((tile.x_min + (cols.ravel() + 0.5) * tile.res) / 10.0).astype(np.int64)
        iy = np.floor((tile.y_max - (rows.ravel() + 0.5) * tile.res) / 10.0).astype(np.int64)
        del step
        return self._locations(np.full(ix.size, tile.epsg), ix, iy)

    # ---- acquisition schedules ---------------------------------------------------------
    def _days(self, start: str | None, end: str | None) -> tuple[float, float]:
        s = np.datetime64(start or self.preset.start, "s")
        e = np.datetime64(end or self.preset.end, "s") + np.timedelta64(1, "D")
        return float((s - EPOCH) / np.timedelta64(1, "D")), float((e - EPOCH) / np.timedelta64(1, "D"))

    def _schedule(self, band: int, revisit: int, stream: int, local_hour: float,
                  start: str | None, end: str | None) -> Schedule:
        lo, hi = self._days(start, end)
        phase = int(noise.hash_keys(self.seed, stream, band) % np.uint64(revisit))
        lon_centre = (band + 0.5) * ORBIT_BAND_DEG - 180.0
        hour = (local_hour - lon_centre / 15.0) % 24.0
        k = np.arange(np.ceil((lo - phase - hour / 24) / revisit), np.floor((hi - phase) / revisit) + 1)
        acq = k.astype(np.int64)
        jitter_min = 4.0 * noise.normal(self.seed, stream + 1, band, acq)
        day = phase + revisit * acq + (hour + jitter_min / 60.0) / 24.0
        keep = (day >= lo) & (day < hi)
        day, acq = day[keep], acq[keep]
        times = EPOCH + np.round(day * 86400.0).astype("timedelta64[s]")
        return Schedule(times, acq, day)

    def s2_schedule(self, band: int, start=None, end=None) -> Schedule:
        return self._schedule(band, S2_REVISIT_DAYS, 71, 10.5, start, end)

    def s1_schedule(self, band: int, start=None, end=None) -> Schedule:
        ascending = noise.uniform(self.seed, 73, band) < 0.5
        sched = self._schedule(band, S1_REVISIT_DAYS, 75, 18.1 if ascending else 6.1, start, end)
        sched.angle = float(31.0 + 14.0 * noise.uniform(self.seed, 74, band))
        return sched

    # ---- the hidden surface state ------------------------------------------------------
    def surface(self, loc: Locations, day: np.ndarray):
        """Green, residue, roughness and moisture at locations (n,) for days (m,), each (n, m)."""
        uniq, inverse = np.unique(loc.parcel, return_inverse=True)
        state = self.land.surface(uniq, parcel_latitude(uniq), day)
        green = state.green[inverse]
        residue = state.residue[inverse]
        grass = state.grassland[inverse]
        state.till_age, state.till_kind = state.till_age[inverse], state.till_kind[inverse]
        rough = roughness_cm(state, loc.soil.clay)
        wet = self.weather.wetness(loc.x_km, loc.y_km, np.floor(day).astype(np.int64))
        clay, sand = loc.soil.clay[:, None], loc.soil.sand[:, None]
        theta_res = self.air_dry(loc)
        theta_fc = 0.20 + 0.25 * clay / 100.0 - 0.05 * sand / 100.0
        theta = theta_res + (theta_fc - theta_res) * wet
        return green, residue, rough, theta, grass

    @staticmethod
    def air_dry(loc: Locations) -> np.ndarray:
        """Residual (air-dry) moisture: clay holds more; optics darken only above it."""
        return (0.03 + 0.08 * loc.soil.clay / 100.0)[:, None]

    # ---- Sentinel-2 ---------------------------------------------------------------------
    def scene_cloud_pct(self, band_lat: float, band_lon: float, sched: Schedule) -> np.ndarray:
        glat = (np.floor(band_lat / GRANULE_DEG) + 0.5) * GRANULE_DEG
        glon = (np.floor(band_lon / GRANULE_DEG) + 0.5) * GRANULE_DEG
        gx, gy = lonlat_to_km(np.array([glon]), np.array([glat]))
        cover = self.weather.cloud_cover(gx, gy, np.floor(sched.day).astype(np.int64))[0]
        return (100.0 * cover).astype(np.float32)

    def s2(self, loc: Locations, sched: Schedule, with_state: bool = False) -> dict:
        """S2 L2A at locations (n,) for the schedule (T,): 'refl' int16 (n, T, 10), 'scl' uint8
        (n, T), and with_state the hidden truth per observation."""
        n, T = len(loc), len(sched.day)
        refl = np.empty((n, T, len(bands.S2_BANDS)), np.int16)
        scl = np.empty((n, T), np.uint8)
        keep = {k: np.empty((n, T), np.float32) for k in ("moisture", "roughness", "green", "residue")}
        flags = {k: np.empty((n, T), bool) for k in ("cloud", "snow")}
        step = _date_chunk(n)
        for lo in range(0, T, step):
            sl = slice(lo, min(T, lo + step))
            out = self._s2_block(loc, sched.day[sl], sched.acq[sl])
            refl[:, sl], scl[:, sl] = out["refl"], out["scl"]
            if with_state:
                for k in keep:
                    keep[k][:, sl] = out[k]
                for k in flags:
                    flags[k][:, sl] = out[k]
        result = {"refl": refl, "scl": scl}
        if with_state:
            result.update(keep)
            result.update(flags)
        return result

    def _s2_block(self, loc: Locations, day: np.ndarray, acq: np.ndarray) -> dict:
        s = self.seed
        green, residue, rough, theta, _ = self.surface(loc, day)
        theta = np.clip(theta + 0.012 * noise.normal(s, 81, loc.ix[:, None], loc.iy[:, None], acq[None, :]),
                        0.01, 0.5)
        sza = optics.sun_zenith_deg(loc.lat[:, None], day[None, :])
        soil = optics.moist_soil(loc.dry[:, None, :], theta - self.air_dry(loc)) * optics.roughness_shading(rough, sza)[..., None]
        surface = optics.mix(soil, green, residue)
        # Clouds: regional cover, pixel texture; undetected thin edges and shadows beside them.
        dayi = np.floor(day).astype(np.int64)
        cover = self.weather.cloud_cover(loc.x_km, loc.y_km, dayi)
        tex = self.weather.cloud_texture(loc.x_km, loc.y_km, dayi)
        cloud = tex < cover
        detected = tex < 0.96 * cover
        shadow = ~cloud & (tex < 1.2 * cover) & (cover > 0.02)
        cirrus = ~cloud & ~shadow & (self.weather.cloud_texture(loc.x_km, loc.y_km, dayi, 33) < 0.25 * cover)
        glat = (np.floor(loc.lat / GRANULE_DEG) + 0.5)[:, None]
        glon = np.floor(loc.lon / GRANULE_DEG)[:, None]
        snow = self.weather.snow(loc.lat, dayi[None, :],
                                 noise.uniform(s, 35, np.round(glat * 10), glon, dayi[None, :]))
        opacity = np.where(detected, 0.75 + 0.25 * noise.uniform(s, 82, loc.ix[:, None], loc.iy[:, None], acq), 0.25)
        r = np.where(cloud[..., None], (1 - opacity[..., None]) * surface + opacity[..., None] * optics.CLOUD, surface)
        r = np.where(shadow[..., None], r * 0.4, r)
        r = np.where(cirrus[..., None], r + 0.03, r)
        r = np.where(snow[..., None], optics.SNOW, r)
        # Sensor and residual-atmosphere noise.
        key = (loc.ix[:, None, None], loc.iy[:, None, None], acq[None, :, None], np.arange(10)[None, None, :])
        atmos = 1.0 + 0.01 * noise.normal(s, 83, np.floor(loc.lon)[:, None, None], acq[None, :, None])
        r = r * atmos * (1.0 + 0.012 * noise.normal(s, 84, *key)) + 0.002 * noise.normal(s, 85, *key)
        refl = np.clip(np.round(r * bands.S2_SCALE), 1, 32767).astype(np.int16)
        vegetated = optics.ndvi(r) > 0.4
        scl = np.select([snow, cloud & detected & (tex < 0.6 * cover), cloud & detected, shadow, cirrus, vegetated],
                        [bands.SCL_SNOW, bands.SCL_CLOUD_HIGH, bands.SCL_CLOUD_MEDIUM, bands.SCL_CLOUD_SHADOW,
                         bands.SCL_CIRRUS, bands.SCL_VEGETATION], bands.SCL_NOT_VEGETATED).astype(np.uint8)
        return {"refl": refl, "scl": scl, "moisture": theta, "roughness": rough, "green": green,
                "residue": residue, "cloud": cloud, "snow": snow}

    # ---- Sentinel-1 ---------------------------------------------------------------------
    def s1(self, loc: Locations, sched: Schedule, with_state: bool = False) -> dict:
        """S1 GRD IW at locations (n,) for the schedule (T,): 'vv', 'vh' float32 dB (n, T)."""
        n, T = len(loc), len(sched.day)
        out = {k: np.empty((n, T), np.float32) for k in ("vv", "vh", "moisture", "roughness", "green")}
        step = _date_chunk(n)
        for lo in range(0, T, step):
            sl = slice(lo, min(T, lo + step))
            day, acq = sched.day[sl], sched.acq[sl]
            green, _, rough, theta, _ = self.surface(loc, day)
            theta = np.clip(theta + 0.012 * noise.normal(self.seed, 91, loc.ix[:, None], loc.iy[:, None], acq[None, :]),
                            0.01, 0.5)
            eps = radar.dielectric_constant(theta, loc.soil.sand[:, None], loc.soil.clay[:, None])
            vv, vh = radar.bare_soil_sigma0(eps, rough, sched.angle)
            veg_water = 4.0 * green
            vv = radar.water_cloud(vv, veg_water, sched.angle, "VV")
            vh = radar.water_cloud(vh, veg_water, sched.angle, "VH")
            key = (loc.ix[:, None], loc.iy[:, None], acq[None, :])
            vv = vv * noise.gamma_unit_mean(radar.LOOKS, self.seed, 92, *key)
            vh = vh * noise.gamma_unit_mean(radar.LOOKS, self.seed, 93, *key)
            out["vv"][:, sl], out["vh"][:, sl] = radar.to_db(vv), radar.to_db(vh)
            out["moisture"][:, sl], out["roughness"][:, sl], out["green"][:, sl] = theta, rough, green
        if not with_state:
            for k in ("moisture", "roughness", "green"):
                out.pop(k)
        return out

    # ---- laboratory spectra --------------------------------------------------------------
    def lab_spectra(self, loc: Locations) -> np.ndarray:
        """Resampled laboratory spectra (dry, sieved; no moisture or roughness), (n, 10)."""
        key = (loc.ix[:, None], loc.iy[:, None], np.arange(10)[None, :])
        return optics.lab_spectrum(loc.dry) * (1.0 + 0.003 * noise.normal(self.seed, 95, *key))
