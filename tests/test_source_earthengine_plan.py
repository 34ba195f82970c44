"""predict-map --dry-run with the `earthengine` source: the Earth Engine requests the map would
send (the first tiles' grids and serialized expressions, request counts and answer volume for
every tile) through the plugin's `plan_tiles` hook, with no computation requested and no
credential printed; the listed expressions are the ones the job sends."""
from __future__ import annotations

import json

import pytest

import ee_fake
from ee_fake import fake, key_file  # noqa: F401 — fixtures
from pipelines.cli import main
from s2mos_transforms import bands
from s2mos_transforms.grid import Tile
from s2mos_transforms.sources import ee_tiles
from s2mos_transforms.sources.earthengine import EarthEngineSource

S2, S1 = "COPERNICUS/S2_SR_HARMONIZED", "COPERNICUS/S1_GRD"


def _dry_run(capsys, key_file, bbox, *extra) -> tuple[str, dict, str]:
    code = main(["predict-map", "--bbox", *map(str, bbox), "--tile-size", "32", "--start", "2018-01-01",
                 "--end", "2019-12-31", "--dry-run", "--source", "earthengine", "--ee-project", "s2mos-test",
                 "--ee-credentials", str(key_file[0]), *extra])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out, json.loads(out[out.index("\n{") + 1:]), err


def test_dry_run_lists_the_requests_and_sends_none(fake, key_file, capsys):
    import test_map_fixtures as fx
    bbox, names = fx.small_aoi_bbox(32)
    out, plan, err = _dry_run(capsys, key_file, bbox, "--cloud-score-plus")
    assert plan["tiles"] == len(names) == 4 and plan["cloud_score_plus"]
    assert "earthengine requests (none sent):" in out
    assert fake.requests == [] and fake.pixel_requests == []                 # nothing computed
    s2, s1 = plan["sensors"][bands.SENSOR_S2], plan["sensors"][bands.SENSOR_S1]
    for s in (s2, s1):
        assert s["metadata_requests"] == 1 and s["pixel_requests"] >= 1 and s["estimated_bytes"] > 0
        assert 0 < s["largest_request_bytes"] <= ee_tiles.REQUEST_BYTES_MAX
        assert s["requests_per_tile"] == s["metadata_requests"] + s["pixel_requests"]
    assert s2["images_per_pixel_request"] == ee_tiles.images_per_request(Tile(32634, 0, 0, 32), bands.SENSOR_S2, True)
    assert plan["requests"] == 4 * plan["requests_per_tile"]
    assert "upper bounds" in plan["note"] and "ee_images_skipped" in plan["note"]   # a map skips unusable images
    listed = plan["first_tiles"]
    assert len(listed) == 2 and all(t["tile"] in names for t in listed)
    for t in listed:
        e = t["expressions"]
        assert t["grid"]["dimensions"] == {"width": 32, "height": 32} and t["grid"]["crsCode"].startswith("EPSG:")
        assert S2 in ee_fake.parse_expression(e["S2"]["metadata"])["collections"]
        assert S1 in ee_fake.parse_expression(e["S1"]["metadata"])["collections"]
        s2_pix = ee_fake.parse_expression(e["S2"]["pixels"]["expression"])
        assert s2_pix["linked"] == [["cs_cdf"]] and s2_pix["to_bands"]                   # Cloud Score+ on tiles
        assert e["S2"]["pixels"]["fileFormat"] == "NPY" and e["S2"]["pixels"]["grid"] == t["grid"]
        assert s2_pix["dates"] == [("2018-01-01", "2020-01-01")]
    # No credential anywhere in what the dry run printed.
    for text in (out, err):
        assert key_file[1].splitlines()[1] not in text and "fake-access-token" not in text
        assert "PRIVATE KEY" not in text


def test_the_listed_expressions_are_those_the_job_sends(fake, key_file, capsys, monkeypatch):
    import test_map_fixtures as fx
    # A budget of 20 S2 images per request, so a tile takes several pixel requests.
    monkeypatch.setattr(ee_tiles, "REQUEST_BYTES_MAX", 20 * 32 * 32 * ee_tiles.S2_BYTES_PER_PIXEL)
    bbox, _ = fx.small_aoi_bbox(32)
    _, plan, _ = _dry_run(capsys, key_file, bbox)
    first = plan["first_tiles"][0]
    grid = first["grid"]
    aff = grid["affineTransform"]
    tile = ee_fake.tile_of(grid["crsCode"], aff["translateX"], aff["translateY"], 32 * aff["scaleX"])
    assert tile.name == first["tile"]
    stack = EarthEngineSource("s2mos-test", backoff_s=0.001).tile_stack(tile, "2018-01-01", "2019-12-31")
    # The images per tile are estimated from the dates (typical revisits, not this world's):
    # within a factor 3 of the world's.
    for sensor, times in ((bands.SENSOR_S2, stack.s2_times), (bands.SENSOR_S1, stack.s1_times)):
        assert len(times) / 3 <= plan["sensors"][sensor]["estimated_images"] <= len(times) * 3
    sent_meta = {r["sensor"]: r["body"]["expression"] for r in fake.requests}
    for sensor in (bands.SENSOR_S2, bands.SENSOR_S1):
        assert sent_meta[sensor] == first["expressions"][sensor]["metadata"]        # the very same graph
        listed = ee_fake.parse_expression(first["expressions"][sensor]["pixels"]["expression"])
        sent = [b for b in fake.pixel_requests
                if (S2 if sensor == bands.SENSOR_S2 else S1) in ee_fake.parse_expression(b["expression"])["collections"]]
        assert sent and all(b["grid"] == grid for b in sent)
        for body in sent:
            got = ee_fake.parse_expression(body["expression"])
            assert {k: v for k, v in got.items() if k != "in_list"} == {k: v for k, v in listed.items() if k != "in_list"}
        # So is the number of pixel requests.
        est = plan["sensors"][sensor]["pixel_requests"]
        assert est / 3 <= len(sent) <= est * 3 and len(sent) > 1


@pytest.mark.slow
def test_a_continental_dry_run_counts_and_lists_a_few(fake, key_file, capsys):
    out, plan, _ = _dry_run(capsys, key_file, (-9, 36, 27, 60), "--tile-size", "256")
    assert plan["tiles"] > 1_000_000 and len(plan["first_tiles"]) == 2
    assert plan["requests"] == plan["tiles"] * plan["requests_per_tile"]
    assert len(out) < 200_000 and fake.requests == [] and fake.pixel_requests == []


def test_build_dataset_dry_run_prints_the_key_path_never_the_key(fake, quick_world, key_file, capsys):
    code = main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", "never",
                 "--source", "earthengine", "--ee-project", "s2mos-test", "--ee-credentials", str(key_file[0]),
                 "--dry-run", "--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    out, err = capsys.readouterr()
    assert code == 0
    plan = json.loads(out[out.index("\n") + 1:])
    assert plan["source_options"]["credentials"] == str(key_file[0])
    assert plan["source_options"]["worker_processes"] == 2                   # the job-wide rate's share
    secret = json.loads(key_file[0].read_text())
    for text in (out, err):
        assert all(line not in text for line in key_file[1].splitlines()[1:-1])
        assert secret["private_key_id"] not in text and "fake-access-token" not in text
