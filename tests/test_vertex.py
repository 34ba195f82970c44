"""`s2mos train --vertex`: the Vertex AI CustomJob is built offline and checked; --dry-run prints it
and sends nothing (every socket connection refused while it runs); bad inputs are one line."""
from __future__ import annotations

import json
import socket

import pytest

from pipelines import cli
from trainer import task, vertex

CLOUD = ["--project", "demo-project", "--region", "europe-west4", "--staging-bucket", "gs://demo-bucket"]
PATHS = ["--data", "gs://demo-bucket/runs/1/dataset", "--model-dir", "gs://demo-bucket/runs/1/train"]
# one flag of every kind: value flags, store_true, store_false, store_const (--quiet), choices
TRAIN_FLAGS = ["--channels", "s2", "--no-coords", "--epochs", "7", "--bags", "3", "--batch-size", "16",
               "--models", "cnn,baselines", "--quick-grid", "--cv-folds", "4", "--seed", "11",
               "--steps-per-execution", "8", "--jit", "--no-determinism", "--parallel-bags", "--save-rf", "--quiet"]


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test: the dry run must send nothing."""
    attempts = []

    def refuse(self, address, *a, **k):
        attempts.append(address)
        raise OSError(f"network used in a dry run: {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda address, *a, **k: refuse(None, address))
    return attempts


def dry_run(capsys, extra: list[str]) -> tuple[int, dict | None, str]:
    rc = cli.main(["train", "--vertex", "--dry-run", *CLOUD, *PATHS, "--display-name", "t", *extra])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if rc == 0 else None), err


def test_dry_run_prints_the_custom_job_and_sends_nothing(capsys, no_network):
    rc, job, err = dry_run(capsys, TRAIN_FLAGS)
    assert rc == 0, err
    assert no_network == []
    assert "nothing submitted" in err and "gs://demo-bucket/runs/1/train/model" in err
    spec = job["jobSpec"]
    assert job["displayName"] == "t"
    assert spec["baseOutputDirectory"]["outputUriPrefix"] == "gs://demo-bucket/runs/1/train"
    (pool,) = spec["workerPoolSpecs"]
    assert pool["machineSpec"] == {"machineType": "n1-standard-8", "acceleratorType": "NVIDIA_TESLA_T4",
                                   "acceleratorCount": 1}
    assert pool["machineSpec"]["acceleratorType"] in vertex.accelerator_enum()
    assert int(pool["replicaCount"]) == 1
    container = pool["containerSpec"]
    assert container["imageUri"] == "europe-west4-docker.pkg.dev/demo-project/s2mos/s2mos:latest"
    assert container["command"] == ["python", "-m", "trainer.task"]

    # The container's args are the user's trainer flags, read by the job's own parser; the
    # model directory comes from AIP_MODEL_DIR (base_output_dir/model), not from a flag.
    local = cli.build_parser().parse_args(["train", *PATHS, *TRAIN_FLAGS])
    remote = task.build_parser().parse_args(container["args"])
    assert remote.model_dir is None
    shared = set(vars(remote)) & set(vars(local)) - {"model_dir"}
    assert {d: getattr(remote, d) for d in shared} == {d: getattr(local, d) for d in shared}
    assert "data" in shared and "verbose" in shared and "deterministic" in shared
    paths = task.vertex_paths(remote, {"AIP_MODEL_DIR": "gs://demo-bucket/runs/1/train/model/"})
    assert paths["model_dir"] == "gs://demo-bucket/runs/1/train/model/"


def test_defaults_give_only_the_data_flag(capsys, no_network):
    rc, job, err = dry_run(capsys, [])
    assert rc == 0, err
    assert job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["args"] == ["--data", "gs://demo-bucket/runs/1/dataset"]


@pytest.mark.parametrize("flags, machine", [
    (["--accelerator-type", "NVIDIA_L4"], {"machineType": "g2-standard-8", "acceleratorType": "NVIDIA_L4",
                                           "acceleratorCount": 1}),
    (["--machine-type", "a2-highgpu-2g"], {"machineType": "a2-highgpu-2g", "acceleratorType": "NVIDIA_TESLA_A100",
                                           "acceleratorCount": 2}),
    (["--accelerator-type", "NVIDIA_TESLA_V100", "--accelerator-count", "4"],
     {"machineType": "n1-standard-32", "acceleratorType": "NVIDIA_TESLA_V100", "acceleratorCount": 4}),
    (["--accelerator-type", "none", "--machine-type", "n1-highmem-16"], {"machineType": "n1-highmem-16"}),
])
def test_machine_specs(capsys, no_network, flags, machine):
    rc, job, err = dry_run(capsys, flags + ["--image", "europe-docker.pkg.dev/p/r/s2mos:abc",
                                            "--service-account", "runner@demo-project.iam.gserviceaccount.com"])
    assert rc == 0, err
    assert job["jobSpec"]["workerPoolSpecs"][0]["machineSpec"] == machine
    assert job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == "europe-docker.pkg.dev/p/r/s2mos:abc"
    assert job["jobSpec"]["serviceAccount"] == "runner@demo-project.iam.gserviceaccount.com"


def test_every_supported_accelerator_is_a_vertex_enum_value_with_a_machine():
    from google.cloud.aiplatform_v1.types.accelerator_type import AcceleratorType
    for name, (family, counts, machines) in vertex.ACCELERATORS.items():
        assert AcceleratorType[name].name == name
        for count in counts:
            spec = vertex.machine_spec(None, name, count)
            assert spec["machine_type"].startswith(family + "-") and spec["accelerator_count"] == count
            implied = vertex.machine_spec(spec["machine_type"], None, None)   # the GPU a G2/A2 machine has
            assert implied == spec if family != "n1" else implied["accelerator_type"] == "NVIDIA_TESLA_T4"


@pytest.mark.parametrize("extra, message", [
    (["--data", "runs/1/dataset"], "--data runs/1/dataset: a Vertex AI job reads and writes Cloud Storage only"),
    (["--model-dir", "/tmp/model"], "--model-dir /tmp/model: a Vertex AI job reads and writes Cloud Storage only"),
    (["--accelerator-type", "NVIDIA_TESLA_K9000"], "--accelerator-type NVIDIA_TESLA_K9000: not a Vertex AI "
                                                   "accelerator type"),
    (["--accelerator-type", "TPU_V3"], "--accelerator-type TPU_V3: not supported by s2mos train --vertex"),
    (["--accelerator-type", "NVIDIA_TESLA_T4", "--machine-type", "g2-standard-8"],
     "--machine-type g2-standard-8 cannot hold NVIDIA_TESLA_T4 (it runs on N1 machines"),
    (["--accelerator-type", "NVIDIA_L4", "--machine-type", "n1-standard-8"],
     "--machine-type n1-standard-8 cannot hold NVIDIA_L4 (it runs on G2 machines"),
    (["--accelerator-type", "NVIDIA_TESLA_T4", "--accelerator-count", "3"], "--accelerator-count 3: NVIDIA_TESLA_T4"),
    (["--machine-type", "a2-highgpu-2g", "--accelerator-count", "4"], "--accelerator-count 4: a2-highgpu-2g comes "
                                                                      "with 2 NVIDIA_TESLA_A100"),
    (["--region", "Europe West"], "--region Europe West: not a Google Cloud region"),
])
def test_bad_inputs_are_one_line(capsys, no_network, extra, message):
    rc = cli.main(["train", "--vertex", "--dry-run", *CLOUD, *PATHS, *extra])
    out, err = capsys.readouterr()
    assert rc == 2 and out == ""
    assert err.startswith("s2mos: error: " + message) and err.count("\n") == 1, err


def test_a_submission_without_credentials_is_one_line_and_sends_nothing(capsys, no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "missing-key.json"))
    rc = cli.main(["train", "--vertex", *CLOUD, *PATHS])
    out, err = capsys.readouterr()
    assert rc == 2 and out == "" and no_network == []
    assert err == ("s2mos: error: no Google Cloud credentials: run `gcloud auth application-default login` "
                   "(or run where a service account is attached)\n")


def test_vertex_flags_without_vertex_are_refused(capsys, tmp_path):
    rc = cli.main(["train", "--data", str(tmp_path), "--model-dir", str(tmp_path / "m"), "--dry-run",
                   "--accelerator-type", "NVIDIA_L4"])
    err = capsys.readouterr().err
    assert rc == 2 and err == "s2mos: error: --accelerator-type, --dry-run: only with --vertex (a Vertex AI job)\n"
    assert not (tmp_path / "m").exists()


def test_the_job_entry_does_not_take_vertex_flags():
    with pytest.raises(SystemExit):
        task.build_parser().parse_args(["--data", "gs://b/d", "--vertex"])
