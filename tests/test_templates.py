"""Flex Template metadata: both files parse, every parameter is a flag the pipeline accepts,
and the committed files are what the generator makes from the pipelines' parsers today."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATES = os.path.join(ROOT, "deploy", "templates")
STAGES = ("build-dataset", "predict-map")
SAMPLES = ["7", "0.5", "2018-06-01", "gs://s2mos-bucket/in/file.csv", "my-project-1"]
REQUIRED = {"build-dataset": ["--samples=gs://s2mos-bucket/s.csv", "--out=gs://s2mos-bucket/ds"], "predict-map": []}


def _generator():
    spec = importlib.util.spec_from_file_location("make_metadata", os.path.join(TEMPLATES, "make_metadata.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gen():
    return _generator()


def _load(stage: str) -> dict:
    with open(os.path.join(TEMPLATES, stage, "metadata.json"), encoding="utf-8") as fh:
        return json.load(fh)


def _sample(regex: str) -> str:
    """A value the regex accepts: a number, a date, a gs:// path, a project, or the first choice."""
    m = re.fullmatch(r"\^\((.*)\)\$", regex)
    candidates = SAMPLES + ([re.sub(r"\\(.)", r"\1", m.group(1).split("|")[0])] if m else [])
    for value in candidates:
        if re.fullmatch(regex, value):
            return value
    raise AssertionError(f"no sample value fits {regex}")


@pytest.mark.parametrize("stage", STAGES)
def test_committed_metadata_is_what_the_generator_makes(gen, stage):
    assert _load(stage) == json.loads(gen.render(stage)), (
        f"deploy/templates/{stage}/metadata.json is stale (a flag was added or changed): "
        "run `python deploy/templates/make_metadata.py` and commit the result")


@pytest.mark.parametrize("stage", STAGES)
def test_every_parameter_is_an_option_the_pipeline_accepts(gen, stage):
    from s2mos_transforms import beam_options
    meta = _load(stage)
    assert meta["name"] and meta["description"] and meta["parameters"]
    parser = gen.parser_for(stage)
    flags = {a.option_strings[-1].lstrip("-"): a for a in parser._actions}
    names = [p["name"] for p in meta["parameters"]]
    assert len(names) == len(set(names))
    # Every flag is a parameter or left out with a reason.
    assert set(flags) == set(names) | set(gen.skipped(stage)), "a flag is neither a parameter nor skipped"
    for param in meta["parameters"]:
        assert set(param) == {"name", "label", "helpText", "isOptional", "regexes"}, param
        assert param["label"] and param["helpText"], param["name"]
        action = flags[param["name"]]
        assert param["isOptional"] == (not action.required and param["name"] not in ("model-dir", "out")
                                       if stage == "predict-map" else not action.required)
        [regex] = param["regexes"]
        value = _sample(regex)
        # The launcher passes --NAME=VALUE; the real parser must read it as the flag, leaving
        # nothing that Beam would refuse.
        args, extra = parser.parse_known_args(REQUIRED[stage] + [f"--{param['name']}={value}"])
        assert extra == [], (param["name"], extra)
        beam_options.pipeline_options(extra, stage)
        parsed = getattr(args, action.dest)
        assert parsed == (action.type(value) if action.type else value), param["name"]


def test_regexes_refuse_what_a_template_cannot_use():
    meta = {p["name"]: p["regexes"][0] for p in _load("predict-map")["parameters"]}
    assert not re.fullmatch(meta["out"], "/home/me/map")          # a local path means nothing on Dataflow
    assert re.fullmatch(meta["out"], "gs://my-bucket/maps/2026")
    assert not re.fullmatch(meta["start"], "2018-6-1") and re.fullmatch(meta["start"], "2018-06-01")
    assert not re.fullmatch(meta["tile-size"], "25.5") and not re.fullmatch(meta["resolution"], "ten")
    assert re.fullmatch(meta["gpu"], "nvidia-l4") and not re.fullmatch(meta["gpu"], "nvidia-l4x")
    assert re.fullmatch(meta["source"], "earthengine") and not re.fullmatch(meta["source"], "table")  # points only
    assert not re.fullmatch(meta["ee-project"], "My Project")


def test_generator_check_mode_and_entry_files():
    run = subprocess.run([sys.executable, os.path.join(TEMPLATES, "make_metadata.py"), "--check"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    for stage in STAGES:
        text = open(os.path.join(TEMPLATES, stage, "main.py"), encoding="utf-8").read()
        assert f'cli.main(["{stage}", *sys.argv[1:]])' in text


def test_a_new_string_flag_must_be_classified_before_it_becomes_a_parameter(gen):
    import argparse
    action = argparse.ArgumentParser().add_argument("--colour-map")
    with pytest.raises(SystemExit, match="--colour-map has no known value kind: classify it"):
        gen._regex("predict-map", "colour-map", action)
