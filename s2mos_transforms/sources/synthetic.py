"""`synthetic`: the embedded world as a Source (points and map tiles, one implementation)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile
from s2mos_transforms.maps.plan import CORE_SECONDS_PER_PIXEL
from s2mos_transforms.sources.base import (POINTS, S2_NODATA, TILES, UTC_DTYPE, ImageStack, SamplePoint, StackNeeds,
                                           SourceError, SourcePlugin, utc_times)
from s2mos_transforms.world import simulator
from s2mos_transforms.world.presets import get_preset
from s2mos_transforms.world.simulator import GRANULE_DEG, Locations, Schedule, World, orbit_band

STATE_COLUMNS = ("point_id", "sensor", "datetime", "moisture", "roughness", "green", "residue", "cloud", "snow")


class SyntheticSource:
    """The simulated, seeded Sentinel world (README, "The embedded world"). Same seed, same bytes."""

    name = "synthetic"

    def __init__(self, preset: str = "quick", seed: int | None = None):
        self.preset = get_preset(preset)
        self.world = World(self.preset, seed)
        self.seed = self.world.seed

    # ---- coverage and samples ----------------------------------------------------------
    def covers(self, lat, lon) -> np.ndarray:
        return self.preset.covers(lat, lon)

    def sample_points(self, n: int | None = None, within_aoi: bool = False) -> pd.DataFrame:
        """Soil samples like LUCAS: uniform over the extent (or the map AOI), clay measured in
        the laboratory (truth + 1 % analytical error), sand and SOC."""
        n = self.preset.n_points if n is None else int(n)
        rng = np.random.default_rng([self.seed, 7, int(within_aoi)])
        if within_aoi:
            w, s, e, nn = self.preset.aoi_bbox
            lat, lon = rng.uniform(s, nn, n), rng.uniform(w, e, n)
        else:
            lat = rng.uniform(*self.preset.lat_range, n)
            lon = rng.uniform(*self.preset.lon_range, n)
        loc = self.world.locate_points(lat, lon)
        clay = np.clip(loc.soil.clay + rng.normal(0.0, 1.0, n), 0.5, 100.0)
        prefix = "A" if within_aoi else "P"
        return pd.DataFrame({
            "point_id": [f"{prefix}{i:05d}" for i in range(1, n + 1)],
            "lat": np.round(loc.lat, 7), "lon": np.round(loc.lon, 7),
            "clay": np.round(clay, 1), "sand": np.round(loc.soil.sand, 1), "soc": np.round(loc.soil.soc, 1),
        })

    # ---- points --------------------------------------------------------------------------
    def observations(self, points: Sequence[SamplePoint]) -> pd.DataFrame:
        return self.observations_and_state(points, with_state=False)[0]

    def observations_and_state(self, points: Sequence[SamplePoint], with_state: bool = True,
                               start: str | None = None, end: str | None = None):
        """Long observation table (bands.OBS_COLUMNS) and, with_state, the hidden truth per row."""
        if not len(points):
            return _empty_obs(), (empty_state() if with_state else None)
        lat = np.array([p.lat for p in points], float)
        lon = np.array([p.lon for p in points], float)
        outside = ~self.covers(lat, lon)
        if outside.any():
            bad = points[int(np.argmax(outside))]
            raise SourceError(f"point {bad.point_id} ({bad.lat}, {bad.lon}) is outside the "
                              f"'{self.preset.name}' world")
        ids = np.array([p.point_id for p in points], dtype=object)
        obs_parts, state_parts = [], []
        loc = self.world.locate_points(lat, lon)
        band = orbit_band(loc.lon)                 # the snapped pixel's band: a point = its pixel
        for b in np.unique(band):
            sel = np.flatnonzero(band == b)
            o, s = self._point_rows(ids[sel], loc.take(sel), int(b), with_state, start, end)
            obs_parts += o
            state_parts += s
        obs = pd.concat(obs_parts, ignore_index=True)
        when = obs["datetime"].dt.tz_convert(None).to_numpy()        # datetime64, not Timestamps
        order = np.lexsort((obs["sensor"].to_numpy(), when,
                            pd.Categorical(obs["point_id"], categories=list(dict.fromkeys(ids))).codes))
        obs = obs.iloc[order].reset_index(drop=True)
        state = pd.concat(state_parts, ignore_index=True).iloc[order].reset_index(drop=True) if with_state else None
        return obs, state

    def _point_rows(self, ids, loc: Locations, band: int, with_state: bool, start, end):
        n = len(loc)
        s2s, s1s = self.world.s2_schedule(band, start, end), self.world.s1_schedule(band, start, end)
        s2 = self.world.s2(loc, s2s, with_state)
        s1 = self.world.s1(loc, s1s, with_state)
        t2, t1 = len(s2s.times), len(s1s.times)
        cloud_pct = np.empty((n, t2), np.float32)
        for rows, pct in self._granule_clouds(loc.lat, loc.lon, s2s):
            cloud_pct[rows] = pct
        s2_frame = {"point_id": np.repeat(ids, t2), "sensor": bands.SENSOR_S2,
                    "datetime": np.tile(s2s.times, n), "scene_cloud_pct": cloud_pct.ravel()}
        refl = s2["refl"].reshape(n * t2, -1)
        for i, name in enumerate(bands.S2_BANDS):
            s2_frame[name] = pd.array(refl[:, i], dtype="Int16")
        s2_frame["SCL"] = pd.array(s2["scl"].ravel(), dtype="UInt8")
        s2_frame.update({"VV": np.nan, "VH": np.nan, "angle": np.nan})
        s1_frame = {"point_id": np.repeat(ids, t1), "sensor": bands.SENSOR_S1,
                    "datetime": np.tile(s1s.times, n), "scene_cloud_pct": np.nan}
        for name in bands.S2_BANDS:       # all missing, built without a Python list per row
            s1_frame[name] = pd.arrays.IntegerArray(np.zeros(n * t1, np.int16), np.ones(n * t1, bool))
        s1_frame["SCL"] = pd.arrays.IntegerArray(np.zeros(n * t1, np.uint8), np.ones(n * t1, bool))
        s1_frame.update({"VV": s1["vv"].ravel(), "VH": s1["vh"].ravel(), "angle": np.tile(np.asarray(s1s.angle, np.float32), n)})
        frames = [_typed(pd.DataFrame(s2_frame)), _typed(pd.DataFrame(s1_frame))]
        states = []
        if with_state:
            states.append(_typed_state(pd.DataFrame({
                "point_id": np.repeat(ids, t2), "sensor": bands.SENSOR_S2, "datetime": np.tile(s2s.times, n),
                "moisture": s2["moisture"].ravel(), "roughness": s2["roughness"].ravel(),
                "green": s2["green"].ravel(), "residue": s2["residue"].ravel(),
                "cloud": s2["cloud"].ravel(), "snow": s2["snow"].ravel()})))
            states.append(_typed_state(pd.DataFrame({
                "point_id": np.repeat(ids, t1), "sensor": bands.SENSOR_S1, "datetime": np.tile(s1s.times, n),
                "moisture": s1["moisture"].ravel(), "roughness": s1["roughness"].ravel(),
                "green": s1["green"].ravel(), "residue": np.float32(np.nan), "cloud": False, "snow": False})))
        return frames, states

    def lab_spectra(self, samples: pd.DataFrame) -> pd.DataFrame:
        loc = self.world.locate_points(samples["lat"].to_numpy(float), samples["lon"].to_numpy(float))
        lab = self.world.lab_spectra(loc)
        out = pd.DataFrame(np.round(lab, 4), columns=list(bands.S2_BANDS))
        out.insert(0, "point_id", samples["point_id"].to_numpy())
        return out

    # ---- scene cloud ---------------------------------------------------------------------
    def _granule_clouds(self, lat: np.ndarray, lon: np.ndarray, s2s: Schedule):
        """(locations of one granule, its scene cloud % per S2 date (T,)) for each granule
        of the locations: the S2 scene-cloud percentage is per 1° granule (`GRANULE_DEG`)."""
        gi, gj = np.floor(np.asarray(lat) / GRANULE_DEG), np.floor(np.asarray(lon) / GRANULE_DEG)
        keys, where = np.unique(np.stack([gi, gj], 1), axis=0, return_inverse=True)
        where = where.ravel()
        for k, (a, o) in enumerate(keys):
            pct = self.world.scene_cloud_pct((a + 0.5) * GRANULE_DEG, (o + 0.5) * GRANULE_DEG, s2s)
            yield np.flatnonzero(where == k), pct

    # ---- tiles ---------------------------------------------------------------------------
    def tile_stack(self, tile: Tile, start: str | None = None, end: str | None = None,
                   needs: StackNeeds | None = None) -> ImageStack:
        """The `ImageStack` of a tile: the union of the acquisitions of every orbit band that
        touches it, each pixel simulated on its own band's schedule (nodata elsewhere) and
        given its own granule's scene cloud, so every pixel equals the point fan-out there.
        With `needs`, the scenes the scene filter drops and the S1 dates that then cannot pair
        are not simulated (every value depends on its location and date only, so the rest
        is the same)."""
        lons, lats = tile.pixel_centres_lonlat()
        if not self.covers(lats, lons).any():
            raise SourceError(f"tile {tile.name} is outside the '{self.preset.name}' world")
        loc = self.world.locate_tile(tile)
        band = orbit_band(loc.lon)
        groups = {int(b): np.flatnonzero(band == b) for b in np.unique(band)}
        s2_sched = {b: self.world.s2_schedule(b, start, end) for b in groups}
        s1_sched = {b: self.world.s1_schedule(b, start, end) for b in groups}
        clouds = {b: list(self._granule_clouds(loc.lat[px], loc.lon[px], s2_sched[b])) for b, px in groups.items()}
        if needs is not None:
            for b in groups:
                kept = np.flatnonzero(needs.scenes(np.stack([pct for _, pct in clouds[b]], 1)))
                s2_sched[b] = s2_sched[b][kept]
                s1_sched[b] = s1_sched[b][np.flatnonzero(needs.s1_dates(s2_sched[b].times, s1_sched[b].times))]
                clouds[b] = [(rows, pct[kept]) for rows, pct in clouds[b]]
        s2_times, s2_slots = _union_slots(s2_sched)
        s1_times, s1_slots = _union_slots(s1_sched)
        h = w = tile.size
        n, t2, t1 = h * w, len(s2_times), len(s1_times)
        nb = len(bands.S2_BANDS)
        if len(groups) == 1:
            # One band: its schedule is the stack's; the simulator writes (pixel, date, …) values
            # straight into the (date, …, row, col) arrays through transposed views, no copy.
            (b,) = groups
            s2 = np.empty((t2, nb, h, w), np.int16)
            scl = np.empty((t2, h, w), np.uint8)
            s1 = np.empty((t1, 2, h, w), np.float32)
            self.world.s2(loc, s2_sched[b], out={"refl": _pixels_first(s2, n), "scl": _pixels_first(scl, n)})
            self.world.s1(loc, s1_sched[b], out={"vv": _pixels_first(s1[:, 0], n), "vh": _pixels_first(s1[:, 1], n)})
        else:
            s2 = np.full((t2, nb, h, w), S2_NODATA, np.int16)
            scl = np.full((t2, h, w), bands.SCL_NO_DATA, np.uint8)
            s1 = np.full((t1, 2, h, w), np.nan, np.float32)
            for b, px in groups.items():
                sub = loc.take(px)
                _scatter(self.world.s2, sub, s2_sched[b], s2_slots[b], px, {"refl": _flat(s2), "scl": _flat(scl)})
                _scatter(self.world.s1, sub, s1_sched[b], s1_slots[b], px,
                         {"vv": _flat(s1[:, 0]), "vh": _flat(s1[:, 1])})
        angle = np.full(t1, np.nan, np.float32)
        for b, slots in s1_slots.items():
            angle[slots] = s1_sched[b].angle
        return ImageStack(tile=tile, s2_times=s2_times, s2=s2, scl=scl,
                          scene_cloud_pct=self._tile_clouds(groups, clouds, s2_slots, t2, h, w),
                          s1_times=s1_times, s1=s1, angle=angle)

    @staticmethod
    def _tile_clouds(groups: dict, clouds: dict, s2_slots: dict, t2: int, h: int, w: int) -> np.ndarray:
        """Per-pixel scene cloud (T2, H, W) from each band's granule clouds (`_granule_clouds`
        on its dates): each pixel's granule on its band's dates, NaN on the other bands' dates.
        One scene over the whole tile: a broadcast view, no copy."""
        parts = []
        for b, px in groups.items():
            for rows, pct in clouds[b]:
                parts.append((s2_slots[b], px[rows], pct))
        if len(parts) == 1 and parts[0][1].size == h * w:
            slots, _, pct = parts[0]
            full = np.full(t2, np.nan, np.float32)
            full[slots] = pct
            return np.broadcast_to(full[:, None, None], (t2, h, w))
        out = np.full((t2, h * w), np.nan, np.float32)
        for slots, px, pct in parts:
            out[np.ix_(slots, px)] = pct[:, None]
        return out.reshape(t2, h, w)

    def truth_clay(self, tile: Tile) -> np.ndarray:
        """The true clay (%) of every pixel of a tile, (H, W) float32: maps are scored on it."""
        loc = self.world.locate_tile(tile)
        return loc.soil.clay.reshape(tile.size, tile.size).astype(np.float32)


def _flat(stack: np.ndarray) -> np.ndarray:
    """A (dates, …, pixels) view of a (dates, …, rows, cols) array, for writing into."""
    return np.reshape(stack, stack.shape[:-2] + (stack.shape[-2] * stack.shape[-1],), copy=False)


def _pixels_first(stack: np.ndarray, n: int) -> np.ndarray:
    """A (n pixels, dates, …) view of a (dates, …, rows, cols) array, for writing into."""
    view = np.reshape(stack, stack.shape[:-2] + (n,), copy=False)
    return np.moveaxis(view, -1, 0)


def _union_slots(schedules: dict[int, Schedule]) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The union of several bands' acquisitions, sorted by time (then band): its times and,
    per band, the slot of each of its acquisitions. Equal instants stay two slots."""
    if not schedules:
        return np.zeros(0, "datetime64[s]"), {}
    times = np.concatenate([sc.times for sc in schedules.values()]).astype("datetime64[s]")
    owner = np.concatenate([np.full(len(sc.times), b, np.int64) for b, sc in schedules.items()])
    order = np.lexsort((owner, times))
    slot = np.empty(order.size, np.int64)
    slot[order] = np.arange(order.size)
    out, lo = {}, 0
    for b, sc in schedules.items():
        out[b] = slot[lo:lo + len(sc.times)]
        lo += len(sc.times)
    return times[order], out


def _scatter(simulate, loc: Locations, sched: Schedule, slots: np.ndarray, px: np.ndarray,
             targets: dict) -> None:
    """Simulate `loc` (the tile's pixels `px`) on `sched` in date blocks with `simulate`
    (`World.s2` or `World.s1`) and write each result (px, dates, …) into its (slots, …, px)
    place of the (dates, …, pixels) `targets`; `simulator.CHUNK_ELEMENTS` values per block
    bound the temporary copy."""
    step = max(4, simulator.CHUNK_ELEMENTS // max(px.size, 1))
    for lo in range(0, len(sched.times), step):
        sl = slice(lo, lo + step)
        res = simulate(loc, sched[sl])
        for key, target in targets.items():
            v = res[key]                                                  # (px, m) or (px, m, c)
            if v.ndim == 3:
                target[slots[sl, None, None], np.arange(v.shape[2])[None, :, None], px] = v.transpose(1, 2, 0)
            else:
                target[slots[sl, None], px] = v.T


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["datetime"] = utc_times(frame["datetime"])
    for col in ("scene_cloud_pct", "VV", "VH", "angle"):
        frame[col] = frame[col].astype("float32")
    frame["point_id"] = frame["point_id"].astype(str)
    return frame[list(bands.OBS_COLUMNS)]


def _typed_state(frame: pd.DataFrame) -> pd.DataFrame:
    frame["datetime"] = utc_times(frame["datetime"])
    frame["point_id"] = frame["point_id"].astype(str)
    return frame[list(STATE_COLUMNS)]


def _empty_obs() -> pd.DataFrame:
    """A well-formed observations table with no rows (the dtypes of `_typed`)."""
    frame = pd.DataFrame({c: pd.Series(dtype="float32") for c in bands.OBS_COLUMNS})
    frame["point_id"] = frame["point_id"].astype(str)
    frame["sensor"] = frame["sensor"].astype(str)
    frame["datetime"] = pd.Series(dtype=UTC_DTYPE)
    for name in bands.S2_BANDS:
        frame[name] = pd.Series(dtype="Int16")
    frame["SCL"] = pd.Series(dtype="UInt8")
    return frame


def empty_state() -> pd.DataFrame:
    """A well-formed hidden-state table with no rows (the dtypes of `observations_and_state`)."""
    frame = pd.DataFrame({c: pd.Series(dtype="float32") for c in STATE_COLUMNS})
    frame["point_id"] = frame["point_id"].astype(str)
    frame["sensor"] = frame["sensor"].astype(str)
    frame["datetime"] = pd.Series(dtype=UTC_DTYPE)
    frame["cloud"] = frame["cloud"].astype(bool)
    frame["snow"] = frame["snow"].astype(bool)
    return frame


def iter_chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for lo in range(0, len(frame), size):
        yield frame.iloc[lo:lo + size]


def _add_arguments(group) -> None:
    group.add_argument("--preset", default=None,
                       help="embedded-world preset: quick, paper or independent-site (default quick); "
                            "predict-map also takes the preset's AOI and dates")
    group.add_argument("--seed", type=int, default=None, help="seed of the embedded world (default: the preset's)")


def _options(args) -> dict:
    preset = getattr(args, "preset", None) or "quick"
    get_preset(preset)                                  # unknown preset: one-line error now
    return {"preset": preset, "seed": getattr(args, "seed", None)}


PLUGIN = SourcePlugin(
    name="synthetic",
    summary="the embedded simulated Sentinel world (points and tiles)",
    serves=frozenset({POINTS, TILES}),
    factory=SyntheticSource,
    add_arguments=_add_arguments,
    options=_options,
    # The rate the map's compute estimate was measured at (benchmarks/bench_map.py): half of it
    # is this simulator (bench_sources: 0.17 core-ms).
    map_core_seconds_per_pixel=CORE_SECONDS_PER_PIXEL,
)
