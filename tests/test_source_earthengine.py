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
from ee_fake import fake, key_file, world  # noqa: F401 — fixtures
from pipelines.cli import main
from s2mos_transforms import bands, sources
from s2mos_transforms.sources import ee_requests, ee_session
from s2mos_transforms.sources.earthengine import EarthEngineSource


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


@pytest.mark.slow
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


@pytest.mark.slow
def test_requests_in_flight_never_exceed_the_cap(fake, points):
    fake.latency_s = 0.2        # long enough for the cap to fill on a loaded machine (0.05 s did not always)
    _source(max_inflight=3, points_per_request=1).observations(points[:12])
    assert fake.max_inflight == 3
    # Two DoFn instances (threads) of one worker process share the cap.
    fake.max_inflight = 0
    threads = [threading.Thread(target=_source(max_inflight=2, points_per_request=1).observations,
                                args=(points[k * 6:(k + 1) * 6],)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.max_inflight == 2


def test_cloud_score_plus_links_cs_cdf_and_masks_below_the_threshold(fake, world, points):
    src = _source(cloud_score_plus=True, cs_threshold=0.5)
    got = src.observations(points[:3])
    s2 = [r for r in fake.requests if r["sensor"] == bands.SENSOR_S2]
    assert all(r["asked"]["linked"] == [["cs_cdf"]] for r in s2)
    assert all("GOOGLE/CLOUD_SCORE_PLUS/V1/S2_HARMONIZED" in r["asked"]["collections"] for r in s2)
    assert all(r["asked"]["select"] == [list(bands.S2_BANDS) + ["SCL"], ["cs_cdf"]] for r in s2)
    assert all(r["asked"]["unmask"] == [-1] for r in s2)               # a masked cs_cdf keeps the sample
    obs, state = world.observations_and_state(points[:3])
    cloudy = (state["cloud"] & (state["sensor"] == bands.SENSOR_S2)).to_numpy()
    assert cloudy.any()
    scl = got["SCL"].to_numpy(dtype=float)
    assert (scl[cloudy] == bands.SCL_CLOUD_HIGH).all()
    clear = ~cloudy & (obs["sensor"] == bands.SENSOR_S2).to_numpy()
    assert (scl[clear] == obs["SCL"].to_numpy(dtype=float)[clear]).all()


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


@pytest.mark.slow
def test_the_plan_matches_the_requests_sent_and_sends_nothing(fake, quick_world, capsys):
    import datetime as dt

    from s2mos_transforms.sources import ee_plan
    frame = pd.read_csv(quick_world / "samples.csv").head(30)
    pts = ee_fake.sample_points(frame)
    summary, _ = ee_plan.plan_summary(pts, dt.date(2017, 3, 28), dt.date(2019, 12, 31), 5)
    src = _source(points_per_request=5)
    got = src.observations(pts)
    firsts = [r for r in fake.requests if "pageToken" not in r["body"]]
    for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
        plan = summary["sensors"][sensor]
        assert plan["requests"] == sum(r["sensor"] == sensor for r in firsts)
        rows = int((got["sensor"] == sensor).sum())
        assert rows / 3 <= plan["estimated_rows"] <= rows * 3                 # the volume, roughly

    # The command: the plan and the serialized expressions, and no computation requested.
    fake.requests.clear()
    samples = str(quick_world / "samples.csv")
    assert ee_plan.main(["--samples", samples, "--show-expression", "--ee-project", "p"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["points"] == len(pd.read_csv(samples)) and printed["requests"] > 0
    assert "COPERNICUS/S2_SR_HARMONIZED" in json.dumps(printed["first_expressions"]["S2"])
    assert "COPERNICUS/S1_GRD" in json.dumps(printed["first_expressions"]["S1"])
    assert fake.requests == []
    assert ee_plan.main(["--samples", samples, "--show-expression"]) == 2
    assert capsys.readouterr().err.strip() == "s2mos: error: --show-expression needs --ee-project"


def test_overlapping_granules_give_one_observation_per_acquisition(fake, world, points):
    """Where two MGRS tiles of a datatake overlap, Earth Engine samples the point twice (two
    granule images, time_starts seconds apart): one observation, at the datatake's time."""
    fake.overlap_every = 3
    got = _source().observations(points[:4])
    assert ee_fake.np_equal_frames(got, world.observations(points[:4]))
    served = [f["properties"] for feats in fake._cache.values() for f in feats if f["properties"].get("index")]
    assert sum(p["index"].endswith("TCK") for p in served) > 0                # the twins were served
