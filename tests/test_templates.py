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

from pipelines.template_params import cli_argv, flag_of, parameter_name

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
    option_strings = {s for a in parser._actions for s in a.option_strings}
    flags = {parameter_name(a.option_strings[-1]): a for a in parser._actions}
    names = [p["name"] for p in meta["parameters"]]
    assert len(names) == len(set(names)) and all(re.fullmatch(r"[a-z][a-z0-9_]*", n) for n in names), names
    # Every flag is a parameter or left out with a reason.
    skipped = {parameter_name(f) for f in gen.skipped(stage)}
    assert set(flags) == set(names) | skipped, "a flag is neither a parameter nor skipped"
    for param in meta["parameters"]:
        assert set(param) == {"name", "label", "helpText", "isOptional", "regexes"}, param
        assert param["label"] and param["helpText"], param["name"]
        action = flags[param["name"]]
        assert param["isOptional"] == (not action.required and param["name"] not in ("model_dir", "out")
                                       if stage == "predict-map" else not action.required)
        [regex] = param["regexes"]
        value = _sample(regex)
        # The launcher passes --NAME=VALUE; the entry writes NAME as the flag and the real
        # parser must read it so, leaving nothing that Beam would refuse.
        argv = cli_argv(REQUIRED[stage] + [f"--{param['name']}={value}"], option_strings)
        args, extra = parser.parse_known_args(argv)
        assert extra == [], (param["name"], extra)
        beam_options.pipeline_options(extra, stage)
        parsed = getattr(args, action.dest)
        assert parsed == (action.type(value) if action.type else value), param["name"]


def test_regexes_refuse_what_a_template_cannot_use():
    meta = {p["name"]: p["regexes"][0] for p in _load("predict-map")["parameters"]}
    assert not re.fullmatch(meta["out"], "/home/me/map")          # a local path means nothing on Dataflow
    assert re.fullmatch(meta["out"], "gs://my-bucket/maps/2026")
    assert not re.fullmatch(meta["start"], "2018-6-1") and re.fullmatch(meta["start"], "2018-06-01")
    assert not re.fullmatch(meta["tile_size"], "25.5") and not re.fullmatch(meta["resolution"], "ten")
    assert re.fullmatch(meta["gpu"], "nvidia-l4") and not re.fullmatch(meta["gpu"], "nvidia-l4x")
    assert re.fullmatch(meta["source"], "earthengine") and not re.fullmatch(meta["source"], "table")  # points only
    assert not re.fullmatch(meta["ee_project"], "My Project")


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


@pytest.mark.parametrize("stage", STAGES)
def test_parameter_names_never_shadow_a_beam_option(gen, stage):
    """A parameter is written back as its flag only when Beam has no option of that name, and
    Beam's options pass the translation untouched."""
    from apache_beam.options.pipeline_options import PipelineOptions
    import argparse as _argparse
    beam = _argparse.ArgumentParser()
    for cls in PipelineOptions.__subclasses__():
        cls._add_argparse_args(beam)
    beam_names = {s.lstrip("-") for a in beam._actions for s in a.option_strings}
    names = {p["name"] for p in _load(stage)["parameters"]}
    assert not names & beam_names, names & beam_names
    parser = gen.parser_for(stage)
    option_strings = {s for a in parser._actions for s in a.option_strings}
    beam_args = ["--temp_location=gs://b/tmp", "--max_num_workers=20", "--runner=DataflowRunner"]
    assert cli_argv(beam_args, option_strings) == beam_args


def test_cli_argv_writes_parameters_as_flags():
    flags = {"--ndvi-max", "--model-dir", "--out", "--require-s1-pair"}
    assert cli_argv(["--ndvi_max=0.3", "--model-dir=gs://b/m", "--out=gs://b/o", "--require_s1_pair",
                     "--job_name=x", "0.3_0"], flags) == [
        "--ndvi-max=0.3", "--model-dir=gs://b/m", "--out=gs://b/o", "--require-s1-pair", "--job_name=x", "0.3_0"]
    with pytest.raises(ValueError, match="--a-b, --a_b share the template parameter 'a_b'"):
        flag_of("a_b", {"--a-b", "--a_b"})
