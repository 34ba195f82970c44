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
from pipelines.template_params import cli_argv, parameter_name

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


def stage_run(run_id: str):
    """(stage, its parsed flags, the Beam options it passes, checked by the stage's own check)."""
    from s2mos_transforms import beam_options
    (cmd,) = commands(steps()[run_id])
    assert cmd[0] == "s2mos"
    args, extra = cli.build_parser().parse_known_args(cmd[1:])
    options = beam_options.pipeline_options(extra, args.command)     # unknown Beam flags refused
    return args, options.get_all_options(), cmd


@pytest.mark.parametrize("run_id, stage", [("run-dataset", "build-dataset"), ("run-map", "predict-map")])
def test_dataflow_runs_parse_with_the_stage_and_use_the_image(run_id, stage):
    args, opts, _ = stage_run(run_id)
    assert args.command == stage and args.source == "earthengine" and args.ee_project == BUILTINS["PROJECT_ID"]
    assert opts["runner"] == "DataflowRunner" and JOB_NAME.match(opts["job_name"]), opts["job_name"]
    assert opts["sdk_container_image"] == image() and opts["sdk_location"] == "container"
    assert not opts.get("setup_file") and not opts.get("requirements_file")   # nothing staged at worker start
    assert opts["service_account_email"] == resolve("${_RUNNER_SA}")
    assert opts["temp_location"].startswith("gs://") and opts["region"] == resolve("${_REGION}")
    for path in (args.out, getattr(args, "samples", None), getattr(args, "aoi", None), getattr(args, "model_dir", None)):
        assert path is None or path.startswith("gs://"), path
    # the dates of the series: points take --ee-start/--ee-end, maps their own --start/--end (README)
    dates = ("ee_start", "ee_end") if stage == "build-dataset" else ("start", "end")
    assert [str(getattr(args, d)) for d in dates] == [resolve("${_START_DATE}"), resolve("${_END_DATE}")]


@pytest.mark.parametrize("run_id, stage", [("run-dataset", "build-dataset"), ("run-map", "predict-map")])
def test_templates_are_built_for_the_same_stage_flags(run_id, stage):
    """The templates built here take the very flags the chain's run gives (their metadata's
    parameters, values matching its regexes), and the image's entry picks that stage."""
    built = commands(steps()[f"template-{stage}"])[0]
    assert built[:4] == ["gcloud", "dataflow", "flex-template", "build"] and built[4].startswith("gs://")
    assert flag(built, "--sdk-language") == "PYTHON" and flag(built, "--image") == image()
    assert flag(built, "--metadata-file") == f"deploy/templates/{stage}/metadata.json"
    meta = json.loads((ROOT / flag(built, "--metadata-file")).read_text())
    by_name = {p["name"]: p for p in meta["parameters"]}
    args, _, cmd = stage_run(run_id)
    entry = flex_main()
    stage_flags = entry.stage_flags(stage)                  # the stage's own flags, not Beam's
    own = {parameter_name(a): v for a, v in zip(cmd[2::2], cmd[3::2]) if a in stage_flags}
    assert len(own) >= 6
    for name, value in own.items():
        assert name in by_name, f"{name} is not a parameter of the {stage} template"
        assert any(re.match(rx, value) for rx in by_name[name]["regexes"]), (name, value)
    assert {n for n, p in by_name.items() if not p["isOptional"]} <= set(own)
    # a template launch of the same job: the parameters, written back as the run's own flags
    launch = [f"--{k}={v}" for k, v in own.items()]
    assert entry.pick_stage(launch) == stage
    assert cli_argv(launch, stage_flags) == [f"{a}={v}" for a, v in zip(cmd[2::2], cmd[3::2]) if a in stage_flags]


def test_the_chain_passes_each_output_to_the_next_stage():
    s = steps()
    (train,) = commands(s["train-vertex"])
    dataset, _, _ = stage_run("run-dataset")
    mapped, _, _ = stage_run("run-map")
    assert train[train.index("--data") + 1] == dataset.out
    assert mapped.model_dir == train[train.index("--model-dir") + 1] + "/model"   # AIP_MODEL_DIR = base/model
    order = list(s)
    assert order.index("run-dataset") < order.index("train-vertex") < order.index("wait-vertex") \
        < order.index("run-map")
    assert order.index("push-image") < order.index("run-dataset")


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


def test_the_vertex_job_is_waited_for_with_the_name_its_step_wrote():
    s = steps()
    order = list(s)
    line = resolve(s["train-vertex"]["args"][1])
    written = line.rsplit(">", 1)[1].strip()
    wait = [resolve(a) for a in s["wait-vertex"]["args"]]
    assert wait[:4] == ["deploy/wait_job.sh", "vertex", resolve("${_REGION}"), "@" + written]
    assert order.index("train-vertex") + 1 == order.index("wait-vertex")
    assert all(int(t.rstrip("s")) <= int(CONFIG["timeout"].rstrip("s")) for t in
               [s[i]["timeout"] for i in ("run-dataset", "run-map")] + [wait[4] + "s"])


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
    # (one poll or more: on a loaded machine the first describe alone may outlast the 1 s)
    assert run.returncode == 1 and "still JOB_STATE_RUNNING after 1s" in run.stderr and len(calls) >= 1
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
