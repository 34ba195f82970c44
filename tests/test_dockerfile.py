"""The one image (Dockerfile): Beam/Python/TensorFlow pins agree with the lock and the venv, every
file it copies exists and is not excluded by .dockerignore, and its Flex Template entry
(deploy/flex_main.py) picks the right template and runs it with the worker image flags."""
from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import importlib.util

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(path: Path):
    """A file of deploy/ as a module (deploy/ is not a package: the image runs the file)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


flex_main = _load(ROOT / "deploy" / "flex_main.py")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def lock() -> dict[str, str]:
    pins = (line.split("==") for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line)
    return {name.lower(): version.strip() for name, version in pins}


def python_version() -> str:
    """The Python the project is built for: the venv running the tests and setup.py's note agree."""
    setup = (ROOT / "setup.py").read_text()
    noted = re.search(r"\(Python (3\.[0-9]+)\)", setup).group(1)
    assert noted == f"{sys.version_info.major}.{sys.version_info.minor}", "run the tests in the project's venv"
    return noted


def test_base_images_match_the_pinned_beam_and_python():
    froms = [args for op, args in instructions() if op == "FROM"]
    py = python_version().replace(".", "")
    beam = lock()["apache-beam"]
    assert froms[-1] == f"apache/beam_python{python_version()}_sdk:{beam}"     # the image's own base
    launcher = [f for f in froms if "template-launcher-base" in f]
    assert len(launcher) == 1 and launcher[0].startswith(f"gcr.io/dataflow-templates-base/python{py}-template-"
                                                         "launcher-base")
    assert re.search(r"python_requires=\">=3\.10,<3\.13\"", (ROOT / "setup.py").read_text())


def test_tensorflow_cuda_extra_is_the_locked_version():
    runs = " ".join(args for op, args in instructions() if op == "RUN")
    (pin,) = re.findall(r'"tensorflow\[and-cuda\]==([^"]+)"', runs)
    assert pin == lock()["tensorflow"]
    assert "-r requirements.lock" in runs and "--no-deps ." in runs


def dockerignored(rel: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = rel.split("/")
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(parts[0], p) or
               (p.startswith("**/") and any(fnmatch.fnmatch(x, p[3:]) for x in parts)) for p in patterns)


def test_every_copied_file_exists_and_reaches_the_build_context():
    copies = [args.split() for op, args in instructions() if op == "COPY"]
    local = [c for c in copies if not c[0].startswith("--from=")]
    assert local, "the image copies the repository"
    for *sources, _dest in local:
        for src in sources:
            assert (ROOT / src).exists(), src
            assert src == "." or not dockerignored(src), src
    (launcher,) = [c for c in copies if c[0].startswith("--from=")]
    assert launcher[1:] == ["/opt/google/dataflow/python_template_launcher"] * 2
    # what the image needs from the context is not ignored; what must stay out is
    for needed in ("setup.py", "requirements.lock", "pipelines/cli.py", "trainer/task.py", "deploy/flex_main.py",
                   "deploy/templates/build-dataset/main.py", "deploy/templates/predict-map/main.py", "tests/conftest.py"):
        assert (ROOT / needed).exists() and not dockerignored(needed), needed
    for excluded in (".venv/bin/python", ".git/HEAD", "demo-out/map.tif", "out/x", "trainer/__pycache__/a.pyc"):
        assert dockerignored(excluded), excluded


def test_entrypoint_and_flex_template_entry():
    ops = instructions()
    assert ops[-1] == ("ENTRYPOINT", '["/opt/apache/beam/boot"]')     # Beam's worker boot, kept
    workdir = [args for op, args in ops if op == "WORKDIR"][-1]
    env = " ".join(args for op, args in ops if op == "ENV")
    py_file = re.search(r"FLEX_TEMPLATE_PYTHON_PY_FILE=(\S+)", env).group(1)
    assert py_file.startswith(workdir + "/") and (ROOT / py_file[len(workdir) + 1:]).is_file()
    assert "S2MOS_IMAGE=${S2MOS_IMAGE}" in env


def required_params(stage: str) -> list[str]:
    meta = json.loads((ROOT / "deploy" / "templates" / stage / "metadata.json").read_text())
    return [f"--{p['name']}=gs://b/x" for p in meta["parameters"] if not p["isOptional"]]


@pytest.mark.parametrize("stage", flex_main.STAGES)
def test_flex_entry_picks_the_template_from_its_parameters(stage):
    argv = required_params(stage) + ["--runner=DataflowRunner", "--temp_location=gs://b/tmp"]
    assert flex_main.pick_stage(argv) == stage
    assert (ROOT / "deploy" / "templates" / stage / "main.py").is_file()


def test_flex_entry_refuses_parameters_of_no_or_both_stages():
    with pytest.raises(SystemExit, match="cannot tell the template"):
        flex_main.pick_stage(["--out=gs://b/x", "--runner=DataflowRunner"])
    with pytest.raises(SystemExit, match="build-dataset: --samples; predict-map: --model-dir"):
        flex_main.pick_stage(["--samples=gs://b/s.csv", "--model-dir=gs://b/m"])


def test_flex_entry_points_workers_at_the_image():
    image = "europe-west4-docker.pkg.dev/p/s2mos/s2mos:abc"
    assert flex_main.worker_image_flags(["--samples=x"], {"S2MOS_IMAGE": image}) == [
        f"--sdk_container_image={image}", "--sdk_location=container"]
    assert flex_main.worker_image_flags(["--sdk_container_image=other", "--sdk_location=default"], {}) == []
    with pytest.raises(SystemExit, match="no worker image"):
        flex_main.worker_image_flags(["--samples=x"], {})


def test_flex_entry_runs_the_stage_with_the_image_flags(tmp_path):
    """The file the launcher runs, as it runs it: the stage's CLI accepts the parameters and the
    added Beam options (a dry run: nothing is written)."""
    samples = tmp_path / "samples.csv"
    samples.write_text("point_id,lat,lon,clay\np1,40.1,22.1,20\np2,40.2,22.2,31\n")
    env = dict(os.environ, S2MOS_IMAGE="europe-west4-docker.pkg.dev/p/s2mos/s2mos:abc",
               PYTHONPATH=str(ROOT))
    # --ndvi_max and --require_s1_pair as the launcher passes template parameters (snake_case)
    run = subprocess.run([sys.executable, str(ROOT / "deploy" / "flex_main.py"), f"--samples={samples}",
                          f"--out={tmp_path / 'never'}", "--ndvi_max=0.3", "--require_s1_pair=true",
                          "--dry-run", "--runner=DirectRunner"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "2 valid points of 2" in run.stdout and not (tmp_path / "never").exists()
