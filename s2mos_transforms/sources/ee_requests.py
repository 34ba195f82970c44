"""The Earth Engine requests of the point fan-out: groups of points, their expressions, paging,
and the answer decoded into the observation record (`bands.OBS_COLUMNS`).

One request = one group of nearby points (so it touches few scenes) × one sensor × one date
range: every image of the collection that touches the group is sampled at its points
(``Image.sampleRegions`` mapped over the collection, flattened), fetched with
``ee.data.computeFeatures`` page by page. Expressions are built on the worker from plain
values (points, dates, flags); nothing from ``ee`` is pickled.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import math
import re
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from s2mos_transforms import bands
from s2mos_transforms.sources.base import SamplePoint, utc_times

S2_COLLECTION = "COPERNICUS/S2_SR_HARMONIZED"
S1_COLLECTION = "COPERNICUS/S1_GRD"
CS_PLUS_COLLECTION = "GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED"
CS_BAND = "cs_cdf"
CS_MISSING = -1.0                # cs_cdf where Cloud Score+ has no value (tiles unmask to it): never cloud
S2_SELECT: tuple[str, ...] = bands.S2_BANDS + ("SCL",)
S1_SELECT: tuple[str, ...] = bands.S1_BANDS + ("angle",)
SCALE_M = 10
TIME = "t"                       # acquisition time (ms since the epoch) copied onto each sample
INDEX = "index"                  # the image's system:index (S2: DATATAKE_GRANULETIME_TILE)
CLOUD = "cloud"                  # CLOUDY_PIXEL_PERCENTAGE of the S2 scene
ORBIT_PASS, REL_ORBIT = "orbit_pass", "relative_orbit"

# Sizing (docs: request bodies ≤ 10 MB; 'Too many values' past about a million values):
# a group's estimated values (points × images × bands) stay under MAX_VALUES; a split halves it.
MAX_VALUES = 1_000_000
S2_IMAGES_PER_DAY = 0.4          # a point sees an S2 image every ~2.5 days (two satellites, overlaps)
S1_IMAGES_PER_DAY = 0.35
MIN_SPLIT_DAYS = 16              # a one-point request is split in time down to this span
GROUP_CELL_DEG = 1.0             # points are grouped within cells of this size (about one S2 granule)


@dataclasses.dataclass(frozen=True)
class Request:
    """One computeFeatures job: a sensor, a group of points, a date range [start, end)."""

    sensor: str
    points: tuple[SamplePoint, ...]
    start: dt.date
    end: dt.date                 # exclusive

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def estimated_values(self) -> int:
        per_day, nb = ((S2_IMAGES_PER_DAY, len(S2_SELECT) + 2) if self.sensor == bands.SENSOR_S2
                       else (S1_IMAGES_PER_DAY, len(S1_SELECT) + 3))
        return int(math.ceil(len(self.points) * max(self.days, 1) * per_day * nb))

    def halves(self) -> tuple["Request", "Request"] | None:
        """Two smaller requests covering this one (points first, then time); None if it
        cannot shrink further."""
        if len(self.points) > 1:
            mid = len(self.points) // 2
            return (dataclasses.replace(self, points=self.points[:mid]),
                    dataclasses.replace(self, points=self.points[mid:]))
        if self.days >= 2 * MIN_SPLIT_DAYS:
            mid = self.start + dt.timedelta(days=self.days // 2)
            return dataclasses.replace(self, end=mid), dataclasses.replace(self, start=mid)
        return None


def group_points(points: Sequence[SamplePoint], per_request: int) -> list[tuple[SamplePoint, ...]]:
    """Points grouped by place: cells of `GROUP_CELL_DEG`, each cell's points (sorted west →
    east, south → north) cut into groups of at most `per_request`."""
    cells: dict[tuple[int, int], list[SamplePoint]] = {}
    for p in points:
        cells.setdefault((math.floor(p.lat / GROUP_CELL_DEG), math.floor(p.lon / GROUP_CELL_DEG)), []).append(p)
    groups = []
    for key in sorted(cells):
        members = sorted(cells[key], key=lambda p: (p.lon, p.lat, p.point_id))
        groups += [tuple(members[i:i + per_request]) for i in range(0, len(members), per_request)]
    return groups


def plan_requests(points: Sequence[SamplePoint], start: dt.date, end: dt.date, per_request: int) -> list[Request]:
    """Every request for these points: per place group and sensor, each sized under
    `MAX_VALUES` (halved ahead of time when the estimate says so)."""
    todo = [Request(s, g, start, end) for g in group_points(points, per_request)
            for s in (bands.SENSOR_S2, bands.SENSOR_S1)]
    out = []
    while todo:
        r = todo.pop()
        parts = r.halves() if r.estimated_values() > MAX_VALUES else None
        if parts:
            todo += parts
        else:
            out.append(r)
    return out[::-1]


# -- expressions (need an initialised ``ee``) ---------------------------------------------------

def points_collection(points: Sequence[SamplePoint]):
    import ee
    return ee.FeatureCollection([ee.Feature(ee.Geometry.Point([float(p.lon), float(p.lat)]),
                                            {"point_id": p.point_id}) for p in points])


def expression(req: Request, cloud_score_plus: bool = False):
    """The FeatureCollection of every sample of `req`: one feature per (image, point)."""
    import ee
    pts = points_collection(req.points)
    end = req.end.isoformat()
    col = ee.ImageCollection(S2_COLLECTION if req.sensor == bands.SENSOR_S2 else S1_COLLECTION) \
        .filterBounds(pts).filterDate(req.start.isoformat(), end)
    if req.sensor == bands.SENSOR_S2:
        select = list(S2_SELECT)
        if cloud_score_plus:
            col = col.linkCollection(ee.ImageCollection(CS_PLUS_COLLECTION), [CS_BAND])
        props = {CLOUD: "CLOUDY_PIXEL_PERCENTAGE", INDEX: "system:index"}
    else:
        col = col.filter(ee.Filter.eq("instrumentMode", "IW")) \
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VV")) \
            .filter(ee.Filter.listContains("transmitterReceiverPolarisation", "VH"))
        select = list(S1_SELECT)
        props = {ORBIT_PASS: "orbitProperties_pass", REL_ORBIT: "relativeOrbitNumber_start"}

    def per_image(img):
        extra = {TIME: img.get("system:time_start"), **{k: img.get(v) for k, v in props.items()}}
        image = img.select(select)
        if cloud_score_plus and req.sensor == bands.SENSOR_S2:
            # A masked cs_cdf (no Cloud Score+ image for the granule) must not drop the sample:
            # unmasked to CS_MISSING, which `cloud_score_scl` reads as unknown, as for tiles.
            image = image.addBands(img.select([CS_BAND]).unmask(CS_MISSING))
        return image.sampleRegions(collection=pts, properties=["point_id"], scale=SCALE_M,
                                                geometries=False).map(lambda f: f.set(extra))

    return col.map(per_image).flatten()


def fetch_pages(expr, page_size: int, send: Callable[[Callable[[], Any]], Any]) -> Iterator[dict]:
    """Every feature of `expr`, page by page; `send(call)` runs one request (with the
    retry policy) and returns its answer."""
    import ee
    token = None
    while True:
        params = {"expression": expr, "pageSize": page_size}
        if token:
            params["pageToken"] = token
        page = send(lambda params=params: ee.data.computeFeatures(params))
        yield from page.get("features", [])
        token = page.get("nextPageToken") or page.get("next_page_token")
        if not token:
            return


# -- decoding ---------------------------------------------------------------------------------

def decode(features: Sequence[dict], sensor: str, cs_threshold: float | None = None) -> pd.DataFrame:
    """Features of one sensor → observation rows (`bands.OBS_COLUMNS`, typed like every source).

    S2: L2A integers as served, SCL, the scene's CLOUDY_PIXEL_PERCENTAGE. With Cloud Score+
    (`cs_threshold` set), a sample whose ``cs_cdf`` is below the threshold gets SCL 9 (cloud,
    high probability), so the one SCL mask of the chain drops it. S1: VV, VH dB, angle."""
    props = [f.get("properties", {}) for f in features]
    if sensor == bands.SENSOR_S2:
        props = one_per_datatake(props)
    n = len(props)
    cols: dict[str, Any] = {"point_id": [str(p["point_id"]) for p in props], "sensor": [sensor] * n,
                            "datetime": pd.to_datetime(np.array([acquisition_ms(p) for p in props], np.int64),
                                                       unit="ms", utc=True)}
    if sensor == bands.SENSOR_S2:
        cols["scene_cloud_pct"] = np.array([_num(p.get(CLOUD)) for p in props], np.float32)
        for b in bands.S2_BANDS:
            cols[b] = pd.array([p.get(b) for p in props], dtype="Int16")
        scl = np.array([_num(p.get("SCL"), 0) for p in props], np.float64)
        if cs_threshold is not None:
            cs = np.array([_num(p.get(CS_BAND)) for p in props], np.float64)
            scl = cloud_score_scl(scl, cs, cs_threshold)
        cols["SCL"] = pd.array(scl.astype(np.uint8), dtype="UInt8")
        for c in bands.OBS_S1_COLUMNS:
            cols[c] = np.full(n, np.nan, np.float32)
    else:
        cols["scene_cloud_pct"] = np.full(n, np.nan, np.float32)
        for b in bands.S2_BANDS:
            cols[b] = pd.array([pd.NA] * n, dtype="Int16")
        cols["SCL"] = pd.array([pd.NA] * n, dtype="UInt8")
        for c in bands.OBS_S1_COLUMNS:
            cols[c] = np.array([_num(p.get(c)) for p in props], np.float32)
    frame = pd.DataFrame(cols)
    frame["datetime"] = utc_times(frame["datetime"])
    for c in ("point_id", "sensor"):
        frame[c] = frame[c].astype(str)
    return frame[list(bands.OBS_COLUMNS)]


def cloud_score_scl(scl: np.ndarray, cs: np.ndarray, threshold: float) -> np.ndarray:
    """SCL with Cloud Score+ applied, for points and tiles alike: where the sample is covered
    (SCL not no-data) and its ``cs_cdf`` is known (0 … 1) and below `threshold`, SCL 9
    (cloud, high probability), so the chain's one SCL mask drops it; unknown cs_cdf (NaN,
    `CS_MISSING`) leaves SCL as it is."""
    scl = np.asarray(scl)
    cs = np.asarray(cs, np.float64)
    with np.errstate(invalid="ignore"):
        cloud = (cs >= 0.0) & (cs < threshold) & (scl != bands.SCL_NO_DATA)
    return np.where(cloud, np.asarray(bands.SCL_CLOUD_HIGH, scl.dtype), scl)


def datatake(index: Any) -> str | None:
    """The datatake of an S2 image from its ``system:index`` (``20190105T094359_…_T34TFL``:
    the first part, the datatake's sensing start), None for another form. Granules of one
    datatake are one acquisition: where MGRS tiles overlap they hold the same pixels."""
    parts = str(index).split("_") if index is not None else []
    return parts[0] if len(parts) >= 3 and _DATATAKE.fullmatch(parts[0]) else None


def acquisition_ms(props: dict) -> int:
    """An S2 acquisition's time: its datatake's sensing start (the same for every granule of
    it, so points and tiles agree); else ``system:time_start``."""
    take = datatake(props.get(INDEX))
    if take is None:
        return int(props[TIME])
    t = dt.datetime.strptime(take, "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp()) * 1000


def one_per_datatake(props: list[dict]) -> list[dict]:
    """One sample per (point, datatake): a point where two granules overlap is sampled twice;
    the granule first by ``system:index`` is kept."""
    seen, out = set(), []
    for p in sorted(props, key=lambda p: str(p.get(INDEX, ""))):
        take = datatake(p.get(INDEX))
        key = (p["point_id"], take if take is not None else id(p))
        if key not in seen:
            seen.add(key)
            out.append(p)
    return out


_DATATAKE = re.compile(r"\d{8}T\d{6}")


def ordered(frame: pd.DataFrame, point_order: Sequence[str]) -> pd.DataFrame:
    """Rows by point (in the caller's order), time, then sensor: the order every source uses."""
    codes = pd.Categorical(frame["point_id"], categories=list(dict.fromkeys(point_order))).codes
    order = np.lexsort((frame["sensor"].to_numpy(), frame["datetime"].to_numpy(), codes))
    return frame.iloc[order].reset_index(drop=True)


def _num(v, missing=np.nan) -> float:
    return missing if v is None else float(v)
