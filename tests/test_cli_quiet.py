"""The `s2mos` command talks only about its own work: no library start-up noise on stderr
unless --verbose, and an unwritable output is one line, ``s2mos: error: FLAG PATH: why``, exit 2.

Every case runs the real console script in a subprocess, so what is checked is what a
person sees in a terminal (file descriptor 2, C++ writes included).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from pipelines.cli import take_verbose

EXE = os.path.join(os.path.dirname(sys.executable), "s2mos")
NOISE = re.compile(
    r"absl::InitializeLog|oneDNN|TF_ENABLE_ONEDNN_OPTS|cudart|cuInit|cuda_platform|cpu_feature_guard"
    r"|rebuild TensorFlow|^[IWEF]\d{4} \d\d:\d\d|FutureWarning|DeprecationWarning|^WARNING[: ]|Traceback")


def s2mos(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "S2MOS_QUIET")}
    return subprocess.run([EXE, *argv], capture_output=True, text=True, timeout=600, env={**clean, **(env or {})})


def noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if NOISE.search(line)]


@pytest.mark.slow
def test_world_and_build_dataset_print_no_library_noise_unless_verbose(tmp_path):
    world = s2mos("world", "export", "--preset", "quick", "--n-points", "12", "--out", str(tmp_path / "w"),
                  "--quiet")
    assert world.returncode == 0, world.stderr
    assert world.stderr == ""
    build = ["build-dataset", "--samples", str(tmp_path / "w" / "samples.csv"), "--preset", "quick",
             "--out", str(tmp_path / "ds")]
    quiet = s2mos(*build)
    assert quiet.returncode == 0, quiet.stderr
    assert "build-dataset: 12 input points" in quiet.stdout
    assert noise(quiet.stderr) == [] and quiet.stderr == ""
    # The same run with --verbose (after the command, as people type it): the libraries speak again,
    # and the outputs are the same bytes.
    first = {p: (tmp_path / "ds" / p).read_bytes() for p in ("summary.json", "split.csv", "rejected.jsonl")}
    loud = s2mos(*build, "--verbose")
    assert loud.returncode == 0, loud.stderr
    assert noise(loud.stderr), "--verbose should show TensorFlow's start-up lines"
    assert {p: (tmp_path / "ds" / p).read_bytes() for p in first} == first


def test_help_is_quiet():
    result = s2mos("predict-map", "--help")
    assert result.returncode == 0 and "--model-dir" in result.stdout
    assert result.stderr == ""
    assert "--verbose" in s2mos("--help").stdout


@pytest.fixture(scope="module")
def a_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("outs") / "a_file"
    path.write_text("not a directory")
    return str(path)


UNWRITABLE = [
    (["world", "export", "--preset", "quick", "--n-points", "3", "--out", "/proc/s2mos/x"], "--out /proc/s2mos/x"),
    (["world", "export", "--preset", "quick", "--n-points", "3", "--out", "{file}"], "--out {file}: exists and is not"),
    (["world", "preview", "--preset", "quick", "--out", "/proc/x"], "--out /proc/x"),
    (["build-dataset", "--samples", "{file}.csv", "--out", "/proc/x"], "--out /proc/x"),
    (["build-dataset", "--samples", "{file}.csv", "--out", "{file}"], "--out {file}: exists and is not"),
    (["build-dataset", "--samples", "{file}.csv", "--out", "{file}/sub"], "--out {file}/sub: {file} is a file"),
    (["tune-thresholds", "--samples", "{file}.csv", "--lab-spectra", "{file}.csv", "--json", "/proc/x.json"],
     "--json /proc/x.json: cannot write the output file"),
    (["train", "--data", "{file}", "--model-dir", "/proc/x"], "--model-dir /proc/x"),
    (["evaluate", "--data", "{file}", "--model-dir", "{file}"], "--model-dir {file}/evaluation"),
    (["evaluate", "--data", "{file}", "--model-dir", "/tmp", "--out", "{file}"], "--out {file}: exists and is not"),
    (["demo", "--out", "/proc/x"], "--out /proc/x"),
]


@pytest.mark.slow          # 11 subprocesses; the fast tier keeps test_map_pipeline's and test_build_dataset's
@pytest.mark.parametrize("argv, expected", UNWRITABLE, ids=[" ".join(a[:2]) + f"-{i}" for i, (a, _) in
                                                            enumerate(UNWRITABLE)])
def test_unwritable_output_is_one_line_exit_2(argv, expected, a_file):
    """Checked before any work: the output is refused even where the inputs would be bad too."""
    result = s2mos(*[a.format(file=a_file) for a in argv])
    lines = result.stderr.splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("s2mos: error: " + expected.format(file=a_file)), lines[0]


def test_verbose_flag_is_taken_from_anywhere_before_double_dash():
    assert take_verbose(["build-dataset", "--out", "o", "-v"]) == (True, ["build-dataset", "--out", "o"])
    assert take_verbose(["--verbose", "world", "export"]) == (True, ["world", "export"])
    assert take_verbose(["train", "--data", "d"]) == (False, ["train", "--data", "d"])
    assert take_verbose(["x", "--", "-v"]) == (False, ["x", "--", "-v"])
