"""The `earthengine` source, offline: the real ``ee`` client (request encoding, paging, error
translation, OAuth with a service-account key) over a fake transport at the HTTP boundary
(tests/ee_fake.py) that answers from the embedded world as Earth Engine would encode it."""
from __future__ import annotations

import argparse
import gzip
import json
import struct
import threading

import numpy as np
import pandas as pd
import pytest

import ee_fake
from pipelines.cli import main
from s2mos_transforms import bands, sources
from s2mos_transforms.sources import ee_faults, ee_requests, ee_session
from s2mos_transforms.sources.earthengine import EarthEngineSource
from s2mos_transforms.sources.synthetic import SyntheticSource


@pytest.fixture(scope="module")
def key_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ee_key") / "service-account.json"
    private_key = ee_fake.service_account_key(path)
    return path, private_key


@pytest.fixture()
def fake(monkeypatch, key_file):
    """A fresh fake Earth Engine behind the real client; ADC = the generated key file."""
    import ee
    world = ee_fake.FakeEarthEngine("quick")
    monkeypatch.setattr(ee.deprecation, "_FetchDataCatalogStac", lambda: {})   # no network at start-up
    monkeypatch.setattr(ee_session, "HTTP_TRANSPORT", lambda: world)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file[0]))
    ee_session.reset()
    yield world
    ee_session.reset()


@pytest.fixture(scope="module")
def world():
    return SyntheticSource("quick")


@pytest.fixture(scope="module")
def points(world):
    return ee_fake.sample_points(world.sample_points(24))


def _source(**kw) -> EarthEngineSource:
    kw.setdefault("backoff_s", 0.001)
    return EarthEngineSource("s2mos-test-project", **kw)


# ---- the registry and the options ------------------------------------------------------------

def test_registered_for_points_and_tiles():
    plugin = sources.get_plugin("earthengine", sources.TILES)
    assert plugin.serves == {sources.POINTS, sources.TILES}


def _parse(argv):
    parser = argparse.ArgumentParser()
    sources.add_source_arguments(parser, sources.POINTS)
    return parser.parse_args(argv)


def test_options_are_plain_and_checked(key_file):
    args = _parse(["--source", "earthengine", "--ee-project", "p1", "--ee-credentials", str(key_file[0])])
    name, options = sources.resolve_source(args, sources.POINTS)
    assert name == "earthengine"
    assert json.loads(json.dumps(options)) == options                 # plain, JSON-able
    assert options["credentials"] == str(key_file[0]) and options["endpoint"] == "highvolume"
    assert key_file[1] not in json.dumps(options)
    with pytest.raises(sources.SourceError, match="needs --ee-project"):
        sources.resolve_source(_parse(["--source", "earthengine"]), sources.POINTS)
    with pytest.raises(sources.SourceError, match="--ee-max-inflight must be between 1 and 100"):
        sources.resolve_source(_parse(["--source", "earthengine", "--ee-project", "p", "--ee-max-inflight", "0"]),
                               sources.POINTS)
    with pytest.raises(sources.SourceError, match="--ee-end 2018-01-01 is before --ee-start 2019-01-01"):
        sources.resolve_source(_parse(["--source", "earthengine", "--ee-project", "p", "--ee-start", "2019-01-01",
                                       "--ee-end", "2018-01-01"]), sources.POINTS)
    with pytest.raises(sources.SourceError, match="--ee-project is a flag of the 'earthengine' source"):
        sources.resolve_source(_parse(["--ee-project", "p"]), sources.POINTS)


def test_bad_key_file_is_one_line_without_the_key(tmp_path, monkeypatch):
    monkeypatch.setattr(ee_session, "HTTP_TRANSPORT", lambda: ee_fake.FakeEarthEngine("quick"))
    ee_session.reset()
    secret = "-----BEGIN PRIVATE KEY-----\nNOTAKEY\n-----END PRIVATE KEY-----\n"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "service_account", "private_key": secret, "client_email": "x@y"}))
    with pytest.raises(sources.SourceError) as err:
        EarthEngineSource("p", credentials=str(bad))
    assert str(bad) in str(err.value) and "NOTAKEY" not in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(sources.SourceError, match="no such key file"):
        EarthEngineSource("p", credentials=str(tmp_path / "missing.json"))
    ee_session.reset()


def test_build_dataset_without_credentials_is_one_line_before_any_work(quick_world, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nowhere.json"))
    ee_session.reset()
    code = main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", str(tmp_path / "ds"),
                 "--source", "earthengine", "--ee-project", "p"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("s2mos: error: --ee-credentials adc: no Application Default Credentials found")
    assert not (tmp_path / "ds").exists()


# ---- the observations equal the world's, through the real client -----------------------------

def test_observations_equal_the_synthetic_world_and_requests_are_right(fake, world, points):
    points = points[:12] + [dataclass_moved(points[0], i) for i in range(1, 7)]     # a cluster of 7
    src = _source(points_per_request=4, page_size=100)
    got = src.observations(points)
    want = world.observations(points)
    assert list(got.dtypes) == list(want.dtypes)
    assert ee_fake.np_equal_frames(got, want)
    assert str(got["datetime"].dt.tz) == "UTC"

    reqs = fake.requests
    s2 = [r for r in reqs if r["sensor"] == bands.SENSOR_S2]
    s1 = [r for r in reqs if r["sensor"] == bands.SENSOR_S1]
    assert s2 and s1
    for r in s2:
        assert r["asked"]["collections"] == ["COPERNICUS/S2_SR_HARMONIZED"]
        assert r["asked"]["select"] == [list(bands.S2_BANDS) + ["SCL"]]
        assert r["asked"]["dates"] == [("2017-03-28", "2020-01-01")]          # --ee-end inclusive
    for r in s1:
        assert r["asked"]["collections"] == ["COPERNICUS/S1_GRD"]
        assert r["asked"]["select"] == [["VV", "VH", "angle"]]
        assert sorted(r["asked"]["filters"]) == [
            ("Filter.equals", "instrumentMode", "IW"),
            ("Filter.listContains", "transmitterReceiverPolarisation", "VH"),
            ("Filter.listContains", "transmitterReceiverPolarisation", "VV")]
    for r in reqs:
        # Many points per request, grouped by place: at most 4, all in one cell.
        assert 1 <= len(r["point_ids"]) <= 4
        assert r["asked"]["dates"] == [("2017-03-28", "2020-01-01")]          # --ee-end inclusive
        cells = {_cell(lat, lon) for _, lon, lat in r["asked"]["points"]}
        assert len(cells) == 1
        assert r["uri"].startswith("https://earthengine-highvolume.googleapis.com/")
        assert "/projects/s2mos-test-project/table:computeFeatures" in r["uri"]
        assert r["headers"]["authorization"] == "Bearer fake-access-token"
        assert int(r["body"]["pageSize"]) == 100
    # Every point asked once per sensor (pages of the same request aside).
    firsts = [r for r in reqs if "pageToken" not in r["body"]]
    assert sorted(p for r in firsts for p in r["point_ids"]) == sorted([p.point_id for p in points] * 2)
    assert max(len(r["point_ids"]) for r in firsts) == 4                  # the cluster: 4 + 3
    assert len(reqs) > len(firsts)                                         # pages of 100 features
    assert src.counters.totals["ee_requests"] == len(reqs) == src.counters.totals["ee_pages"]
    assert src.counters.totals["ee_retries"] == 0 and src.counters.totals["ee_bytes"] > 0
    assert fake.token_requests == 1                                        # one OAuth token, reused


def test_standard_endpoint(fake, points):
    _source(endpoint="standard").observations(points[:2])
    assert all(r["uri"].startswith("https://earthengine.googleapis.com/") for r in fake.requests)


# ---- faults -------------------------------------------------------------------------------------

def test_a_429_burst_is_retried_and_nothing_is_lost(fake, world, points):
    fake.faults.append(ee_fake.burst(429, "Too many concurrent aggregations.", 1, 3))
    src = _source(max_inflight=1)
    got = src.observations(points[:6])
    assert ee_fake.np_equal_frames(got, world.observations(points[:6]))
    assert src.counters.totals["ee_retries"] == 3
    assert src.counters.totals["ee_failed_requests"] == 3


def test_5xx_gives_up_after_the_limit_with_the_reason(fake, points):
    fake.faults.append(ee_fake.for_point(points[0].point_id, 503, "The service is currently unavailable."))
    src = _source(max_retries=2)
    with pytest.raises(sources.SourceError, match="HTTP 503: The service is currently unavailable.*gave up after 3 attempts"):
        src.observations([points[0]])


def test_a_permanent_404_rejects_its_points_and_keeps_the_others(fake, world, points):
    bad = points[3].point_id
    fake.faults.append(ee_fake.for_point(bad, 404, "Image.load: Image asset 'x' not found."))
    src = _source(points_per_request=1)
    with pytest.raises(sources.SourceError, match=f"failed for 1 of {len(points)} points"):
        src.observations(points)
    n = len(fake.requests)
    # build-dataset then asks point by point: answered from that batch, no new request.
    with pytest.raises(sources.SourceError, match="HTTP 404: Image.load: Image asset 'x' not found"):
        src.observations([points[3]])
    good = [p for p in points if p.point_id != bad]
    assert ee_fake.np_equal_frames(src.observations(good[:5]), world.observations(good[:5]))
    assert len(fake.requests) == n
    assert src.counters.totals["ee_retries"] == 0                          # a 404 is not retried


def test_oversize_requests_are_split_until_they_pass(fake, world, points):
    cell = [p for p in points if _cell(p.lat, p.lon) == _cell(points[0].lat, points[0].lon)]
    group = cell + [dataclass_moved(points[0], i) for i in range(1, 8 - len(cell) + 1)]
    fake.faults.append(ee_fake.larger_than(2, 400, "User memory limit exceeded."))
    src = _source(points_per_request=8)
    got = src.observations(group)
    assert ee_fake.np_equal_frames(got, world.observations(group))
    assert src.counters.totals["ee_splits"] >= 2
    assert max(len(r["point_ids"]) for r in fake.requests) == 8           # planned as one group
    passed = {p for r in fake.requests if len(r["point_ids"]) <= 2 for p in r["point_ids"]}
    assert passed == {p.point_id for p in group}


def _cell(lat, lon):
    return np.floor(lat / ee_requests.GROUP_CELL_DEG), np.floor(lon / ee_requests.GROUP_CELL_DEG)


def dataclass_moved(p, i):
    """A neighbour of `p` (same grouping cell), a new point id."""
    import dataclasses
    half = ee_requests.GROUP_CELL_DEG / 2
    return dataclasses.replace(p, point_id=f"{p.point_id}n{i}", lat=p.lat + 0.001 * i * np.sign(half - (p.lat % (2 * half))))


def test_a_one_point_request_too_big_is_split_in_time(fake, world, points):
    fake.faults.append(lambda info: (400, "Too many values: 2000000 points x bands x images > 1048576.")
                       if info["start"] < "2018-06-01" and info["end"] > "2019-06-01" else None)
    src = _source()
    got = src.observations(points[:1])
    assert ee_fake.np_equal_frames(got, world.observations(points[:1]))
    spans = {(r["start"], r["end"]) for r in fake.requests}
    assert ("2017-03-28", "2020-01-01") in spans and len(spans) > 2


def test_computation_timed_out_is_retried_once(fake, world, points):
    fake.faults.append(ee_fake.burst(400, "Computation timed out.", 1, 1))
    src = _source(max_inflight=1)
    assert ee_fake.np_equal_frames(src.observations(points[:1]), world.observations(points[:1]))
    assert src.counters.totals["ee_retries"] == 1
    fake.faults[:] = [ee_fake.for_point(points[1].point_id, 400, "Computation timed out.")]
    again = _source(max_retries=5)
    with pytest.raises(sources.SourceError, match="HTTP 400: Computation timed out"):
        again.observations([points[1]])
    asked = [r for r in fake.requests if points[1].point_id in r["point_ids"]]
    assert len(asked) == 4 and again.counters.totals["ee_retries"] == 2   # each sensor: once, retried once


def test_a_hung_request_hits_the_deadline_and_is_retried(fake, world, points):
    import ee
    src = _source(deadline_s=120, max_inflight=1)
    assert ee.data._get_state().deadline_ms == 120_000        # the requests session's timeout
    # What the client's transport raises when that timeout passes on a hung request:
    fake.faults.append(lambda info: TimeoutError("read timed out (deadline 120 s)") if info["n"] == 1 else None)
    assert ee_fake.np_equal_frames(src.observations(points[:1]), world.observations(points[:1]))
    assert src.counters.totals["ee_retries"] == 1 and src.counters.totals["ee_failed_requests"] == 1


def test_requests_in_flight_never_exceed_the_cap(fake, points):
    fake.latency_s = 0.05
    _source(max_inflight=3, points_per_request=1).observations(points[:12])
    assert fake.max_inflight == 3


def test_cloud_score_plus_links_cs_cdf_and_masks_below_the_threshold(fake, world, points):
    src = _source(cloud_score_plus=True, cs_threshold=0.5)
    got = src.observations(points[:3])
    s2 = [r for r in fake.requests if r["sensor"] == bands.SENSOR_S2]
    assert all(r["asked"]["linked"] == [["cs_cdf"]] for r in s2)
    assert all("GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED" in r["asked"]["collections"] for r in s2)
    assert all(r["asked"]["select"] == [list(bands.S2_BANDS) + ["SCL", "cs_cdf"]] for r in s2)
    obs, state = world.observations_and_state(points[:3])
    cloudy = (state["cloud"] & (state["sensor"] == bands.SENSOR_S2)).to_numpy()
    assert cloudy.any()
    scl = got["SCL"].to_numpy(dtype=float)
    assert (scl[cloudy] == bands.SCL_CLOUD_HIGH).all()
    clear = ~cloudy & (obs["sensor"] == bands.SENSOR_S2).to_numpy()
    assert (scl[clear] == obs["SCL"].to_numpy(dtype=float)[clear]).all()


# ---- the policy itself (pure) -----------------------------------------------------------------

class _Http(Exception):
    def __init__(self, status):
        self.resp = type("R", (), {"status": status})()


def _ee_error(status, message):
    import ee
    try:
        try:
            raise _Http(status)
        except _Http:
            raise ee.EEException(message)
    except ee.EEException as err:
        return err


@pytest.mark.parametrize("status,message,kind", [
    (429, "Too many requests", ee_faults.RETRY),
    (400, "Too many concurrent aggregations.", ee_faults.RETRY),
    (403, "Quota exceeded for quota metric 'Requests'", ee_faults.RETRY),
    (500, "Internal error", ee_faults.RETRY),
    (503, "Service unavailable", ee_faults.RETRY),
    (400, "Computation timed out.", ee_faults.RETRY),
    (400, "Total request size (60000000 bytes) must be less than or equal to 50331648 bytes.", ee_faults.SPLIT),
    (400, "Too many values: 2000000 points x 11 bands x 300 images > 1048576.", ee_faults.SPLIT),
    (400, "User memory limit exceeded.", ee_faults.SPLIT),
    (400, "Collection query aborted after accumulating over 5000 elements.", ee_faults.SPLIT),
    (413, "Request payload size exceeds the limit", ee_faults.SPLIT),
    (404, "Image.load: Image asset 'X' not found.", ee_faults.PERMANENT),
    (403, "Caller does not have required permission to use project p.", ee_faults.PERMANENT),
    (400, "Image.select: Pattern 'B99' did not match any bands.", ee_faults.PERMANENT),
])
def test_classification(status, message, kind):
    assert ee_faults.classify(_ee_error(status, message)) == kind
    assert ee_faults.reason_of(_ee_error(status, message)) == f"HTTP {status}: {message}"


def test_connection_errors_are_retried():
    assert ee_faults.classify(ConnectionError("reset by peer")) == ee_faults.RETRY
    assert ee_faults.classify(TimeoutError("read timed out")) == ee_faults.RETRY


def test_backoff_has_jitter_and_a_cap():
    policy = ee_faults.RetryPolicy(backoff_s=1.0, max_backoff_s=8.0, seed=3)
    delays = [[policy.delay(k) for _ in range(200)] for k in range(6)]
    for k, d in enumerate(delays):
        assert 0.0 <= min(d) and max(d) <= min(8.0, 2.0 ** k)
        assert np.std(d) > 0.1                                           # jitter, not a fixed wait
    assert np.mean(delays[5]) > np.mean(delays[0])


def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept = []
    limiter = ee_faults.RateLimiter(4.0, clock=lambda: now[0], sleep=lambda s: slept.append(s))
    for _ in range(5):
        limiter.wait()
    assert slept == pytest.approx([0.25, 0.5, 0.75, 1.0])


def test_request_plan_is_sized_and_grouped(points):
    import datetime as dt
    plan = ee_requests.plan_requests(points, dt.date(2017, 3, 28), dt.date(2020, 1, 1), 5)
    assert {r.sensor for r in plan} == {bands.SENSOR_S2, bands.SENSOR_S1}
    assert all(r.estimated_values() <= ee_requests.MAX_VALUES and len(r.points) <= 5 for r in plan)
    many = [dataclass_moved(points[0], i) for i in range(1, 400)]
    plan = ee_requests.plan_requests(many, dt.date(2017, 3, 28), dt.date(2020, 1, 1), 400)
    assert len(plan) > 2 and all(r.estimated_values() <= ee_requests.MAX_VALUES for r in plan)
    assert sum(len(r.points) for r in plan if r.sensor == bands.SENSOR_S2) == len(many)


# ---- through build-dataset: same TFRecords as the synthetic source --------------------------

def _records(directory) -> dict[str, list[bytes]]:
    """Every TFRecord of a dataset directory, per file, raw bytes (gzip framing undone)."""
    out = {}
    for path in sorted(directory.glob("*.tfrecord.gz")):
        data, recs, i = gzip.decompress(path.read_bytes()), [], 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i:i + 8])
            recs.append(data[i + 12:i + 12 + n])
            i += 12 + n + 4
        out[path.name] = recs
    return out


@pytest.mark.slow
def test_build_dataset_with_earthengine_equals_synthetic(fake, quick_world, key_file, tmp_path, capsys):
    samples = str(quick_world / "samples.csv")
    assert main(["build-dataset", "--samples", samples, "--out", str(tmp_path / "syn"), "--quiet"]) == 0
    bad_point = pd.read_csv(samples)["point_id"].iloc[7]
    ee_args = ["build-dataset", "--samples", samples, "--source", "earthengine", "--ee-project", "s2mos-test",
               "--ee-credentials", str(key_file[0]), "--ee-backoff", "0.001", "--quiet"]
    fake.faults.append(ee_fake.burst(429, "Too many concurrent aggregations.", 2, 4))
    assert main(ee_args + ["--out", str(tmp_path / "ee")]) == 0
    assert _records(tmp_path / "ee") == _records(tmp_path / "syn")
    summary = json.loads((tmp_path / "ee" / "summary.json").read_text())
    assert summary["inputs"]["source"] == "earthengine" and summary["inputs"]["credentials"] == str(key_file[0])
    counters = summary["beam_counters"]                       # published from the workers' DoFn threads
    assert counters["ee_requests"] == len(fake.requests) and counters["ee_retries"] == 3
    assert counters["ee_pages"] == len(fake.requests) - 3 and counters["ee_bytes"] > 0

    # A permanent 404 for one point: that point rejected with the reason, the others kept.
    fake.faults[:] = [ee_fake.for_point(bad_point, 404, "Image.load: Image asset 'x' not found.")]
    assert main(ee_args + ["--out", str(tmp_path / "ee404")]) == 0
    rejected = [json.loads(line) for line in (tmp_path / "ee404" / "rejected.jsonl").read_text().splitlines()]
    mine = [r for r in rejected if r["point_id"] == bad_point]
    assert len(mine) == 1 and mine[0]["reason"] == "source_error" and "HTTP 404" in mine[0]["detail"]
    syn_summary = json.loads((tmp_path / "syn" / "summary.json").read_text())
    ee404 = json.loads((tmp_path / "ee404" / "summary.json").read_text())
    assert ee404["rejected"] == syn_summary["rejected"] + (0 if bad_point in
                                                           _rejected_ids(tmp_path / "syn") else 1)

    # Credentials never appear: not the key, not the access token.
    out = capsys.readouterr()
    for text in (out.out, out.err, (tmp_path / "ee" / "summary.json").read_text(),
                 (tmp_path / "ee404" / "rejected.jsonl").read_text()):
        assert key_file[1].splitlines()[1] not in text and "fake-access-token" not in text


def _rejected_ids(directory) -> set[str]:
    return {json.loads(line)["point_id"] for line in (directory / "rejected.jsonl").read_text().splitlines()}


def test_source_is_thread_safe_enough_for_concurrent_batches(fake, world, points):
    """Two threads (two DoFn bundles of one worker) each with their own source object."""
    results = {}

    def run(k):
        results[k] = _source().observations(points[k * 4:(k + 1) * 4])

    threads = [threading.Thread(target=run, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        assert ee_fake.np_equal_frames(results[k], world.observations(points[k * 4:(k + 1) * 4]))


# ---- tiles: computePixels on the tile's grid ------------------------------------------------

@pytest.fixture(scope="module")
def tile():
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.world.presets import get_preset
    aoi = tiling.aoi_from_bbox(*get_preset("quick").aoi_bbox)
    tiles = tiling.tiles_for_aoi(aoi, 32)
    return tiles[len(tiles) // 2].tile


def _same_stack(a, b) -> bool:
    return all(np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), equal_nan=True)
               for f in ("s2_times", "s2", "scl", "scene_cloud_pct", "s1_times", "s1", "angle"))


def test_tile_stack_equals_the_synthetic_tile_and_requests_fit(fake, world, tile, monkeypatch):
    from s2mos_transforms.sources import ee_tiles
    # A budget of 40 S2 / 80 S1 images per request at 32 px, so the stack takes several requests.
    monkeypatch.setattr(ee_tiles, "REQUEST_BYTES_MAX", 40 * 32 * 32 * ee_tiles.S2_BYTES_PER_PIXEL)
    src = _source()
    got = src.tile_stack(tile, "2018-01-01", "2019-12-31")
    want = world.tile_stack(tile, "2018-01-01", "2019-12-31")
    assert got.s2.dtype == np.int16 and got.scl.dtype == np.uint8 and got.s1.dtype == np.float32
    assert _same_stack(got, want)

    meta = [r for r in fake.requests if r["asked"]["rect"]]                 # one per sensor
    assert sorted(r["sensor"] for r in meta) == [bands.SENSOR_S1, bands.SENSOR_S2]
    x0, y0, x1, y1 = tile.bounds
    for r in meta:
        assert r["asked"]["rect"] == [[x0, y0, x1, y1]] and r["asked"]["crs"] == [f"EPSG:{tile.epsg}"]
        assert r["asked"]["dates"] == [("2018-01-01", "2020-01-01")]
    n_s2, n_s1 = len(want.s2_times), len(want.s1_times)
    per_request = {bands.SENSOR_S2: 40, bands.SENSOR_S1: 40 * 33 // 15}
    assert len(fake.pixel_requests) == -(-n_s2 // 40) + -(-n_s1 // per_request[bands.SENSOR_S1])
    for body in fake.pixel_requests:
        asked = ee_fake.parse_expression(body["expression"])
        s2 = "COPERNICUS/S2_SR_HARMONIZED" in asked["collections"]
        assert body["fileFormat"] == "NPY" and asked["to_bands"]
        assert body["grid"] == {"crsCode": f"EPSG:{tile.epsg}",
                                "affineTransform": {"scaleX": 10.0, "shearX": 0.0, "translateX": tile.x_min,
                                                    "shearY": 0.0, "scaleY": -10.0, "translateY": tile.y_max},
                                "dimensions": {"width": 32, "height": 32}}
        ids = asked["in_list"][0][1]
        assert asked["in_list"][0][0] == "system:index"
        assert asked["select"] == [list(bands.S2_BANDS) + ["SCL"]] if s2 else [["VV", "VH", "angle"]]
        per_px = ee_tiles.S2_BYTES_PER_PIXEL if s2 else ee_tiles.S1_BYTES_PER_PIXEL
        assert len(ids) * 32 * 32 * per_px <= ee_tiles.REQUEST_BYTES_MAX       # bands + mask bytes
        assert asked["unmask"] == ([0] if s2 else [ee_tiles.S1_FILL])           # masks explicit
    assert src.counters.totals["ee_bytes"] > 0


def test_an_oversize_pixel_request_is_halved(fake, world, tile):
    fake.pixel_faults.append(lambda body: (400, "Total request size (60000000 bytes) must be less than or equal "
                                                "to 50331648 bytes.")
                             if len(ee_fake.parse_expression(body["expression"])["in_list"][0][1]) > 50 else None)
    src = _source()
    assert _same_stack(src.tile_stack(tile, "2018-01-01", "2019-12-31"),
                       world.tile_stack(tile, "2018-01-01", "2019-12-31"))
    assert src.counters.totals["ee_splits"] >= 2


def test_a_permanent_pixel_error_names_the_tile(fake, tile):
    fake.pixel_faults.append(lambda body: (403, "Permission denied on asset COPERNICUS/S1_GRD."))
    with pytest.raises(sources.SourceError, match=f"tile {tile.name}: Earth Engine: HTTP 403: Permission denied"):
        _source().tile_stack(tile, "2018-01-01", "2019-12-31")


@pytest.mark.slow
def test_predict_map_with_earthengine_equals_synthetic(fake, key_file, tmp_path):
    import rasterio

    import test_map_fixtures as fx
    bbox, names = fx.small_aoi_bbox(32)
    common = ["predict-map", "--model-dir", fx.ensemble_dir(), "--bbox", *map(str, bbox), "--tile-size", "32",
              "--start", "2018-01-01", "--end", "2019-12-31", "--no-report"]
    ee_flags = ["--source", "earthengine", "--ee-project", "s2mos-test", "--ee-credentials", str(key_file[0]),
                "--ee-backoff", "0.001"]
    assert main(common + ["--out", str(tmp_path / "syn")]) == 0
    fake.pixel_faults.append(ee_fake.burst(503, "The service is currently unavailable.", 1, 2))
    assert main(common + ee_flags + ["--out", str(tmp_path / "ee")]) == 0
    for name in names:
        with rasterio.open(tmp_path / "syn" / "tiles" / f"{name}.tif") as a, \
                rasterio.open(tmp_path / "ee" / "tiles" / f"{name}.tif") as b:
            assert a.transform == b.transform and a.crs == b.crs
            assert np.array_equal(a.read(), b.read(), equal_nan=True)
            assert (b.read(1) != b.nodata).any()                             # a real map, not nodata
    assert len(fake.pixel_requests) >= 2 * len(names) + 2                   # the 503 burst was retried
    settings = (tmp_path / "ee" / "map_settings.json").read_text()
    assert "earthengine" in settings and key_file[1].splitlines()[1] not in settings
    assert "fake-access-token" not in settings

    # A tile Earth Engine refuses is recorded as failed with the reason; the others are written.
    bad = names[0]
    fake.pixel_faults[:] = [lambda body: (403, "Permission denied.")
                            if ee_fake.tile_of(body["grid"]["crsCode"], body["grid"]["affineTransform"]["translateX"],
                                               body["grid"]["affineTransform"]["translateY"], 320).name == bad
                            else None]
    main(common + ee_flags + ["--out", str(tmp_path / "ee403")])
    records = {r["tile"]: r for r in map(json.loads, (tmp_path / "ee403" / "tiles.jsonl").read_text().splitlines())}
    assert records[bad]["status"] == "failed" and "HTTP 403: Permission denied" in records[bad]["reason"]
    assert all(records[n]["status"] == "written" for n in names if n != bad)
