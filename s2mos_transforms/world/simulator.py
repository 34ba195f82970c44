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
from s2mos_transforms.world.land import (LandUse, fresh_roughness_table, parcel_keys, parcel_latitude,
                                        roughness_from, settling)
from s2mos_transforms.world.presets import Preset, lonlat_to_km
from s2mos_transforms.world.soil import SoilModel, SoilProperties
from s2mos_transforms.world.weather import (CLOUD_SPACING_KM, CLOUD_TEXTURE_KM, EPOCH, RAIN_SPACING_KM,
                                           Weather, synoptic_cells)

S2_REVISIT_DAYS = 5
S1_REVISIT_DAYS = 6
ORBIT_BAND_DEG = 3.0   # locations in one 3° longitude band share their acquisition schedule
GRANULE_DEG = 1.0      # S2 scene (granule) over which the cloud percentage is reported
# Dates are simulated in blocks of CHUNK_ELEMENTS // n (at least 4) for n locations, a memory
# bound only: a day's wetness bucket starts from a fixed yearly anchor (weather.wetness_anchor)
# and sees the crop years around it, so values never depend on the blocks (tested). Within a
# block, locations are simulated in groups of about PIXEL_GROUP_ELEMENTS (locations × dates), so
# band-sized arrays stay cache-sized.
CHUNK_ELEMENTS = 1 << 20
PIXEL_GROUP_ELEMENTS = 1 << 14


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
    site: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)  # see World._site

    def __len__(self) -> int:
        return len(self.lat)

    def take(self, index: np.ndarray) -> "Locations":
        """The locations at `index` (indices or a mask), without recomputing soil: tiles and
        point sets are split by orbit band this way. The per-site cache starts empty."""
        pick = lambda a: np.asarray(a)[index]  # noqa: E731
        soil = SoilProperties(**{f.name: pick(getattr(self.soil, f.name))
                                 for f in dataclasses.fields(SoilProperties)})
        return Locations(pick(self.lat), pick(self.lon), pick(self.epsg), pick(self.ix), pick(self.iy),
                         pick(self.x_km), pick(self.y_km), soil, pick(self.parcel), pick(self.dry))


@dataclasses.dataclass
class Schedule:
    times: np.ndarray        # datetime64[s] UTC
    acq: np.ndarray          # global acquisition number (noise key)
    day: np.ndarray          # fractional days since EPOCH
    angle: float = float("nan")


def _date_chunk(n_locations: int) -> int:
    return max(4, CHUNK_ELEMENTS // max(n_locations, 1))


def _groups(n_locations: int, n_dates: int):
    """Slices of locations simulated together within a block of n_dates."""
    size = max(1, PIXEL_GROUP_ELEMENTS // max(n_dates, 1))
    return [slice(lo, min(n_locations, lo + size)) for lo in range(0, n_locations, size)]


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

    # ---- per-location constants ----------------------------------------------------------
    def _site(self, loc: Locations) -> dict:
        """What does not change with the date, made once per set of locations: the parcels
        (distinct, and each location's), the weather lattices, granules and noise cells of the
        locations, and soil-only terms."""
        site = loc.site
        if site:
            return site
        parcels, where = np.unique(loc.parcel, return_inverse=True)
        site["parcels"], site["parcel_of"] = parcels, where.ravel()
        site["parcel_lat"] = parcel_latitude(parcels)
        site["rain"] = noise.Lattice(loc.x_km, loc.y_km, RAIN_SPACING_KM)
        site["cloud"] = noise.Lattice(loc.x_km, loc.y_km, CLOUD_SPACING_KM)
        site["texture"] = noise.Lattice(loc.x_km, loc.y_km, CLOUD_TEXTURE_KM)
        site["synoptic"] = synoptic_cells(loc.x_km, loc.y_km)
        glat = np.floor(loc.lat / GRANULE_DEG) + 0.5
        glon = np.floor(loc.lon / GRANULE_DEG)
        site["granule"] = noise.distinct(np.round(glat * 10), glon)
        site["lon_deg"] = noise.distinct(np.floor(loc.lon))
        site["fresh"] = fresh_roughness_table(loc.soil.clay)
        clay, sand = loc.soil.clay[:, None], loc.soil.sand[:, None]
        theta_res = self.air_dry(loc)
        theta_fc = 0.20 + 0.25 * clay / 100.0 - 0.05 * sand / 100.0
        site["theta_res"], site["theta_span"] = theta_res, theta_fc - theta_res
        return site

    # ---- the hidden surface state ------------------------------------------------------
    def _surface_context(self, loc: Locations, day: np.ndarray) -> dict:
        """Parcel- and lattice-level surface state for a block of days (m,)."""
        site = self._site(loc)
        state = self.land.surface(site["parcels"], site["parcel_lat"], day)
        return {"green": state.green, "residue": state.residue, "grass": state.grassland,
                "till_kind": state.till_kind, "settled": settling(state.till_age),
                "wet": self.weather.wetness_nodes(site["rain"], np.floor(day).astype(np.int64))}

    def _surface_rows(self, loc: Locations, ctx: dict, rows=slice(None)):
        """Green, residue, roughness, moisture (each (rows, m)) and grassland of locations `rows`."""
        site = self._site(loc)
        parcel = site["parcel_of"][rows]
        fresh = np.take_along_axis(site["fresh"][rows], ctx["till_kind"][parcel], axis=1)
        rough = roughness_from(fresh, ctx["settled"][parcel])
        wet = site["rain"].interpolate(ctx["wet"], rows)
        theta = site["theta_res"][rows] + site["theta_span"][rows] * wet
        return ctx["green"][parcel], ctx["residue"][parcel], rough, theta, ctx["grass"][parcel]

    def surface(self, loc: Locations, day: np.ndarray):
        """Green, residue, roughness and moisture at locations (n,) for days (m,), each (n, m)."""
        return self._surface_rows(loc, self._surface_context(loc, day))

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

    def s2(self, loc: Locations, sched: Schedule, with_state: bool = False, out: dict | None = None) -> dict:
        """S2 L2A at locations (n,) for the schedule (T,): 'refl' int16 (n, T, 10), 'scl' uint8
        (n, T), and with_state the hidden truth per observation. `out` may hold arrays (or
        views, any layout) of those shapes to write 'refl' and 'scl' into."""
        n, T = len(loc), len(sched.day)
        out = dict(out or {})
        refl = out.get("refl")
        refl = np.empty((n, T, len(bands.S2_BANDS)), np.int16) if refl is None else refl
        scl = out.get("scl")
        scl = np.empty((n, T), np.uint8) if scl is None else scl
        state = {}
        if with_state:
            state = {k: np.empty((n, T), np.float32) for k in ("moisture", "roughness", "green", "residue")}
            state.update({k: np.empty((n, T), bool) for k in ("cloud", "snow")})
        step = _date_chunk(n)
        for lo in range(0, T, step):
            sl = slice(lo, min(T, lo + step))
            self._s2_block(loc, sched.day[sl], sched.acq[sl], refl[:, sl], scl[:, sl],
                           {k: v[:, sl] for k, v in state.items()})
        return {"refl": refl, "scl": scl, **state}

    def _s2_block(self, loc: Locations, day: np.ndarray, acq: np.ndarray,
                  refl_out: np.ndarray, scl_out: np.ndarray, state_out: dict) -> None:
        """One block of dates (m,): regional state once, then the locations group by group,
        written into refl_out (n, m, 10), scl_out (n, m) and state_out's (n, m) arrays."""
        s = self.seed
        site = self._site(loc)
        dayi = np.floor(day).astype(np.int64)
        ground = self._surface_context(loc, day)
        sky = self.weather.sky(site["cloud"], site["synoptic"], dayi)
        texture = [self.weather.texture_nodes(site["texture"], dayi, stream) for stream in (32, 33)]
        (g_lat10, g_lon), g_where = site["granule"]
        snow_u = noise.uniform(s, 35, g_lat10[:, None], g_lon[:, None], dayi[None, :])
        (lon_deg,), lon_where = site["lon_deg"]
        atmos = 1.0 + 0.01 * noise.normal(s, 83, lon_deg[:, None], acq[None, :])
        band = np.arange(len(bands.S2_BANDS))[None, None, :]
        for g in _groups(len(loc), len(day)):
            green, residue, rough, theta, _ = self._surface_rows(loc, ground, g)
            pixel = (loc.ix[g, None], loc.iy[g, None])
            theta = np.clip(theta + 0.012 * noise.normal(s, 81, *pixel, acq[None, :]), 0.01, 0.5)
            sza = optics.sun_zenith_deg(loc.lat[g, None], day[None, :])
            soil = optics.moist_soil(loc.dry[g, None, :], theta - site["theta_res"][g]) \
                * optics.roughness_shading(rough, sza)[..., None]
            r = optics.mix(soil, green, residue)
            del soil
            # Clouds: regional cover, pixel texture; undetected thin edges and shadows beside them.
            cover = sky.cover(loc.y_km[g], g)
            tex = self.weather.texture_from(site["texture"].interpolate(texture[0], g))
            cloud = tex < cover
            detected = tex < 0.96 * cover
            shadow = ~cloud & (tex < 1.2 * cover) & (cover > 0.02)
            cirrus = ~cloud & ~shadow & (self.weather.texture_from(site["texture"].interpolate(texture[1], g))
                                         < 0.25 * cover)
            snow = self.weather.snow(loc.lat[g], dayi[None, :], snow_u[g_where[g]])
            op = np.where(detected, 0.75 + 0.25 * noise.uniform(s, 82, *pixel, acq), 0.25)[..., None]
            clouded = (1 - op) * r
            clouded += op * optics.CLOUD
            np.copyto(r, clouded, where=cloud[..., None])
            del clouded
            np.multiply(r, 0.4, out=r, where=shadow[..., None])
            np.add(r, 0.03, out=r, where=cirrus[..., None])
            np.copyto(r, optics.SNOW, where=snow[..., None])
            # Sensor and residual-atmosphere noise: r · atmos · (1 + 0.012 ε₁) + 0.002 ε₂.
            key = (loc.ix[g, None, None], loc.iy[g, None, None], acq[None, :, None])
            e1 = noise.normal_from_prefix(noise.hash_extend(noise.hash_prefix(s, 84, *key), band))
            e1 *= 0.012
            e1 += 1.0
            r *= atmos[lon_where[g]][..., None]
            r *= e1
            e2 = noise.normal_from_prefix(noise.hash_extend(noise.hash_prefix(s, 85, *key), band))
            e2 *= 0.002
            r += e2
            np.multiply(r, bands.S2_SCALE, out=e2)
            np.round(e2, out=e2)
            np.clip(e2, 1, 32767, out=e2)
            refl_out[g] = e2
            vegetated = optics.ndvi(r) > 0.4
            scl_out[g] = np.select(
                [snow, cloud & detected & (tex < 0.6 * cover), cloud & detected, shadow, cirrus, vegetated],
                [bands.SCL_SNOW, bands.SCL_CLOUD_HIGH, bands.SCL_CLOUD_MEDIUM, bands.SCL_CLOUD_SHADOW,
                 bands.SCL_CIRRUS, bands.SCL_VEGETATION], bands.SCL_NOT_VEGETATED)
            for k, v in (("moisture", theta), ("roughness", rough), ("green", green), ("residue", residue),
                         ("cloud", cloud), ("snow", snow)):
                if k in state_out:
                    state_out[k][g] = v

    # ---- Sentinel-1 ---------------------------------------------------------------------
    def s1(self, loc: Locations, sched: Schedule, with_state: bool = False, out: dict | None = None) -> dict:
        """S1 GRD IW at locations (n,) for the schedule (T,): 'vv', 'vh' float32 dB (n, T).
        `out` may hold arrays (or views) of that shape to write 'vv' and 'vh' into."""
        n, T = len(loc), len(sched.day)
        res = {k: (out or {}).get(k) for k in ("vv", "vh")}
        res = {k: np.empty((n, T), np.float32) if v is None else v for k, v in res.items()}
        if with_state:
            res.update({k: np.empty((n, T), np.float32) for k in ("moisture", "roughness", "green")})
        step = _date_chunk(n)
        for lo in range(0, T, step):
            sl = slice(lo, min(T, lo + step))
            day, acq = sched.day[sl], sched.acq[sl]
            ground = self._surface_context(loc, day)
            for g in _groups(n, len(day)):
                green, _, rough, theta, _ = self._surface_rows(loc, ground, g)
                key = (loc.ix[g, None], loc.iy[g, None], acq[None, :])
                theta = np.clip(theta + 0.012 * noise.normal(self.seed, 91, *key), 0.01, 0.5)
                eps = radar.dielectric_constant(theta, loc.soil.sand[g, None], loc.soil.clay[g, None])
                vv, vh = radar.bare_soil_sigma0(eps, rough, sched.angle)
                veg_water = 4.0 * green
                vv = radar.water_cloud(vv, veg_water, sched.angle, "VV")
                vh = radar.water_cloud(vh, veg_water, sched.angle, "VH")
                vv = vv * noise.gamma_unit_mean(radar.LOOKS, self.seed, 92, *key)
                vh = vh * noise.gamma_unit_mean(radar.LOOKS, self.seed, 93, *key)
                res["vv"][g, sl], res["vh"][g, sl] = radar.to_db(vv), radar.to_db(vh)
                if with_state:
                    res["moisture"][g, sl], res["roughness"][g, sl], res["green"][g, sl] = theta, rough, green
        return res

    # ---- laboratory spectra --------------------------------------------------------------
    def lab_spectra(self, loc: Locations) -> np.ndarray:
        """Resampled laboratory spectra (dry, sieved; no moisture or roughness), (n, 10)."""
        key = (loc.ix[:, None], loc.iy[:, None], np.arange(10)[None, :])
        return optics.lab_spectrum(loc.dry) * (1.0 + 0.003 * noise.normal(self.seed, 95, *key))
