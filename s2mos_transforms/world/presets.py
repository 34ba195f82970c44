"""Presets of the embedded world: extent, period, soil distribution, sample count, map AOI."""
from __future__ import annotations

import dataclasses
import json

import numpy as np

from s2mos_transforms.errors import UserError

EARTH_RADIUS_KM = 6371.0
REF_LAT_DEG = 45.0  # the world's km frame: equirectangular about 45° N


def lonlat_to_km(lon, lat) -> tuple[np.ndarray, np.ndarray]:
    """The world's planar frame (km) in which soil fields, weather and parcels live."""
    k = np.pi / 180.0 * EARTH_RADIUS_KM
    return (np.asarray(lon, np.float64) * k * np.cos(np.radians(REF_LAT_DEG)),
            np.asarray(lat, np.float64) * k)


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    seed: int
    lat_range: tuple[float, float]
    lon_range: tuple[float, float]
    n_points: int
    start: str                      # ISO date, inclusive
    end: str                        # ISO date, inclusive
    clay_beta: tuple[float, float]  # marginal clay distribution: Beta(a, b) × 100 %
    clay_lat_trend: float           # share of clay variance explained by latitude (north = more clay)
    aoi_bbox: tuple[float, float, float, float]   # W, S, E, N (deg) of the map AOI
    description: str
    # Length scales (km) → variance shares of the soil fields; None: soil.SOIL_SCALES.
    # A small site keeps only the scales it can hold, so its own clay distribution shows.
    soil_scales: tuple[tuple[float, float], ...] | None = None

    def aoi_geojson(self) -> dict:
        w, s, e, n = self.aoi_bbox
        ring = [[w, s], [e, s], [e, n], [w, n], [w, s]]
        return {"type": "Feature", "properties": {"preset": self.name},
                "geometry": {"type": "Polygon", "coordinates": [ring]}}

    def aoi_geojson_text(self) -> str:
        return json.dumps(self.aoi_geojson())

    def covers(self, lat, lon) -> np.ndarray:
        lat, lon = np.asarray(lat, float), np.asarray(lon, float)
        return ((lat >= self.lat_range[0]) & (lat <= self.lat_range[1])
                & (lon >= self.lon_range[0]) & (lon <= self.lon_range[1]))


PRESETS: dict[str, Preset] = {
    p.name: p for p in (
        Preset("quick", seed=2020, lat_range=(44.0, 52.0), lon_range=(2.0, 14.0), n_points=300,
               start="2018-01-01", end="2019-12-31", clay_beta=(2.53, 7.77), clay_lat_trend=0.15,
               aoi_bbox=(8.980, 48.495, 9.006, 48.512),
               description="small: 300 points in central Europe, 2018–2019, a ~2 km AOI (demo, tests)"),
        Preset("paper", seed=1389, lat_range=(36.0, 60.0), lon_range=(-9.0, 27.0), n_points=8426,
               start="2017-01-01", end="2019-12-31", clay_beta=(2.53, 7.77), clay_lat_trend=0.15,
               aoi_bbox=(15.000, 47.500, 15.066, 47.545),
               description="paper scale: 8 426 cropland points over Europe, 2017–2019 (LUCAS 2009-like)"),
        Preset("independent-site", seed=52, lat_range=(40.55, 40.68), lon_range=(22.45, 22.62),
               n_points=52, start="2018-01-01", end="2019-12-31", clay_beta=(5.0, 4.0),
               clay_lat_trend=0.0, aoi_bbox=(22.45, 40.55, 22.62, 40.68),
               description="a ~200 km² clayey site (median clay ≈ 55 %), 52 points, like the Greek test site",
               soil_scales=((3.0, 0.45), (1.0, 0.35), (0.15, 0.2))),
    )
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise UserError(f"unknown preset {name!r} (choose from: {', '.join(PRESETS)})") from None
