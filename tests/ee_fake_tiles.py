"""The tile half of the fake Earth Engine (tests/ee_fake.py): the images touching a tile
(``computeFeatures`` over a rectangle) and ``image:computePixels`` in NPY on the requested grid,
answered from the embedded world's tile stack, encoded as Earth Engine encodes it (one field
``<system:index>_<band>`` per image and band, masks filled with the expression's ``unmask``
value).

With Cloud Score+ linked (``linkCollection(GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED,
['cs_cdf'])``), the S2 answer also carries ``<index>_cs_cdf`` from the world's own cloud
field at each pixel (the same hidden state the point answers use): ``cs_cloudy`` under cloud,
``cs_clear`` elsewhere, the expression's fill where the granule does not cover the pixel.
Deterministic.
"""
from __future__ import annotations

import io

import httplib2
import numpy as np
import pandas as pd

from ee_fake_expr import parse_expression
from s2mos_transforms import bands
from s2mos_transforms.sources.base import SamplePoint

S2_ID, S1_ID = "COPERNICUS/S2_SR_HARMONIZED", "COPERNICUS/S1_GRD"


class FakeTiles:
    """Mixed into `ee_fake.FakeEarthEngine` (which holds the world, the lock, the caches and
    the fault rules)."""

    def _stack(self, tile, start: str, end: str):
        key = (tile.name, tile.size, start, end)
        with self._lock:
            if key in self._stacks:
                return self._stacks[key]
        last = (pd.Timestamp(end) - pd.Timedelta(days=1)).date().isoformat()
        stack = self.world.tile_stack(tile, start, last)
        with self._lock:
            self._stacks[key] = stack
        return stack

    def _cloud_field(self, tile, start: str, end: str) -> np.ndarray:
        """The world's cloud state (T2, H, W) on the tile's S2 slots: the hidden truth of the
        point answers, at every pixel centre (a pixel is the point at its centre)."""
        key = ("cloud", tile.name, tile.size, start, end)
        with self._lock:
            if key in self._stacks:
                return self._stacks[key]
        stack = self._stack(tile, start, end)
        lon, lat = tile.pixel_centres_lonlat()
        pts = [SamplePoint(str(i), float(a), float(o)) for i, (a, o) in enumerate(zip(lat.ravel(), lon.ravel()))]
        last = (pd.Timestamp(end) - pd.Timedelta(days=1)).date().isoformat()
        obs, state = self.world.observations_and_state(pts, start=start, end=last)
        s2 = (state["sensor"] == bands.SENSOR_S2).to_numpy()
        pixel = state["point_id"].to_numpy()[s2].astype(int)
        when = obs["datetime"].dt.tz_convert(None).to_numpy()[s2].astype("datetime64[s]")
        slot = np.searchsorted(stack.s2_times, when)
        field = np.zeros((len(stack.s2_times), tile.size * tile.size), bool)
        field[slot, pixel] = state["cloud"].to_numpy(bool)[s2]
        field = field.reshape(len(stack.s2_times), tile.size, tile.size)
        with self._lock:
            self._stacks[key] = field
        return field

    def _images(self, stack, sensor: str) -> list[tuple[str, int, int, int, int]]:
        """(id, slot, granule, granules in the slot, time_start ms) of every image of the
        stack: S2 ids like Earth Engine's (`granule_index`), every `overlap_every`-th S2
        acquisition split over two overlapping granules; S1 one image per slot."""
        times = stack.s2_times if sensor == bands.SENSOR_S2 else stack.s1_times
        out = []
        for k, t in enumerate(times):
            ms = int(np.datetime64(t, "ms").astype(np.int64))
            if sensor == bands.SENSOR_S1:
                out.append((f"S1A_IW_GRDH_{pd.Timestamp(ms, unit='ms'):%Y%m%dT%H%M%S}_{k:04d}", k, 0, 1, ms))
                continue
            n = 2 if self.overlap_every and k % self.overlap_every == 0 else 1
            out += [(granule_index(ms, g), k, g, n, ms + 3000 * g) for g in range(n)]
        return out

    def _image_features(self, asked: dict, sensor: str, start: str, end: str) -> list[dict]:
        """The images touching the requested rectangle."""
        x0, y0, x1, y1 = asked["rect"][0]
        stack = self._stack(tile_of(asked["crs"][0], x0, y1, x1 - x0), start, end)
        feats = []
        for iid, k, _, _, ms in self._images(stack, sensor):
            props = {"index": iid, "t": ms}
            if sensor == bands.SENSOR_S2:
                pct = np.unique(stack.scene_cloud_pct[k][~np.isnan(stack.scene_cloud_pct[k])])
                if pct.size != 1:
                    raise ValueError("fake: a tile across S2 granules is not modelled")
                props["cloud"] = float(pct[0])
            feats.append({"type": "Feature", "geometry": None, "id": iid, "properties": props})
        return feats

    def _compute_pixels(self, body: dict, uri: str):
        self._log_request()
        with self._lock:
            self.pixel_requests.append(body)
            n = len(self.pixel_requests)
        for rule in list(self.pixel_faults):
            hit = rule({"n": n, **body})
            if hit is not None:
                return self._error(*hit)
        asked = parse_expression(body["expression"])
        g = body["grid"]
        aff, dim = g["affineTransform"], g["dimensions"]
        size = int(dim["width"])
        tile = tile_of(g["crsCode"], aff["translateX"], aff["translateY"], size * aff["scaleX"])
        sensor = bands.SENSOR_S2 if S2_ID in asked["collections"] else bands.SENSOR_S1
        start, end = asked["dates"][0]
        stack = self._stack(tile, start, end)
        wanted_ids = set(asked["in_list"][0][1])
        wanted = [im for im in self._images(stack, sensor) if im[0] in wanted_ids]   # toBands: collection order
        linked = sensor == bands.SENSOR_S2 and asked["linked"] == [["cs_cdf"]]
        names = (list(bands.S2_BANDS) + ["SCL"]) if sensor == bands.SENSOR_S2 else ["VV", "VH", "angle"]
        dtype = np.int16 if sensor == bands.SENSOR_S2 else np.float32
        fields = [(f"{im[0]}_{b}", dtype) for im in wanted for b in names + (["cs_cdf"] if linked else [])]
        out = np.zeros((size, size), dtype=[(f, np.float32 if f.endswith("_cs_cdf") else t) for f, t in fields])
        cols = np.arange(size)[None, :].repeat(size, 0)
        cloud = self._cloud_field(tile, start, end) if linked else None
        for iid, k, part, parts, _ in wanted:
            # Two granules of one datatake: the first covers the west 60 %, the second the east 60 %.
            inside = np.ones((size, size), bool) if parts == 1 else \
                (cols < 0.6 * size if part == 0 else cols >= 0.4 * size)
            if sensor == bands.SENSOR_S2:
                for b, name in enumerate(bands.S2_BANDS):
                    out[f"{iid}_{name}"] = np.where(inside, stack.s2[k, b], 0)
                out[f"{iid}_SCL"] = np.where(inside, stack.scl[k], 0)
                if linked:                       # cs_cdf unmasked to the expression's (negative) fill
                    fill = np.float32(min(asked["unmask"]))
                    covered = inside & (stack.scl[k] != bands.SCL_NO_DATA)
                    cs = np.where(cloud[k], self.cs_cloudy, self.cs_clear).astype(np.float32)
                    out[f"{iid}_cs_cdf"] = np.where(covered, cs, fill)
            else:
                fill = np.float32(asked["unmask"][0])                       # unmask(): explicit nodata
                covered = ~np.isnan(stack.s1[k, 0])
                out[f"{iid}_VV"] = np.where(covered, stack.s1[k, 0], fill)
                out[f"{iid}_VH"] = np.where(covered, stack.s1[k, 1], fill)
                out[f"{iid}_angle"] = np.where(covered, stack.angle[k], fill)
        buf = io.BytesIO()
        np.save(buf, out, allow_pickle=False)
        return httplib2.Response({"status": 200, "content-type": "application/octet-stream"}), buf.getvalue()


def granule_index(ms: int, k: int) -> str:
    """An S2 ``system:index`` like Earth Engine's (``DATATAKE_GRANULETIME_TILE``): granule k
    of the datatake sensed at `ms`."""
    t = pd.Timestamp(int(ms), unit="ms", tz="UTC")
    return f"{t:%Y%m%dT%H%M%S}_{t + pd.Timedelta(seconds=3 * k):%Y%m%dT%H%M%S}_T31TC{'JK'[k]}"


def tile_of(crs_code: str, x_min: float, y_max: float, span: float, res: float = 10.0):
    """The grid tile whose upper-left corner and span these are."""
    from s2mos_transforms.grid import Tile
    size = int(round(span / res))
    return Tile(epsg=int(str(crs_code).split(":")[1]), col=int(round(x_min / (size * res))),
                row=int(round(y_max / (size * res))) - 1, size=size, res=res)
