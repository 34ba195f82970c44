"""Map tiles: squares of a 10 m grid in a UTM zone, named by their grid index."""
from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
from pyproj import Transformer

PIXEL_SIZE_M: float = 10.0


def utm_epsg(lat: float, lon: float) -> int:
    """EPSG code of the WGS84 UTM zone containing (lat, lon)."""
    zone = int((lon + 180.0) // 6.0) % 60 + 1
    return (32600 if lat >= 0 else 32700) + zone


@lru_cache(maxsize=32)
def _to_wgs84(epsg: int) -> Transformer:
    return Transformer.from_crs(epsg, 4326, always_xy=True)


@lru_cache(maxsize=32)
def _from_wgs84(epsg: int) -> Transformer:
    return Transformer.from_crs(4326, epsg, always_xy=True)


def lonlat_to_xy(epsg: int, lon, lat) -> tuple[np.ndarray, np.ndarray]:
    return _from_wgs84(epsg).transform(np.asarray(lon, float), np.asarray(lat, float))


def xy_to_lonlat(epsg: int, x, y) -> tuple[np.ndarray, np.ndarray]:
    return _to_wgs84(epsg).transform(np.asarray(x, float), np.asarray(y, float))


@dataclasses.dataclass(frozen=True)
class Tile:
    """A square of `size` × `size` pixels of `res` metres; (col, row) index the grid of the zone.

    The tile's upper-left corner is (col * size * res, (row + 1) * size * res) in the zone's
    projected coordinates, so tiles of one grid never overlap and are named by their index.
    """

    epsg: int
    col: int
    row: int
    size: int = 256
    res: float = PIXEL_SIZE_M

    @property
    def name(self) -> str:
        return f"{self.epsg}_{self.col}_{self.row}"

    @property
    def x_min(self) -> float:
        return self.col * self.size * self.res

    @property
    def y_max(self) -> float:
        return (self.row + 1) * self.size * self.res

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        span = self.size * self.res
        return (self.x_min, self.y_max - span, self.x_min + span, self.y_max)

    @property
    def transform(self):
        from affine import Affine
        return Affine(self.res, 0.0, self.x_min, 0.0, -self.res, self.y_max)

    def pixel_centres_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Projected coordinates of every pixel centre, each of shape (size, size)."""
        offsets = (np.arange(self.size) + 0.5) * self.res
        xx, yy = np.meshgrid(self.x_min + offsets, self.y_max - offsets)
        return xx, yy

    def pixel_centres_lonlat(self) -> tuple[np.ndarray, np.ndarray]:
        xx, yy = self.pixel_centres_xy()
        lon, lat = xy_to_lonlat(self.epsg, xx, yy)
        return np.asarray(lon), np.asarray(lat)


def tile_containing(epsg: int, x: float, y: float, size: int = 256, res: float = PIXEL_SIZE_M) -> Tile:
    span = size * res
    return Tile(epsg, int(np.floor(x / span)), int(np.floor(y / span)), size, res)
