"""build-dataset --dry-run: the plan of a build (points, batches, the source's requests), with
nothing requested from the source and nothing written."""
from __future__ import annotations

import json

from pipelines.cli import main


def _plan(out: str) -> dict:
    return json.loads(out[out.index("\n") + 1:])


def test_dry_run_plans_without_work(quick_world, tmp_path, capsys):
    out = tmp_path / "never"
    assert main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", str(out),
                 "--batch-size", "50", "--dry-run"]) == 0
    plan = _plan(capsys.readouterr().out)
    assert plan["valid_points"] == plan["input_points"] == 120 and plan["batches"] == 3
    assert plan["source"] == "synthetic" and "source_plan" not in plan
    assert not out.exists()


def test_earthengine_dry_run_lists_the_requests_and_sends_none(quick_world, tmp_path, capsys):
    """No credentials and no network here: a build would fail at once; the plan needs neither."""
    out = tmp_path / "never"
    assert main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", str(out),
                 "--source", "earthengine", "--ee-project", "my-project", "--ee-start", "2018-01-01",
                 "--ee-end", "2018-12-31", "--ee-points-per-request", "25", "--dry-run"]) == 0
    plan = _plan(capsys.readouterr().out)
    ee = plan["source_plan"]
    assert plan["source_options"]["project"] == "my-project" and ee["points"] == 120
    for sensor in ("S2", "S1"):
        s = ee["sensors"][sensor]
        assert s["requests"] >= 120 // 25 and s["points_per_request"]["max"] <= 25 and s["estimated_bytes"] > 0
    assert ee["requests"] == ee["sensors"]["S2"]["requests"] + ee["sensors"]["S1"]["requests"]
    assert not out.exists()
