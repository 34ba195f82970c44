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
from s2mos_transforms.world.clouds import clouds_and_scl, scl_detection
from s2mos_transforms.world import physics_params as P
from s2mos_transforms.world.land import (ROUGHNESS_SETTLED_CM, LandUse, fresh_excess_cm,
                                        parcel_centre_km, parcel_keys, parcel_latitude)
from s2mos_transforms.world.presets import Preset, lonlat_to_km
from s2mos_transforms.world.soil import SoilModel, SoilProperties, hydraulics
from s2mos_transforms.world.weather import (CLOUD_SPACING_KM, CLOUD_TEXTURE_KM, DEEP_FAST, EPOCH,
                                           RAIN_SPACING_KM, SKIN_FAST, Weather, synoptic_cells)

S2_REVISIT_DAYS = 5
S1_REVISIT_DAYS = P.S1_ORBIT_REVISIT_DAYS   # per relative orbit; a site has 2–4 of them
ORBIT_BAND_DEG = 3.0   # locations in one 3° longitude band share their acquisition schedule
GRANULE_DEG = 1.0      # S2 scene (granule) over which the cloud percentage is reported
# Dates are simulated in blocks of CHUNK_ELEMENTS // n (at least 4) for n locations, a memory
# bound only: a day's moisture reservoirs start from a fixed yearly anchor (weather.wetness_anchor)
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
    angle: np.ndarray | float = float("nan")   # S1: incidence angle (deg) of each acquisition

    def __getitem__(self, sl) -> "Schedule":
        """The acquisitions `sl` (a slice or index) of this schedule."""
        angle = self.angle[sl] if np.ndim(self.angle) else self.angle
        return Schedule(self.times[sl], self.acq[sl], self.day[sl], angle)


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
                  start: str | None, end: str | None, orbit: int | None = None,
                  phase: int | None = None) -> Schedule:
        lo, hi = self._days(start, end)
        key = (band,) if orbit is None else (band, orbit)
        if phase is None:
            phase = int(noise.hash_keys(self.seed, stream, *key) % np.uint64(revisit))
        lon_centre = (band + 0.5) * ORBIT_BAND_DEG - 180.0
        hour = (local_hour - lon_centre / 15.0) % 24.0
        k = np.arange(np.ceil((lo - phase - hour / 24) / revisit), np.floor((hi - phase) / revisit) + 1)
        acq = k.astype(np.int64)
        jitter_min = 4.0 * noise.normal(self.seed, stream + 1, *key, acq)
        day = phase + revisit * acq + (hour + jitter_min / 60.0) / 24.0
        keep = (day >= lo) & (day < hi)
        day, acq = day[keep], acq[keep]
        times = EPOCH + np.round(day * 86400.0).astype("timedelta64[s]")
        return Schedule(times, acq, day)

    def s2_schedule(self, band: int, start=None, end=None) -> Schedule:
        return self._schedule(band, S2_REVISIT_DAYS, 71, 10.5, start, end)

    def s1_orbits(self, band: int) -> list[tuple[bool, float, float, int]]:
        """The relative orbits that see an orbit band: (ascending, incidence angle (deg), local
        hour, phase (day of the repeat cycle)) each; 2–4 of them, both directions, angles
        spread across the IW swath, two orbits of one direction 2–4 days apart."""
        s = self.seed
        n = P.S1_ORBITS_MIN + int(noise.uniform(s, 76, band) * (P.S1_ORBITS_MAX - P.S1_ORBITS_MIN + 1))
        first_up = noise.uniform(s, 73, band) < 0.5
        u0, (lo, hi) = noise.uniform(s, 74, band), P.S1_INCIDENCE_DEG
        orbits = []
        for k in range(n):
            up = first_up == (k % 2 == 0)
            angle = lo + (hi - lo) * ((u0 + 0.618034 * k) % 1.0)
            hour = (18.1 if up else 6.1) + 0.4 * (noise.uniform(s, 77, band, k) - 0.5)
            base = int(noise.hash_keys(s, 75, band, int(up)) % np.uint64(S1_REVISIT_DAYS))
            step = 2 + int(noise.hash_keys(s, 78, band, int(up)) % np.uint64(3))
            orbits.append((bool(up), float(angle), float(hour), (base + (k // 2) * step) % S1_REVISIT_DAYS))
        return orbits

    def s1_schedule(self, band: int, start=None, end=None) -> Schedule:
        """Every S1 acquisition over an orbit band: each relative orbit every
        S1_REVISIT_DAYS at its own phase, time and incidence angle, merged in time order.
        Acquisition keys are orbit-distinct (cycle · 8 + orbit)."""
        parts = []
        for k, (_, angle, hour, phase) in enumerate(self.s1_orbits(band)):
            sc = self._schedule(band, S1_REVISIT_DAYS, 75, hour, start, end, orbit=k, phase=phase)
            parts.append(Schedule(sc.times, sc.acq * 8 + k, sc.day, np.full(len(sc.day), angle, np.float32)))
        times = np.concatenate([p.times for p in parts])
        order = np.argsort(times, kind="stable")
        return Schedule(times[order], np.concatenate([p.acq for p in parts])[order],
                        np.concatenate([p.day for p in parts])[order],
                        np.concatenate([p.angle for p in parts])[order])

    # ---- per-location constants ----------------------------------------------------------
    def _site(self, loc: Locations) -> dict:
        """What does not change with the date, made once per set of locations: the parcels
        (distinct, each location's, and where their rain falls), the weather lattices,
        granules and noise cells of the locations, and soil-only terms (hydraulics)."""
        site = loc.site
        if site:
            return site
        parcels, where = np.unique(loc.parcel, return_inverse=True)
        site["parcels"], site["parcel_of"] = parcels, where.ravel()
        site["parcel_lat"] = parcel_latitude(parcels)
        site["parcel_rain"] = noise.Lattice(*parcel_centre_km(parcels, self.seed), RAIN_SPACING_KM)
        site["rain"] = noise.Lattice(loc.x_km, loc.y_km, RAIN_SPACING_KM)
        site["layer_runs"] = {}      # the moisture reservoirs' yearly runs, shared by all dates
        site["rain_sums"] = {}       # cumulative rain at the parcels' nodes, shared by all dates
        site["cloud"] = noise.Lattice(loc.x_km, loc.y_km, CLOUD_SPACING_KM)
        site["texture"] = noise.Lattice(loc.x_km, loc.y_km, CLOUD_TEXTURE_KM)
        site["synoptic"] = synoptic_cells(loc.x_km, loc.y_km)
        glat = np.floor(loc.lat / GRANULE_DEG) + 0.5
        glon = np.floor(loc.lon / GRANULE_DEG)
        site["granule"] = noise.distinct(np.round(glat * 10), glon)
        site["lon_deg"] = noise.distinct(np.floor(loc.lon))
        site.update(hydraulics(loc.soil))
        return site

    # ---- the hidden surface state ------------------------------------------------------
    def _surface_context(self, loc: Locations, day: np.ndarray) -> dict:
        """Parcel- and lattice-level surface state for a block of fractional days (m,)."""
        site = self._site(loc)
        state = self.land.surface(site["parcels"], site["parcel_lat"], day)
        rain = self.weather.rain_since(site["parcel_rain"], day[None, :] - state.till_age, day, site["rain_sums"])
        return {"green": state.green, "residue": state.residue, "grass": state.grassland,
                "till_kind": state.till_kind, "time_settled": np.exp(-state.till_age / P.ROUGH_TIME_DAYS),
                "rain": rain,
                "layers": np.moveaxis(self.weather.layers_nodes(site["rain"], day, site["layer_runs"]), 0, 1)}

    def _surface_rows(self, loc: Locations, ctx: dict, rows=slice(None), skin: bool = True) -> dict:
        """The surface of locations `rows`, each (rows, m): green, residue, roughness (cm), the
        wetness of the C-band layer and, with skin, of the optical skin (0 air-dry … 1
        saturated) and the crust (0–1); and grassland."""
        site = self._site(loc)
        parcel = site["parcel_of"][rows]
        rain = ctx["rain"][parcel]
        rough = fresh_excess_cm(ctx["till_kind"][parcel], loc.soil.clay[rows, None])
        rough *= np.exp(-rain * site["rough_rate"][rows])
        rough *= ctx["time_settled"][parcel]
        rough += ROUGHNESS_SETTLED_CM
        f = site["texture_f"][rows]
        pick = slice(None) if skin else slice(DEEP_FAST, DEEP_FAST + 2)
        lay = site["rain"].interpolate(ctx["layers"][:, pick], rows)          # (rows, L, m)
        deep = lay[:, -2] + f * (lay[:, -1] - lay[:, -2])
        out = {"green": ctx["green"][parcel], "residue": ctx["residue"][parcel], "roughness": rough,
               "deep": deep, "grass": ctx["grass"][parcel]}
        if skin:       # the optical surface: crust and skin (radar needs neither)
            out["crust"] = site["crust_sus"][rows] * (1.0 - np.exp(-rain / P.CRUST_RAIN_MM))
            out["skin"] = np.maximum(lay[:, SKIN_FAST] + f * (lay[:, SKIN_FAST + 1] - lay[:, SKIN_FAST]),
                                     P.SKIN_FROM_DEEP * deep)
        return out

    def surface(self, loc: Locations, day: np.ndarray) -> dict:
        """The surface (`_surface_rows`) at locations (n,) for fractional days (m,)."""
        return self._surface_rows(loc, self._surface_context(loc, np.asarray(day, np.float64)))

    # ---- Sentinel-2 ---------------------------------------------------------------------
    def scene_cloud_pct(self, band_lat: float, band_lon: float, sched: Schedule) -> np.ndarray:
        glat = (np.floor(band_lat / GRANULE_DEG) + 0.5) * GRANULE_DEG
        glon = (np.floor(band_lon / GRANULE_DEG) + 0.5) * GRANULE_DEG
        gx, gy = lonlat_to_km(np.array([glon]), np.array([glat]))
        cover = self.weather.cloud_cover(gx, gy, np.floor(sched.day).astype(np.int64))[0]
        return (100.0 * cover).astype(np.float32)

    def s2(self, loc: Locations, sched: Schedule, with_state: bool = False, out: dict | None = None,
           extra: tuple[str, ...] = ()) -> dict:
        """S2 L2A at locations (n,) for the schedule (T,): 'refl' int16 (n, T, 10), 'scl' uint8
        (n, T), and with_state the hidden truth per observation ('cloud': obstructed by cloud,
        its shadow or cirrus, whatever the SCL says). `out` may hold arrays (or views, any
        layout) of those shapes to write 'refl' and 'scl' into."""
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
        # Hidden truth beyond the exported state (tests, docs): shadow, cirrus (bool), crust, skin, deep.
        state.update({k: np.empty((n, T), bool if k in ("shadow", "cirrus") else np.float32) for k in extra})
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
        # Sen2Cor's detection draws, one per (CloudSEN12-sized patch, acquisition), shared by its pixels.
        patch, patch_where = noise.distinct(loc.epsg, loc.ix // P.SCL_PATCH_PX, loc.iy // P.SCL_PATCH_PX)
        u_scl_cloud = noise.uniform(s, 36, *(k[:, None] for k in patch), acq[None, :])
        u_scl_shadow = noise.uniform(s, 37, *(k[:, None] for k in patch), acq[None, :])
        (lon_deg,), lon_where = site["lon_deg"]
        atmos = 1.0 + 0.01 * noise.normal(s, 83, lon_deg[:, None], acq[None, :])
        band = np.arange(len(bands.S2_BANDS))[None, None, :]
        for g in _groups(len(loc), len(day)):
            sf = self._surface_rows(loc, ground, g)
            pixel = (loc.ix[g, None], loc.iy[g, None])
            air, span = site["air_dry"][g], site["porosity"][g] - site["air_dry"][g]
            wet = np.clip(sf["skin"] * (1.0 + P.WETNESS_REL_SD * noise.logistic(s, 81, *pixel, acq[None, :])), 0.0, 1.0)
            theta = air + span * wet
            sza = optics.sun_zenith_deg(loc.lat[g, None], day[None, :])
            soil = optics.moist_soil(loc.dry[g, None, :], wet)
            soil *= (optics.roughness_shading(sf["roughness"], sza) * optics.crust_brightening(sf["crust"]))[..., None]
            r = optics.mix(soil, sf["green"], sf["residue"])
            del soil
            cover = sky.cover(loc.y_km[g], g)
            tex = self.weather.texture_from(site["texture"].interpolate(texture[0], g))
            tex2 = self.weather.texture_from(site["texture"].interpolate(texture[1], g))
            detect, detect_shadow = scl_detection(cover, u_scl_cloud[patch_where[g]], u_scl_shadow[patch_where[g]])
            sc = clouds_and_scl(r, cover, tex, tex2, noise.uniform(s, 82, *pixel, acq), detect, detect_shadow)
            del detect, detect_shadow
            snow = self.weather.snow(loc.lat[g], dayi[None, :], snow_u[g_where[g]])
            np.copyto(r, optics.SNOW, where=snow[..., None])
            # Sensor and residual-atmosphere noise: r · atmos · (1 + 0.012 ε₁) + 0.002 ε₂, ε₁ and
            # ε₂ the two normals of one Box–Muller pair.
            key = (loc.ix[g, None, None], loc.iy[g, None, None], acq[None, :, None])
            e1, e2 = noise.normal_pair(noise.hash_extend(noise.hash_prefix(s, 84, *key), band))
            e1 *= 0.012
            e1 += 1.0
            r *= atmos[lon_where[g]][..., None]
            r *= e1
            e2 *= 0.002
            r += e2
            np.multiply(r, bands.S2_SCALE, out=e2)
            np.round(e2, out=e2)
            np.clip(e2, 1, 32767, out=e2)
            refl_out[g] = e2
            vegetated = optics.ndvi(r) > 0.4
            scl_out[g] = np.select(
                [snow, sc["flag_high"], sc["flag_medium"], sc["flag_shadow"], sc["flag_cirrus"], vegetated],
                [bands.SCL_SNOW, bands.SCL_CLOUD_HIGH, bands.SCL_CLOUD_MEDIUM, bands.SCL_CLOUD_SHADOW,
                 bands.SCL_CIRRUS, bands.SCL_VEGETATION], bands.SCL_NOT_VEGETATED)
            values = {"moisture": theta, "roughness": sf["roughness"], "green": sf["green"],
                      "residue": sf["residue"], "cloud": sc["cloud"] | sc["shadow"] | sc["cirrus"], "snow": snow, "shadow": sc["shadow"],
                      "cirrus": sc["cirrus"], "crust": sf["crust"], "skin": sf["skin"], "deep": sf["deep"]}
            for k, v in values.items():
                if k in state_out:
                    state_out[k][g] = v

    # ---- Sentinel-1 ---------------------------------------------------------------------
    def s1(self, loc: Locations, sched: Schedule, with_state: bool = False, out: dict | None = None) -> dict:
        """S1 GRD IW at locations (n,) for the schedule (T,): 'vv', 'vh' float32 dB (n, T),
        each acquisition at its own incidence angle (sched.angle). `out` may hold arrays (or
        views) of that shape to write 'vv' and 'vh' into. The state's moisture is that of the
        few-cm layer C band senses."""
        n, T = len(loc), len(sched.day)
        res = {k: (out or {}).get(k) for k in ("vv", "vh")}
        res = {k: np.empty((n, T), np.float32) if v is None else v for k, v in res.items()}
        if with_state:
            res.update({k: np.empty((n, T), np.float32) for k in ("moisture", "roughness", "green")})
        site = self._site(loc)
        angle = np.broadcast_to(np.asarray(sched.angle, np.float64), (T,))
        step = _date_chunk(n)
        for lo in range(0, T, step):
            sl = slice(lo, min(T, lo + step))
            day, acq, theta_deg = sched.day[sl], sched.acq[sl], angle[sl][None, :]
            ground = self._surface_context(loc, day)
            # Vegetation (water-cloud model) is per parcel: its attenuation and volume term once
            # per (parcel, date), not per pixel.
            veg = {pol: radar.water_cloud_terms(4.0 * ground["green"], theta_deg, pol) for pol in ("VV", "VH")}
            for g in _groups(n, len(day)):
                sf = self._surface_rows(loc, ground, g, skin=False)
                parcel = site["parcel_of"][g]
                key = (loc.ix[g, None], loc.iy[g, None], acq[None, :])
                wilt = site["wilting"][g]
                wet = sf["deep"] * (1.0 + P.WETNESS_REL_SD * noise.logistic(self.seed, 91, *key))
                theta = wilt + (site["porosity"][g] - wilt) * np.clip(wet, 0.0, 1.0)
                eps = radar.dielectric_constant(theta, loc.soil.sand[g, None], loc.soil.clay[g, None])
                vv, vh = radar.bare_soil_sigma0(eps, sf["roughness"], theta_deg)
                k_vv, k_vh = noise.gamma_pair(radar.LOOKS, self.seed, 92, *key)
                for name, sigma, k in (("vv", vv, k_vv), ("vh", vh, k_vh)):
                    tau2, volume = veg[name.upper()]
                    sigma *= tau2[parcel]
                    sigma += volume[parcel]
                    sigma *= k
                    res[name][g, sl] = radar.to_db(sigma)
                if with_state:
                    res["moisture"][g, sl], res["roughness"][g, sl] = theta, sf["roughness"]
                    res["green"][g, sl] = sf["green"]
        return res

    # ---- laboratory spectra --------------------------------------------------------------
    def lab_spectra(self, loc: Locations) -> np.ndarray:
        """Resampled laboratory spectra (dry, sieved; no moisture or roughness), (n, 10)."""
        key = (loc.ix[:, None], loc.iy[:, None], np.arange(10)[None, :])
        return optics.lab_spectrum(loc.dry, noise.normal(self.seed, 96, loc.ix, loc.iy),
                                   noise.normal(self.seed, 95, *key))
