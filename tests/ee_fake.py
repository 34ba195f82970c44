"""A fake Earth Engine at the HTTP boundary: an ``httplib2.Http`` look-alike for
``ee.Initialize(..., http_transport=FAKE)``.

It serves the discovery document and algorithm list that the ``ee`` package ships in
``ee/tests/``, an OAuth token endpoint (for service-account credentials), and
``table:computeFeatures`` answered from the embedded world: the real ``ee`` client above it
encodes the requests, translates the errors and pages. The answer is what Earth Engine would
send for the request's expression — the collection it loads, the points of its
FeatureCollection, its date range — encoded as Earth Engine encodes it (L2A integers, dB,
``system:time_start`` in ms, one feature per image × point, pages of ``pageSize``). Tiles
(``image:computePixels``) are answered by tests/ee_fake_tiles.py; expressions are read by
tests/ee_fake_expr.py.

Faults are injected by rules: ``fake.faults.append(rule)`` (computeFeatures) and
``fake.pixel_faults.append(rule)`` (computePixels: ``info`` is the request body plus ``n``) where ``rule(info)`` returns None
or ``(status, message)`` or an exception for the transport to raise (``TimeoutError``: the
deadline of a hung request passed); ``info`` has ``sensor``, ``point_ids``, ``start``, ``end``,
``n`` (the request's number, from 1).
"""
from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Callable

import httplib2
import pytest
import numpy as np
import pandas as pd

from ee_fake_expr import STATUS_NAMES, parse_expression  # noqa: F401 — parse_expression for the tests
from ee_fake_tiles import FakeTiles, granule_index, tile_of  # noqa: F401 — tile_of for the tests
from s2mos_transforms import bands
from s2mos_transforms.sources.base import SamplePoint
from s2mos_transforms.sources.synthetic import SyntheticSource

def _ee_file(name: str) -> bytes:
    import ee
    with open(os.path.join(os.path.dirname(ee.__file__), "tests", name), "rb") as f:
        return f.read()


class FakeEarthEngine(FakeTiles):
    """Thread-safe fake transport; `requests` records every computeFeatures call."""

    def __init__(self, preset: str = "quick", latency_s: float = 0.0, cs_cloudy: float = 0.2,
                 cs_clear: float = 0.9, empty: bool = False, overlap_every: int = 0, log_path: str | None = None):
        self.world = SyntheticSource(preset)
        self.latency_s = latency_s
        self.empty = empty                        # answer every request with no feature (benchmark)
        self.overlap_every = overlap_every        # every k-th S2 acquisition also in a 2nd granule
        self.cs_cloudy, self.cs_clear = cs_cloudy, cs_clear
        self.log_path = log_path                  # append "pid time" per compute request (other processes)
        self.started: list[float] = []            # when each compute request (features, pixels) arrived
        self.faults: list[Callable[[dict], tuple[int, str] | None]] = []
        self.requests: list[dict] = []            # every computeFeatures request (parsed)
        self.token_requests = 0
        self.other_requests: list[str] = []        # anything else the client asked (answered 404)
        self.inflight, self.max_inflight, self.timeline = 0, 0, []
        self._lock = threading.Lock()
        self._cache: dict[tuple, list[dict]] = {}
        self._world_cache: dict[tuple, tuple] = {}
        self._stacks: dict[tuple, Any] = {}
        self.pixel_requests: list[dict] = []       # every computePixels body
        self.pixel_faults: list[Callable[[dict], tuple[int, str] | None]] = []

    def __deepcopy__(self, memo):
        """google-auth deep-copies the transport for a background refresh: one shared,
        thread-safe fake (like one connection pool)."""
        return self

    # httplib2.Http interface -------------------------------------------------------------
    def request(self, uri, method="GET", body=None, headers=None, redirections=None, connection_type=None):
        if "$discovery" in uri:
            return httplib2.Response({"status": 200}), _ee_file("cloud_api_discovery_document.json")
        if uri.rstrip("/").endswith("/algorithms") or "/algorithms?" in uri:
            return httplib2.Response({"status": 200}), _ee_file("algorithms.json")
        if "oauth2" in uri and uri.rstrip("/").endswith("token"):
            with self._lock:
                self.token_requests += 1
            return self._json(200, {"access_token": "fake-access-token", "expires_in": 3600, "token_type": "Bearer"})
        if "image:computePixels" in uri:
            return self._compute_pixels(json.loads(body), uri)
        if "table:computeFeatures" in uri:
            return self._compute_features(json.loads(body), dict(headers or {}), uri)
        with self._lock:
            self.other_requests.append(uri)
        return self._json(404, {"error": {"code": 404, "message": f"fake: no route {method} {uri}",
                                          "status": "NOT_FOUND"}})

    # computeFeatures -----------------------------------------------------------------------
    def _compute_features(self, body: dict, headers: dict, uri: str):
        self._log_request()
        with self._lock:
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
            n = len(self.requests) + 1
            self.timeline.append((time.monotonic(), self.inflight))
        try:
            if self.latency_s:
                time.sleep(self.latency_s)
            asked = parse_expression(body["expression"])
            sensor = bands.SENSOR_S2 if "COPERNICUS/S2_SR_HARMONIZED" in asked["collections"] else bands.SENSOR_S1
            start, end = asked["dates"][0]
            info = {"n": n, "sensor": sensor, "point_ids": [p[0] for p in asked["points"]], "start": start,
                    "end": end, "body": body, "asked": asked, "headers": headers, "uri": uri}
            with self._lock:
                self.requests.append(info)
            for rule in list(self.faults):
                hit = rule(info)
                if isinstance(hit, BaseException):
                    raise hit                      # what the transport raises (a deadline passed, …)
                if hit is not None:
                    return self._error(*hit)
            if asked["rect"]:
                features = self._image_features(asked, sensor, start, end)
            else:
                features = [] if self.empty else self._features(asked, sensor, start, end)
            size = int(body.get("pageSize", 1000))
            lo = int(body.get("pageToken", 0) or 0)
            page = {"type": "FeatureCollection", "features": features[lo:lo + size]}
            if lo + size < len(features):
                page["nextPageToken"] = str(lo + size)
            return self._json(200, page)
        finally:
            with self._lock:
                self.inflight -= 1
                self.timeline.append((time.monotonic(), self.inflight))

    def _features(self, asked: dict, sensor: str, start: str, end: str) -> list[dict]:
        key = (sensor, start, end, tuple(asked["points"]), bool(asked["linked"]))
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        world_key = tuple(asked["points"])
        with self._lock:
            hit = self._world_cache.get(world_key)
        if hit is None:
            pts = [SamplePoint(pid, lat, lon) for pid, lon, lat in asked["points"]]
            hit = self.world.observations_and_state(pts)
            with self._lock:
                self._world_cache = {world_key: hit, **dict(list(self._world_cache.items())[-16:])}
        obs, state = hit
        t = obs["datetime"]
        keep = ((obs["sensor"] == sensor) & (t >= pd.Timestamp(start, tz="UTC")) & (t < pd.Timestamp(end, tz="UTC"))).to_numpy()
        obs, state = obs[keep], state[keep]
        ms = (obs["datetime"].astype("int64") // 1_000_000).to_numpy()
        feats = []
        for i, row in enumerate(obs.itertuples(index=False)):
            props: dict[str, Any] = {"point_id": row.point_id, "t": int(ms[i])}
            if sensor == bands.SENSOR_S2:
                for b in bands.S2_BANDS:
                    props[b] = int(getattr(row, b))
                props["SCL"] = int(row.SCL)
                props["cloud"] = float(row.scene_cloud_pct)
                props["index"] = granule_index(ms[i], 0)
                if asked["linked"]:
                    props["cs_cdf"] = self.cs_cloudy if bool(state["cloud"].iloc[i]) else self.cs_clear
            else:
                props.update(VV=float(row.VV), VH=float(row.VH), angle=float(row.angle),
                             orbit_pass="ASCENDING", relative_orbit=88)
            feats.append({"type": "Feature", "geometry": None, "id": f"{int(ms[i])}_{i}", "properties": props})
            if sensor == bands.SENSOR_S2 and self.overlap_every and i % self.overlap_every == 0:
                # The point also lies in the next MGRS tile of the datatake: the same pixel again,
                # that granule's own time_start a few seconds later.
                twin = {**props, "index": granule_index(ms[i], 1), "t": int(ms[i]) + 3000}
                feats.append({"type": "Feature", "geometry": None, "id": f"{int(ms[i])}_{i}b", "properties": twin})
        with self._lock:
            self._cache[key] = feats
        return feats

    def _log_request(self) -> None:
        with self._lock:
            self.started.append(time.monotonic())
        if self.log_path:
            with self._lock, open(self.log_path, "a") as f:
                f.write(f"{os.getpid()} {time.time():.6f}\n")

    def _error(self, status: int, message: str):
        return self._json(status, {"error": {"code": status, "message": message,
                                             "status": STATUS_NAMES.get(status, "UNKNOWN")}})

    @staticmethod
    def _json(status: int, payload: dict):
        return httplib2.Response({"status": status, "content-type": "application/json"}), \
            json.dumps(payload).encode()


def burst(status: int, message: str, first: int, last: int):
    """A rule failing requests number `first` … `last` (from 1)."""
    return lambda info: (status, message) if first <= info["n"] <= last else None


def for_point(point_id: str, status: int, message: str):
    """A rule failing every request that contains `point_id`."""
    return lambda info: (status, message) if point_id in info["point_ids"] else None


def larger_than(max_points: int, status: int, message: str):
    """A rule failing every request with more than `max_points` points."""
    return lambda info: (status, message) if len(info["point_ids"]) > max_points else None


def service_account_key(path, email: str = "s2mos-test@fake-project.iam.gserviceaccount.com") -> str:
    """Write a service-account key file with a fresh RSA key; returns its private key text."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": "fake-project",
                                "private_key_id": "0123456789abcdef", "private_key": pem,
                                "client_email": email, "client_id": "1",
                                "token_uri": "https://oauth2.googleapis.com/token"}))
    return pem


def sample_points(frame: pd.DataFrame) -> list[SamplePoint]:
    return [SamplePoint(str(r.point_id), float(r.lat), float(r.lon), float(r.clay)) for r in frame.itertuples()]


def np_equal_frames(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    """Two observation tables hold the same rows (same order), NaN/NA equal to NaN/NA."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    for c in a.columns:
        x, y = a[c].to_numpy(dtype=object), b[c].to_numpy(dtype=object)
        if not all((pd.isna(u) and pd.isna(v)) or u == v for u, v in zip(x, y)):
            return False
    return True


# ---- fixtures (imported by the test modules) ------------------------------------------------

@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ee_key") / "service-account.json"
    private_key = service_account_key(path)
    return path, private_key


@pytest.fixture()
def fake(monkeypatch, key_file):
    """A fresh fake Earth Engine behind the real client; ADC = the generated key file."""
    import ee
    from s2mos_transforms.sources import ee_session
    world = FakeEarthEngine("quick")
    monkeypatch.setattr(ee.deprecation, "_FetchDataCatalogStac", lambda: {})   # no network at start-up
    monkeypatch.setattr(ee_session, "HTTP_TRANSPORT", lambda: world)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file[0]))
    ee_session.reset()
    yield world
    ee_session.reset()


@pytest.fixture(scope="module")
def world():
    return SyntheticSource("quick")
