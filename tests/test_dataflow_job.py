"""The Dataflow job `--runner DataflowRunner` would submit, built offline and checked.

Beam's DataflowRunner writes the job JSON to ``--template_location`` instead of submitting
it. Stubbed, and only these, are the calls that would leave the machine: the runner's own
file staging (`DataflowApplicationClient.stage_file` to a gs:// folder, recorded here) and
the bucket soft-delete lookup Beam makes while validating ``--temp_location``; ``--no_auth``
keeps credentials out. Our flags, option handling (`beam_options`, ``--gpu``) and pipeline
construction run for real; the inputs and ``--out`` are on the in-memory ``mem://`` store.
"""
from __future__ import annotations

import argparse
import json
import re

import pytest

from pipelines import build_dataset, predict_map
from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError
import memfs

IMAGE = "europe-west1-docker.pkg.dev/my-project/s2mos/s2mos:2.77.0-py311"
JOB_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")          # Dataflow's rule for job names
CLOUD = ["--runner=DataflowRunner", "--project=my-project", "--region=europe-west1", "--no_auth",
         "--temp_location=gs://s2mos-bucket/tmp", "--staging_location=gs://s2mos-bucket/staging",
         f"--sdk_container_image={IMAGE}", "--sdk_location=container"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """(staged gs:// objects, where the job JSON goes): the runner's network calls stubbed."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions
    from apache_beam.runners.dataflow.internal import apiclient

    staged: dict[str, bytes] = {}
    original = apiclient.DataflowApplicationClient.stage_file

    def stage_file(self, folder, name, stream, mime_type="application/octet-stream", total_size=None):
        if not folder.startswith("gs://"):
            return original(self, folder, name, stream, mime_type, total_size)   # the local job file
        staged[f"{folder.rstrip('/')}/{name}"] = stream.read()

    monkeypatch.setattr(apiclient.DataflowApplicationClient, "stage_file", stage_file)
    monkeypatch.setattr(GoogleCloudOptions, "_warn_if_soft_delete_policy_enabled", lambda self, arg: None)
    return staged, str(tmp_path / "job.json")


@pytest.fixture
def mem():
    root = memfs.new_root()
    yield root
    memfs.clear(root)


def _parse(module, argv: list[str]):
    parser = argparse.ArgumentParser()
    module.configure(parser)
    return parser.parse_known_args(argv)


def _transforms(staged: dict[str, bytes]) -> set[str]:
    """Names of the transforms in the staged pipeline proto (Runner v2 ships the graph there)."""
    from apache_beam.portability.api import beam_runner_api_pb2
    [pb] = [data for path, data in staged.items() if path.endswith("/pipeline.pb")]
    return {t.unique_name for t in beam_runner_api_pb2.Pipeline.FromString(pb).components.transforms.values()}


def _check_job(job: dict, staged: dict[str, bytes], machine: str) -> dict:
    env = job["environment"]
    pool = env["workerPools"][0]
    assert JOB_NAME.match(job["name"]), job["name"]
    assert pool["machineType"] == machine
    assert [c["containerImage"] for c in pool["sdkHarnessContainerImages"]] == [IMAGE]
    assert "use_runner_v2" in env["experiments"]
    names = [p.rsplit("/", 1)[-1] for p in staged]
    assert "pipeline.pb" in names
    assert not [n for n in names if n in ("workflow.tar.gz", "dataflow_python_sdk.tar") or n.endswith(".whl")]
    assert not [p["name"] for p in pool.get("packages", []) if p["name"] == "workflow.tar.gz"]
    return env


def test_build_dataset_job(offline, mem):
    staged, job_file = offline
    fileio.write_text(f"{mem}/in/samples.csv", "point_id,lat,lon,clay\nA,45.0,5.0,20\nB,45.1,5.1,30\n")
    args, extra = _parse(build_dataset, ["--samples", f"{mem}/in/samples.csv", "--out", f"{mem}/dataset",
                                         *CLOUD, f"--template_location={job_file}",
                                         "--job_name=s2mos-build-dataset-2026", "--machine_type=n2-highmem-4"])
    p, staging = build_dataset.construct(args, extra)
    result = p.run()
    assert result.state == "DONE" and not result.has_job           # written, nothing submitted
    job = json.load(open(job_file))
    env = _check_job(job, staged, "n2-highmem-4")
    assert job["name"] == "s2mos-build-dataset-2026" and "serviceOptions" not in env
    options = env["sdkPipelineOptions"]["options"]
    assert options["sdk_location"] == "container" and options["project"] == "my-project"
    # the job finishes the dataset itself (a Flex Template launch never waits to do it)
    assert {"BuildDataset/ExtractSequences/Extract", "BuildDataset/WriteShards",
            "BuildDataset/FinishDataset/Finish"} <= _transforms(staged)
    assert staging.startswith(f"{mem}/dataset.staging-")


@pytest.mark.slow
@pytest.mark.parametrize("gpu, given, machine", [
    (None, None, "n1-standard-1"),
    ("nvidia-tesla-t4", None, "n1-standard-4"),
    ("nvidia-l4", None, "g2-standard-4"),
    ("nvidia-tesla-t4", "n1-highmem-8", "n1-highmem-8"),
])
def test_predict_map_job_with_and_without_gpu(offline, mem, gpu, given, machine):
    import apache_beam as beam
    import test_map_fixtures as fx
    from s2mos_transforms import beam_options
    import shapely
    from s2mos_transforms.maps import finish as map_finish
    from s2mos_transforms.maps import model_handler, pipeline as map_pipeline, plan as map_plan

    staged, job_file = offline
    bbox, _ = fx.small_aoi_bbox()
    argv = ["--model-dir", fx.ensemble_dir(), "--bbox", *map(str, bbox), "--preset", "quick",
            "--out", f"{mem}/map", "--tile-size", "64", *CLOUD, f"--template_location={job_file}"]
    argv += ["--gpu", gpu] if gpu else []
    argv += [f"--machine_type={given}"] if given else ["--machine_type=n1-standard-1"] if not gpu else []
    args, extra = _parse(predict_map, argv)
    options = beam_options.pipeline_options(extra, "predict-map", gpu=args.gpu, gpu_count=args.gpu_count)
    config, aoi, _, _, _ = predict_map.resolve(args)
    finish = map_finish.MapFinishSpec(out=config.out, aoi_wkb=shapely.to_wkb(aoi), start=config.start,
                                      end=config.end, model_dir=config.model_dir)
    p = beam.Pipeline(options=options)
    _ = p | map_pipeline.PredictMap(map_plan.plan_tiles(aoi, config.tile_size, config.res), config,
                                    model_handler.ClayEnsembleHandler(config.model_dir), finish=finish)
    assert not p.run().has_job
    job = json.load(open(job_file))
    # the job finishes the map itself (a Flex Template launch never waits to do it)
    assert "PredictMap/FinishMap/Finish" in _transforms(staged)
    env = _check_job(job, staged, machine)
    if gpu:
        assert env["serviceOptions"] == [f"worker_accelerator=type:{gpu};count:1;install-nvidia-driver"]
    else:
        assert "serviceOptions" not in env


@pytest.mark.parametrize("extra, gpu, count, message", [
    (CLOUD + ["--machine_type=n1-standard-4"], "nvidia-l4", 1, "needs a g2-* machine type"),
    (CLOUD + ["--machine_type=g2-standard-8"], "nvidia-tesla-t4", 1, "needs a n1-* machine type"),
    (CLOUD, "nvidia-tesla-t4", 3, "workers take 1, 2, 4 GPUs"),
    (["--runner=DirectRunner"], "nvidia-l4", 1, "needs --runner DataflowRunner"),
    (CLOUD + ["--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1"], "nvidia-l4", 1,
     "both ask for a GPU"),
])
def test_incompatible_gpu_combinations_are_one_line(extra, gpu, count, message):
    from s2mos_transforms import beam_options
    with pytest.raises(UserError, match=re.escape(message)) as err:
        beam_options.pipeline_options(extra, "predict-map", gpu=gpu, gpu_count=count)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("gpu, count, given, machine", [
    ("nvidia-tesla-t4", 1, None, "n1-standard-4"), ("nvidia-tesla-t4", 2, None, "n1-standard-8"),
    ("nvidia-l4", 1, None, "g2-standard-4"), ("nvidia-l4", 1, "g2-standard-16", "g2-standard-16"),
    ("nvidia-tesla-a100", 1, None, "a2-highgpu-1g")])
def test_gpu_sets_the_accelerator_and_a_matching_machine(gpu, count, given, machine):
    from apache_beam.options.pipeline_options import GoogleCloudOptions, WorkerOptions
    from s2mos_transforms import beam_options
    extra = CLOUD + ([f"--machine_type={given}"] if given else [])
    options = beam_options.pipeline_options(extra, "predict-map", gpu=gpu, gpu_count=count)
    assert options.view_as(WorkerOptions).machine_type == machine
    assert options.view_as(GoogleCloudOptions).dataflow_service_options == [
        f"worker_accelerator=type:{gpu};count:{count};install-nvidia-driver"]


def test_gpu_flag_choices_come_from_the_one_table():
    from s2mos_transforms import beam_options
    args, _ = _parse(predict_map, ["--gpu", "nvidia-l4", "--gpu-count", "2"])
    assert (args.gpu, args.gpu_count) == ("nvidia-l4", 2)
    with pytest.raises(SystemExit):
        _parse(predict_map, ["--gpu", "nvidia-h100"])
    assert set(beam_options.GPUS) >= {"nvidia-tesla-t4", "nvidia-l4"}


def test_build_dataset_command_with_template_location_writes_the_job_and_builds_nothing(offline, mem, capsys):
    from pipelines import cli
    staged, job_file = offline
    fileio.write_text(f"{mem}/in/samples.csv", "point_id,lat,lon,clay\nA,45.0,5.0,20\n")
    assert cli.main(["build-dataset", "--samples", f"{mem}/in/samples.csv", "--out", f"{mem}/ds", *CLOUD,
                     f"--template_location={job_file}"]) == 0
    assert "job was written (--template_location), not run; nothing built" in capsys.readouterr().out
    job = json.load(open(job_file))
    assert JOB_NAME.match(job["name"]) and [c["containerImage"] for c in
                                            job["environment"]["workerPools"][0]["sdkHarnessContainerImages"]] == [IMAGE]
    assert not fileio.glob(f"{mem}/ds*")                           # no dataset, no staged output
