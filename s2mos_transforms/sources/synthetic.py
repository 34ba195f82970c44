"""`synthetic`: the embedded world as a Source (points and map tiles, one implementation)."""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from s2mos_transforms import bands
from s2mos_transforms.grid import Tile, xy_to_lonlat
from s2mos_transforms.sources.base import POINTS, TILES, ImageStack, SamplePoint, SourceError, SourcePlugin
from s2mos_transforms.world.presets import get_preset
from s2mos_transforms.world.simulator import Locations, World, orbit_band

STATE_COLUMNS = ("point_id", "sensor", "datetime", "moisture", "roughness", "green", "residue", "cloud", "snow")


class SyntheticSource:
    """The simulated, seeded Sentinel world (DESIGN.md section 4). Same seed, same bytes."""

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
            return _empty_obs(), None
        lat = np.array([p.lat for p in points], float)
        lon = np.array([p.lon for p in points], float)
        outside = ~self.covers(lat, lon)
        if outside.any():
            bad = points[int(np.argmax(outside))]
            raise SourceError(f"point {bad.point_id} ({bad.lat}, {bad.lon}) is outside the "
                              f"'{self.preset.name}' world")
        ids = np.array([p.point_id for p in points], dtype=object)
        obs_parts, state_parts = [], []
        band = orbit_band(lon)
        for b in np.unique(band):
            sel = np.flatnonzero(band == b)
            loc = self.world.locate_points(lat[sel], lon[sel])
            o, s = self._point_rows(ids[sel], loc, int(b), with_state, start, end)
            obs_parts += o
            state_parts += s
        obs = pd.concat(obs_parts, ignore_index=True)
        order = np.lexsort((obs["sensor"].to_numpy(), obs["datetime"].to_numpy(), pd.Categorical(obs["point_id"], categories=list(dict.fromkeys(ids))).codes))
        obs = obs.iloc[order].reset_index(drop=True)
        state = pd.concat(state_parts, ignore_index=True).iloc[order].reset_index(drop=True) if with_state else None
        return obs, state

    def _point_rows(self, ids, loc: Locations, band: int, with_state: bool, start, end):
        n = len(loc)
        s2s, s1s = self.world.s2_schedule(band, start, end), self.world.s1_schedule(band, start, end)
        s2 = self.world.s2(loc, s2s, with_state)
        s1 = self.world.s1(loc, s1s, with_state)
        t2, t1 = len(s2s.times), len(s1s.times)
        cloud_pct = np.stack([self.world.scene_cloud_pct(a, o, s2s) for a, o in zip(loc.lat, loc.lon)])
        s2_frame = {"point_id": np.repeat(ids, t2), "sensor": bands.SENSOR_S2,
                    "datetime": np.tile(s2s.times, n), "scene_cloud_pct": cloud_pct.ravel()}
        refl = s2["refl"].reshape(n * t2, -1)
        for i, name in enumerate(bands.S2_BANDS):
            s2_frame[name] = pd.array(refl[:, i], dtype="Int16")
        s2_frame["SCL"] = pd.array(s2["scl"].ravel(), dtype="UInt8")
        s2_frame.update({"VV": np.nan, "VH": np.nan, "angle": np.nan})
        s1_frame = {"point_id": np.repeat(ids, t1), "sensor": bands.SENSOR_S1,
                    "datetime": np.tile(s1s.times, n), "scene_cloud_pct": np.nan}
        for name in bands.S2_BANDS:
            s1_frame[name] = pd.array([pd.NA] * (n * t1), dtype="Int16")
        s1_frame["SCL"] = pd.array([pd.NA] * (n * t1), dtype="UInt8")
        s1_frame.update({"VV": s1["vv"].ravel(), "VH": s1["vh"].ravel(), "angle": np.float32(s1s.angle)})
        frames = [_typed(pd.DataFrame(s2_frame)), _typed(pd.DataFrame(s1_frame))]
        states = []
        if with_state:
            states.append(pd.DataFrame({
                "point_id": np.repeat(ids, t2), "sensor": bands.SENSOR_S2, "datetime": np.tile(s2s.times, n),
                "moisture": s2["moisture"].ravel(), "roughness": s2["roughness"].ravel(),
                "green": s2["green"].ravel(), "residue": s2["residue"].ravel(),
                "cloud": s2["cloud"].ravel(), "snow": s2["snow"].ravel()}))
            states.append(pd.DataFrame({
                "point_id": np.repeat(ids, t1), "sensor": bands.SENSOR_S1, "datetime": np.tile(s1s.times, n),
                "moisture": s1["moisture"].ravel(), "roughness": s1["roughness"].ravel(),
                "green": s1["green"].ravel(), "residue": np.float32(np.nan), "cloud": False, "snow": False}))
        return frames, states

    def lab_spectra(self, samples: pd.DataFrame) -> pd.DataFrame:
        loc = self.world.locate_points(samples["lat"].to_numpy(float), samples["lon"].to_numpy(float))
        lab = self.world.lab_spectra(loc)
        out = pd.DataFrame(np.round(lab, 4), columns=list(bands.S2_BANDS))
        out.insert(0, "point_id", samples["point_id"].to_numpy())
        return out

    # ---- tiles ---------------------------------------------------------------------------
    def _tile_centre(self, tile: Tile) -> tuple[float, float]:
        x0, y0, x1, y1 = tile.bounds
        lon, lat = xy_to_lonlat(tile.epsg, (x0 + x1) / 2, (y0 + y1) / 2)
        return float(lat), float(lon)

    def tile_stack(self, tile: Tile, start: str | None = None, end: str | None = None) -> ImageStack:
        lat, lon = self._tile_centre(tile)
        lons, lats = tile.pixel_centres_lonlat()
        if not self.covers(lats, lons).any():
            raise SourceError(f"tile {tile.name} is outside the '{self.preset.name}' world")
        band = int(orbit_band(lon))
        loc = self.world.locate_tile(tile)
        s2s, s1s = self.world.s2_schedule(band, start, end), self.world.s1_schedule(band, start, end)
        # The simulator writes (pixel, date, …) values straight into the stack's (date, …, row,
        # col) arrays through transposed views: no second copy of the stack.
        h = w = tile.size
        n, t2, t1 = h * w, len(s2s.times), len(s1s.times)
        s2 = np.empty((t2, len(bands.S2_BANDS), h, w), np.int16)
        scl = np.empty((t2, h, w), np.uint8)
        s1 = np.empty((t1, 2, h, w), np.float32)
        self.world.s2(loc, s2s, out={"refl": _pixels_first(s2, n), "scl": _pixels_first(scl, n)})
        self.world.s1(loc, s1s, out={"vv": _pixels_first(s1[:, 0], n), "vh": _pixels_first(s1[:, 1], n)})
        return ImageStack(
            tile=tile,
            s2_times=s2s.times, s2=s2, scl=scl,
            scene_cloud_pct=self.world.scene_cloud_pct(lat, lon, s2s),
            s1_times=s1s.times, s1=s1,
            angle=np.full(len(s1s.times), s1s.angle, np.float32))

    def truth_clay(self, tile: Tile) -> np.ndarray:
        """The true clay (%) of every pixel of a tile, (H, W) float32: maps are scored on it."""
        loc = self.world.locate_tile(tile)
        return loc.soil.clay.reshape(tile.size, tile.size).astype(np.float32)


def _pixels_first(stack: np.ndarray, n: int) -> np.ndarray:
    """A (n pixels, dates, …) view of a (dates, …, rows, cols) array, for writing into."""
    view = np.reshape(stack, stack.shape[:-2] + (n,), copy=False)
    return np.moveaxis(view, -1, 0)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["datetime"] = pd.to_datetime(frame["datetime"]).dt.tz_localize("UTC")
    for col in ("scene_cloud_pct", "VV", "VH", "angle"):
        frame[col] = frame[col].astype("float32")
    frame["point_id"] = frame["point_id"].astype(str)
    return frame[list(bands.OBS_COLUMNS)]


def _empty_obs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="float32") for c in bands.OBS_COLUMNS})


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
)
