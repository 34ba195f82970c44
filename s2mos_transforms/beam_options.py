"""Beam PipelineOptions for every Beam stage: the standard flags, nothing else.

A stage's own flags are parsed by its argparse parser; what is left must be a Beam pipeline
option (``--runner``, ``--project``, ``--region``, ``--temp_location``,
``--direct_num_workers`` …). Anything else is a typo, refused in one line before any work,
so ``--min_obs 3`` never runs silently as if it had not been given.

``--gpu TYPE`` (predict-map) is turned here into what Dataflow needs for GPU workers: the
service option ``worker_accelerator=type:TYPE;count:N;install-nvidia-driver`` and a machine
family that can hold that GPU (N1 for T4/P4/P100/V100, G2 for L4, A2 for A100), unless the
user chose a compatible machine type; an incompatible combination is one line.
"""
from __future__ import annotations

import logging
import re

from s2mos_transforms.errors import UserError

METRICS_NAMESPACE = "s2mos"  # the one Beam metrics namespace of every stage

# accelerator type → (machine-type prefix it needs, default machine type by GPU count)
GPUS: dict[str, tuple[str, dict[int, str]]] = {
    "nvidia-tesla-t4": ("n1-", {1: "n1-standard-4", 2: "n1-standard-8", 4: "n1-standard-16"}),
    "nvidia-tesla-p4": ("n1-", {1: "n1-standard-4", 2: "n1-standard-8", 4: "n1-standard-16"}),
    "nvidia-tesla-p100": ("n1-", {1: "n1-standard-4", 2: "n1-standard-8", 4: "n1-standard-16"}),
    "nvidia-tesla-v100": ("n1-", {1: "n1-standard-4", 2: "n1-standard-8", 4: "n1-standard-16",
                                  8: "n1-standard-32"}),
    "nvidia-l4": ("g2-", {1: "g2-standard-4", 2: "g2-standard-24", 4: "g2-standard-48", 8: "g2-standard-96"}),
    "nvidia-tesla-a100": ("a2-", {1: "a2-highgpu-1g", 2: "a2-highgpu-2g", 4: "a2-highgpu-4g",
                                  8: "a2-highgpu-8g"}),
}
ACCELERATOR_OPTION = "worker_accelerator"


def pipeline_options(extra: list[str], stage: str, gpu: str | None = None, gpu_count: int = 1):
    """PipelineOptions from the unparsed flags; UserError naming every unknown one. With
    ``gpu``, the Dataflow worker accelerator and machine type (`add_gpu`)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    beam_log = logging.getLogger("apache_beam.options.pipeline_options")
    level = beam_log.level
    beam_log.setLevel(logging.ERROR)      # its "Discarding unparseable args" would be a second line
    try:
        options = PipelineOptions(extra)
        known = options.get_all_options(retain_unknown_options=False)
    finally:
        beam_log.setLevel(level)
    unknown = [flag for flag in extra if flag.startswith("--")
               and flag[2:].split("=", 1)[0].replace("-", "_") not in known]
    if unknown:
        raise UserError(f"unknown option(s) {', '.join(unknown)} (neither a {stage} flag nor a Beam "
                        f"pipeline option; see s2mos {stage} --help)")
    if not options.view_as(StandardOptions).runner:
        options.view_as(StandardOptions).runner = "DirectRunner"
    if gpu:
        add_gpu(options, gpu, gpu_count)
    return options


def add_gpu(options, gpu: str, count: int = 1) -> None:
    """Dataflow GPU workers: the accelerator service option and a machine type that takes it.

    Refused in one line: an unknown type, a count the machine family does not offer, a runner
    other than Dataflow (the DirectRunner has no worker VMs), a machine type of another family,
    an accelerator already given through ``--dataflow_service_options``, and Runner v1.
    """
    from apache_beam.options.pipeline_options import DebugOptions, GoogleCloudOptions, StandardOptions, WorkerOptions

    if gpu not in GPUS:
        raise UserError(f"--gpu {gpu}: unknown GPU type (one of {', '.join(GPUS)})")
    family, machines = GPUS[gpu]
    if count not in machines:
        raise UserError(f"--gpu-count {count}: {gpu} workers take {', '.join(map(str, machines))} GPUs")
    runner = options.view_as(StandardOptions).runner or ""
    if "dataflow" not in runner.lower():
        raise UserError(f"--gpu {gpu} needs --runner DataflowRunner (the {runner} has no GPU workers)")
    experiments = options.view_as(DebugOptions).experiments or []
    if "disable_runner_v2" in experiments:
        raise UserError(f"--gpu {gpu} needs Dataflow Runner v2; drop --experiments=disable_runner_v2")
    cloud = options.view_as(GoogleCloudOptions)
    service = list(cloud.dataflow_service_options or [])
    if any(s.startswith(ACCELERATOR_OPTION) for s in service):
        raise UserError(f"--gpu {gpu} and --dataflow_service_options {ACCELERATOR_OPTION}=… both ask for a "
                        "GPU; give one of them")
    worker = options.view_as(WorkerOptions)
    if worker.machine_type:
        if not worker.machine_type.startswith(family):
            raise UserError(f"--gpu {gpu} needs a {family}* machine type, got --machine_type {worker.machine_type}")
    else:
        worker.machine_type = machines[count]
    cloud.dataflow_service_options = service + [accelerator_option(gpu, count)]


def accelerator_option(gpu: str, count: int) -> str:
    """``worker_accelerator=type:T;count:N;install-nvidia-driver``, Dataflow's service option."""
    return f"{ACCELERATOR_OPTION}=type:{gpu};count:{count};install-nvidia-driver"

