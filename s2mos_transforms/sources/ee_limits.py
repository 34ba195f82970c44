"""How the Earth Engine load limits hold: ``--ee-max-rps`` for the whole job,
``--ee-max-inflight`` per worker process.

Earth Engine's quotas are per project (about 100 requests/s and 40 concurrent requests), but a
Beam job shares no state between its worker processes: no process can see how many requests
the others start. So the job-wide rate is split on the launcher, from the parallelism the job
declares in its Beam flags (`job_processes`), and each process holds its share:

    rate per worker process = --ee-max-rps / (worker processes the job may run at once)

* DirectRunner: ``--direct_num_workers N`` (0: the machine's cores) processes in
  ``--direct_running_mode multi_processing``; one process otherwise (``in_memory``,
  ``multi_threading``: the workers are threads of the launcher's process).
* DataflowRunner: ``--max_num_workers`` (else ``--num_workers``) VMs × SDK processes per VM —
  one per vCPU of ``--machine_type`` (Dataflow starts one Python SDK process per core), or one
  with ``--experiments no_use_multiple_sdk_containers``. Without a bound on the workers or a
  machine type to count cores the share cannot be computed, and the flags are refused.
* Any other runner, or to state it yourself: ``--ee-worker-processes N``.

Threads need no share of their own: every DoFn instance (thread) of one process takes the same
in-flight gate and rate limiter from `process_limits`, a registry that lives as long as the
process. It does what Beam's ``apache_beam.utils.shared.Shared`` does for DoFn threads, but also
outside a pipeline (the benchmark, `ee_plan`) and without ever releasing the limiter between
bundles (a released limiter would forget when its next request may start).

``--ee-max-inflight`` is per worker process, as the issue states: the job may have up to
processes × inflight requests in flight (`describe` says how many).
"""
from __future__ import annotations

import os
import re
import threading
from typing import Sequence

from s2mos_transforms.sources import ee_faults
from s2mos_transforms.sources.base import SourceError

DIRECT = ("directrunner", "direct", "switchingdirectrunner", "bundlebaseddirectrunner")
DATAFLOW = ("dataflowrunner", "dataflow")
SINGLE_SDK = "no_use_multiple_sdk_containers"
# Compute Engine machine types: <series>-<class>-<vCPUs>[-lssd|-metal…], [<series>-]custom-<vCPUs>-<MB>.
_STANDARD = re.compile(r"^[a-z][a-z0-9]*-[a-z]+-(\d+)(?:-[a-z]+)?$")
_CUSTOM = re.compile(r"^(?:[a-z][a-z0-9]*-)?custom-(\d+)-\d+(?:-ext)?$")


def machine_vcpus(machine_type: str) -> int | None:
    """vCPUs of a Compute Engine machine type from its name (n2-standard-4 → 4,
    custom-8-30720 → 8); None for names that do not carry it (e2-medium, a2-highgpu-1g)."""
    m = _CUSTOM.match(machine_type) or _STANDARD.match(machine_type)
    return int(m.group(1)) if m else None


def job_processes(beam_flags: Sequence[str], override: int | None = None) -> tuple[int, str]:
    """(the most worker processes the job runs at once, how that was derived); SourceError
    when the Beam flags do not bound it (module docstring)."""
    if override:
        return int(override), f"--ee-worker-processes {int(override)}"
    from apache_beam.options.pipeline_options import (DebugOptions, DirectOptions, PipelineOptions,
                                                      StandardOptions, WorkerOptions)
    opts = PipelineOptions(list(beam_flags))
    runner = str(opts.view_as(StandardOptions).runner or "DirectRunner")
    kind = runner.rsplit(".", 1)[-1].lower()
    if kind in DIRECT:
        direct = opts.view_as(DirectOptions)
        n = direct.direct_num_workers if direct.direct_num_workers != 0 else (os.cpu_count() or 1)
        if direct.direct_running_mode == "multi_processing" and n > 1:
            return int(n), f"DirectRunner, --direct_num_workers {n} in multi_processing"
        return 1, f"DirectRunner, one process ({direct.direct_running_mode})"
    if kind in DATAFLOW:
        worker = opts.view_as(WorkerOptions)
        vms = worker.max_num_workers or worker.num_workers
        if not vms:
            raise SourceError("--ee-max-rps holds for the whole job: give Dataflow --max_num_workers (or "
                              "--num_workers) so it can be shared among the workers, or --ee-worker-processes N")
        if opts.view_as(DebugOptions).lookup_experiment(SINGLE_SDK):
            return int(vms), f"Dataflow, {vms} workers × 1 SDK process ({SINGLE_SDK})"
        cores = machine_vcpus(worker.machine_type or "")
        if cores is None:
            what = f"--machine_type {worker.machine_type}" if worker.machine_type else "no --machine_type"
            raise SourceError(f"--ee-max-rps holds for the whole job, but {what} does not say how many SDK "
                              "processes a Dataflow worker runs (one per vCPU): give a machine type such as "
                              "n2-standard-4, or --ee-worker-processes N")
        return int(vms) * cores, f"Dataflow, {vms} workers × {cores} SDK processes ({worker.machine_type})"
    raise SourceError(f"--ee-max-rps holds for the whole job: with --runner {runner} give --ee-worker-processes N "
                      "(how many worker processes the job runs at once)")


def describe(max_rps: float, max_inflight: int, processes: int, how: str) -> str:
    """One line for the launcher: the share of each process and what the job may reach."""
    return (f"earthengine: --ee-max-rps {max_rps:g} for the job = {max_rps / processes:.3g} requests/s in each "
            f"of {processes} worker process(es) ({how}); up to {processes * max_inflight} requests in flight "
            f"(--ee-max-inflight {max_inflight} per process)")


# One in-flight gate and one rate limiter per process and setting (module docstring).
_LIMITS: dict[tuple[int, float], tuple[threading.Semaphore, ee_faults.RateLimiter]] = {}
_LOCK = threading.Lock()


def process_limits(max_inflight: int, rps: float) -> tuple[threading.Semaphore, ee_faults.RateLimiter]:
    """The gate and limiter every source of this process with these settings shares."""
    with _LOCK:
        key = (int(max_inflight), float(rps))
        if key not in _LIMITS:
            _LIMITS[key] = (threading.Semaphore(max_inflight), ee_faults.RateLimiter(rps))
        return _LIMITS[key]
