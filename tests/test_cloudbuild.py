"""cloudbuild.yaml: substitutions declared and used, every file it names exists, every command it
runs parses with the real parsers (s2mos, the Flex Templates' metadata and the stages' CLIs,
the Vertex job built offline), one image throughout; deploy/wait_job.sh fails the build on a
failed job or a timeout (run against a stand-in `gcloud` that plays back job states)."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from pipelines import cli

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
BUILTINS = {"PROJECT_ID": "demo-project", "BUILD_ID": "0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b",
            "PROJECT_NUMBER": "123456789012", "LOCATION": "europe-west4"}
SUB = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def leaves(obj) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in leaves(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in leaves(v)]
    return [str(obj)]


def used(texts: list[str]) -> set[str]:
    return {a or b for t in texts for a, b in SUB.findall(t.replace("$$", ""))}


def resolve(text: str) -> str:
    """The text as Cloud Build runs it: user substitutions at their defaults (which may use
    built-ins: dynamicSubstitutions), built-ins at example values."""
    values = {**BUILTINS, **{k: str(v) for k, v in CONFIG["substitutions"].items()}}
    for _ in range(5):
        text = SUB.sub(lambda m: values[m.group(1) or m.group(2)], text)
    assert "$" not in text, text
    return text


def steps() -> dict[str, dict]:
    return {s["id"]: s for s in CONFIG["steps"]}


def commands(step: dict) -> list[list[str]]:
    """The commands a step runs: its entrypoint + args, or each command of a `bash -c` line
    (split at &&, ; and redirections)."""
    args = [resolve(a) for a in step.get("args", [])]
    if step.get("entrypoint") == "bash" and args[:1] == ["-c"]:
        out, cur = [], []
        for tok in shlex.split(args[1]):
            if tok in ("&&", ";", "|"):
                out.append(cur)
                cur = []
            elif tok == ">":
                out.append(cur)
                cur = None
            elif cur is not None:
                cur.append(tok)
        if cur:
            out.append(cur)
        return [c for c in out if c]
    return [[step.get("entrypoint", "")] + args if step.get("entrypoint") else args]


def flex_main():
    """deploy/flex_main.py, the templates' entry in the image."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("flex_main", ROOT / "deploy" / "flex_main.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def image() -> str:
    return resolve("${_REGION}-docker.pkg.dev/${PROJECT_ID}/${_AR_REPO}/s2mos:${_IMAGE_TAG}")


def test_substitutions_are_declared_and_used():
    declared = set(CONFIG["substitutions"])
    assert all(re.fullmatch(r"_[A-Z0-9_]+", k) for k in declared), declared
    in_steps = used(leaves(CONFIG["steps"]))
    in_values = used(leaves(CONFIG["substitutions"]))
    assert (in_steps | in_values) - declared <= set(BUILTINS), (in_steps | in_values) - declared - set(BUILTINS)
    assert declared <= in_steps, f"declared, never used: {declared - in_steps}"
    assert CONFIG["options"]["dynamicSubstitutions"] is True        # values use ${PROJECT_ID} / ${BUILD_ID}
    for step in CONFIG["steps"]:
        for arg in step.get("args", []):
            resolve(arg)                                            # every reference resolves


def test_every_file_it_names_exists():
    named = set()
    for step in CONFIG["steps"]:
        for cmd in commands(step):
            for tok in cmd:
                value = tok.split("=", 1)[1] if tok.startswith("--") and "=" in tok else tok
                if re.fullmatch(r"(deploy|tests|pipelines|trainer|s2mos_transforms)/[\w./-]+", value):
                    named.add(value)
    assert {"deploy/templates/build-dataset/metadata.json", "deploy/templates/predict-map/metadata.json",
            "deploy/wait_job.sh"} <= named
    for path in named:
        assert (ROOT / path).is_file(), path
    assert (ROOT / "Dockerfile").is_file() and commands(steps()["build-image"])[0][-1] == "."


def test_one_image_is_built_tested_pushed_and_used_everywhere():
    s = steps()
    build = s["build-image"]["args"]
    assert resolve(build[build.index("-t") + 1]) == image()
    assert resolve(build[build.index("--build-arg") + 1]) == f"S2MOS_IMAGE={image()}"
    from trainer import vertex
    latest = vertex.IMAGE_TEMPLATE.format(region=resolve("${_REGION}"), project=BUILTINS["PROJECT_ID"])
    assert latest == image().rsplit(":", 1)[0] + ":latest" and build.count("-t") == 2
    assert resolve(build[build.index("-t", build.index("-t") + 1) + 1]) == latest   # train --vertex's default
    assert [resolve(a) for a in s["push-image"]["args"]] == ["push", "--all-tags", image().rsplit(":", 1)[0]]
    assert resolve(s["test-in-image"]["name"]) == resolve(s["train-vertex"]["name"]) == image()
    for stage in ("build-dataset", "predict-map"):
        assert f"--image={image()}" in commands(s[f"template-{stage}"])[0]
    order = list(s)
    assert order.index("build-image") < order.index("test-in-image") < order.index("push-image") \
        < order.index("template-build-dataset") < order.index("run-dataset")


def test_tests_run_in_the_image_like_make_test():
    (cd, pytest_cmd) = commands(steps()["test-in-image"])
    workdir = [line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines()
               if line.startswith("WORKDIR")][-1]
    assert cd == ["cd", workdir]
    assert pytest_cmd == ["python", "-m", "pytest", "-q", "tests"]
    assert "$(BIN)/python -m pytest -q tests" in (ROOT / "Makefile").read_text()


def flag(cmd: list[str], name: str) -> str:
    (value,) = [t.split("=", 1)[1] for t in cmd if t.startswith(name + "=")]
    return value


@pytest.mark.parametrize("run_id, stage", [("run-dataset", "build-dataset"), ("run-map", "predict-map")])
def test_template_runs_pass_parameters_their_template_and_stage_accept(run_id, stage):
    s = steps()
    (run,) = commands(s[run_id])
    assert run[:4] == ["gcloud", "dataflow", "flex-template", "run"] and JOB_NAME.match(run[4]), run[4]
    built = commands(s[f"template-{stage}"])[0]
    assert built[:4] == ["gcloud", "dataflow", "flex-template", "build"]
    assert flag(built, "--sdk-language") == "PYTHON"
    assert flag(run, "--template-file-gcs-location") == built[4]
    assert flag(built, "--metadata-file") == f"deploy/templates/{stage}/metadata.json"
    meta = json.loads((ROOT / flag(built, "--metadata-file")).read_text())
    by_name = {p["name"]: p for p in meta["parameters"]}
    params = dict(kv.split("=", 1) for kv in flag(run, "--parameters").split(","))
    for name, value in params.items():
        assert name in by_name, f"{name} is not a parameter of the {stage} template"
        assert any(re.match(rx, value) for rx in by_name[name]["regexes"]), (name, value)
    assert {n for n, p in by_name.items() if not p["isOptional"]} <= set(params)
    argv = [f"--{k}={v}" for k, v in params.items()]
    args, extra = cli.build_parser().parse_known_args([stage, *argv])
    assert extra == [] and args.command == stage and args.source == "earthengine"
    # the dates of the series: points take --ee-start/--ee-end, maps their own --start/--end (README)
    dates = ("ee_start", "ee_end") if stage == "build-dataset" else ("start", "end")
    assert [str(getattr(args, d)) for d in dates] == [resolve("${_START_DATE}"), resolve("${_END_DATE}")]
    assert flex_main().pick_stage(argv) == stage


def test_the_map_reads_the_model_the_vertex_job_writes():
    s = steps()
    (train,) = commands(s["train-vertex"])
    (run_map,) = commands(s["run-map"])
    params = dict(kv.split("=", 1) for kv in flag(run_map, "--parameters").split(","))
    model_dir = train[train.index("--model-dir") + 1]
    assert params["model-dir"] == model_dir + "/model"              # AIP_MODEL_DIR = base_output_dir/model
    (run_ds,) = commands(s["run-dataset"])
    ds = dict(kv.split("=", 1) for kv in flag(run_ds, "--parameters").split(","))
    assert train[train.index("--data") + 1] == ds["out"]


def test_the_vertex_step_parses_and_builds_its_job_offline():
    (train,) = commands(steps()["train-vertex"])
    assert train[:3] == ["s2mos", "train", "--vertex"] and "--dry-run" not in train
    args = cli.build_parser().parse_args(train[1:])
    from trainer import vertex
    assert args._module is vertex
    job = vertex.job_dict(vertex.build_job(args))
    pool = job["jobSpec"]["workerPoolSpecs"][0]
    assert pool["containerSpec"]["imageUri"] == image()
    assert pool["machineSpec"]["acceleratorType"] == resolve("${_TRAIN_ACCELERATOR}")


def test_each_job_is_waited_for_with_the_id_its_run_step_wrote():
    s = steps()
    order = list(s)
    for run_id, wait_id, kind in (("run-dataset", "wait-dataset", "dataflow"), ("train-vertex", "wait-vertex", "vertex"),
                                  ("run-map", "wait-map", "dataflow")):
        line = resolve(s[run_id]["args"][1])
        written = line.rsplit(">", 1)[1].strip()
        wait = [resolve(a) for a in s[wait_id]["args"]]
        assert wait[:4] == ["deploy/wait_job.sh", kind, resolve("${_REGION}"), "@" + written]
        assert order.index(run_id) + 1 == order.index(wait_id)
    assert order.index("wait-dataset") < order.index("train-vertex") and order.index("wait-vertex") < order.index("run-map")


# deploy/wait_job.sh against a stand-in `gcloud` first on PATH: it logs its arguments and
# answers each describe with the next state of a script (ERROR: exits 1, as on a network fault).
FAKE_GCLOUD = """#!/usr/bin/env bash
echo "$*" >> "$FAKE_DIR/calls"
state=$(head -n 1 "$FAKE_DIR/states")
tail -n +2 "$FAKE_DIR/states" > "$FAKE_DIR/rest" && mv "$FAKE_DIR/rest" "$FAKE_DIR/states"
[[ -n $state ]] || state=$(cat "$FAKE_DIR/last")
echo "$state" > "$FAKE_DIR/last"
[[ $state != ERROR ]] || { echo "network unreachable" >&2; exit 1; }
echo "$state"
"""


def wait(tmp_path, states: list[str], *args: str, timeout: int = 60):
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "gcloud").write_text(FAKE_GCLOUD)
    (fake / "gcloud").chmod(0o755)
    (tmp_path / "states").write_text("\n".join(states) + "\n")
    (tmp_path / "last").write_text("")
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", FAKE_DIR=str(tmp_path))
    run = subprocess.run(["bash", str(ROOT / "deploy" / "wait_job.sh"), *args], capture_output=True, text=True,
                         env=env, timeout=timeout)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return run, calls


def test_wait_succeeds_when_the_dataflow_job_is_done(tmp_path):
    run, calls = wait(tmp_path, ["JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "ERROR", "JOB_STATE_DONE"],
                      "dataflow", "europe-west4", "2026-11-26_01_02_03-123", "600", "0")
    assert run.returncode == 0, run.stderr
    assert calls == ["dataflow jobs describe 2026-11-26_01_02_03-123 --region=europe-west4 "
                     "--format=value(currentState)"] * 4
    assert run.stdout.splitlines()[-1].endswith("dataflow job 2026-11-26_01_02_03-123: JOB_STATE_DONE")


def test_wait_fails_the_build_when_the_vertex_job_fails(tmp_path):
    job_file = tmp_path / "vertex.job"
    name = "projects/123/locations/europe-west4/customJobs/456"
    job_file.write_text(f"INFO Creating CustomJob\nView Custom Job: https://console\n{name}\n\n")
    run, calls = wait(tmp_path, ["JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_FAILED"],
                      "vertex", "europe-west4", f"@{job_file}", "600", "0")
    assert run.returncode == 1
    assert run.stderr.strip().endswith(f"vertex job {name} ended in JOB_STATE_FAILED")
    assert calls[0] == f"ai custom-jobs describe {name} --region=europe-west4 --format=value(state)"


@pytest.mark.parametrize("kind, state", [("dataflow", "JOB_STATE_CANCELLED"), ("dataflow", "JOB_STATE_DRAINED"),
                                         ("vertex", "JOB_STATE_CANCELLED"), ("vertex", "JOB_STATE_EXPIRED")])
def test_every_unsuccessful_end_fails(tmp_path, kind, state):
    run, _ = wait(tmp_path, [state], kind, "europe-west4", "job-1", "600", "0")
    assert run.returncode == 1 and state in run.stderr


def test_wait_gives_up_after_its_timeout_and_after_repeated_poll_errors(tmp_path):
    run, calls = wait(tmp_path, ["JOB_STATE_RUNNING"], "dataflow", "europe-west4", "job-1", "1", "1")
    assert run.returncode == 1 and "still JOB_STATE_RUNNING after 1s" in run.stderr and len(calls) >= 2
    (tmp_path / "errors").mkdir()
    run, calls = wait(tmp_path / "errors", ["ERROR"], "vertex", "europe-west4", "job-1", "600", "0")
    assert run.returncode == 1 and "cannot read the state" in run.stderr and len(calls) == 5


@pytest.mark.parametrize("args", [("dataproc", "europe-west4", "job-1"), ("dataflow", "europe-west4"),
                                  ("dataflow", "europe-west4", "job-1", "soon")])
def test_wait_usage_errors(tmp_path, args):
    run, calls = wait(tmp_path, ["JOB_STATE_DONE"], *args)
    assert run.returncode == 2 and run.stderr.startswith("usage:") and calls == []


def test_wait_refuses_an_empty_job_file(tmp_path):
    (tmp_path / "empty.job").write_text("\n")
    run, calls = wait(tmp_path, ["JOB_STATE_DONE"], "dataflow", "europe-west4", f"@{tmp_path / 'empty.job'}")
    assert run.returncode == 2 and "no job id" in run.stderr and calls == []
