"""`s2mos train --vertex`: the same training as a Vertex AI custom job, on the project's image.

The job runs ``python -m trainer.task`` in the image (``Dockerfile``: its ENTRYPOINT is Beam's
worker boot, which the container spec's ``command`` replaces) with the trainer flags the user
gave, minus ``--model-dir``: the job's ``base_output_dir`` is ``--model-dir``, so Vertex sets

  AIP_MODEL_DIR=MODEL_DIR/model/   (the model directory the map reads: ``--model-dir MODEL_DIR/model``)
  AIP_CHECKPOINT_DIR=MODEL_DIR/checkpoints/   AIP_TENSORBOARD_LOG_DIR=MODEL_DIR/logs/

which ``trainer.task`` prefers over flags. Every path must be gs:// (the job cannot read this
machine's disk). The spec is built and checked here, without network (anonymous credentials),
before anything is sent; ``--dry-run`` prints it as JSON and sends nothing. A submission prints
the job's resource name on stdout (``deploy/wait_job.sh vertex`` polls it) and returns at once.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time

from s2mos_transforms.errors import UserError

ENTRY = ["python", "-m", "trainer.task"]
DEFAULT_ACCELERATOR = "NVIDIA_TESLA_T4"
CPU_MACHINE = "n1-standard-8"
IMAGE_TEMPLATE = "{region}-docker.pkg.dev/{project}/s2mos/s2mos:latest"

# accelerator → (machine family, GPU counts an N1 machine takes, default machine by count).
# G2/A2 machines come with a fixed number of GPUs, read from the machine type (`fixed_count`).
ACCELERATORS: dict[str, tuple[str, tuple[int, ...], dict[int, str]]] = {
    "NVIDIA_TESLA_T4": ("n1", (1, 2, 4), {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"}),
    "NVIDIA_TESLA_P4": ("n1", (1, 2, 4), {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"}),
    "NVIDIA_TESLA_P100": ("n1", (1, 2, 4), {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32"}),
    "NVIDIA_TESLA_V100": ("n1", (1, 2, 4, 8),
                          {1: "n1-standard-8", 2: "n1-standard-16", 4: "n1-standard-32", 8: "n1-standard-64"}),
    "NVIDIA_L4": ("g2", (1, 2, 4, 8), {1: "g2-standard-8", 2: "g2-standard-24", 4: "g2-standard-48",
                                       8: "g2-standard-96"}),
    "NVIDIA_TESLA_A100": ("a2", (1, 2, 4, 8, 16), {n: f"a2-highgpu-{n}g" for n in (1, 2, 4, 8)}
                          | {16: "a2-megagpu-16g"}),
    "NVIDIA_A100_80GB": ("a2", (1, 2, 4, 8), {n: f"a2-ultragpu-{n}g" for n in (1, 2, 4, 8)}),
}
GPU_FAMILIES = {"g2", "a2", "a3"}
G2_GPUS = {4: 1, 8: 1, 12: 1, 16: 1, 32: 1, 24: 2, 48: 4, 96: 8}   # g2-standard-<vCPUs> → L4 GPUs
VERTEX_DESTS = ("vertex", "project", "region", "staging_bucket", "machine_type", "accelerator_type",
                "accelerator_count", "image", "display_name", "service_account", "dry_run")
REGION_RE = re.compile(r"^[a-z]+-[a-z]+[0-9]$")
PROJECT_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")


def accelerator_enum() -> list[str]:
    """The accelerator names Vertex AI accepts (aiplatform's AcceleratorType enum)."""
    from google.cloud.aiplatform_v1.types.accelerator_type import AcceleratorType
    return [m.name for m in AcceleratorType if m.name != "ACCELERATOR_TYPE_UNSPECIFIED"]


def fixed_count(machine_type: str) -> int | None:
    """GPUs a G2/A2/A3 machine type comes with (``a2-highgpu-4g`` → 4, ``g2-standard-24`` → 2)."""
    family = machine_type.split("-", 1)[0]
    if family == "g2":
        m = re.fullmatch(r"g2-standard-([0-9]+)", machine_type)
        return G2_GPUS.get(int(m.group(1))) if m else None
    m = re.fullmatch(r"a[23]-[a-z]+-([0-9]+)g", machine_type)
    return int(m.group(1)) if family in ("a2", "a3") and m else None


def default_accelerator(machine_type: str | None) -> str:
    """The GPU a machine type comes with (G2: L4, A2 ultra: A100 80 GB, A2: A100), else a T4."""
    if machine_type and machine_type.startswith("g2-"):
        return "NVIDIA_L4"
    if machine_type and machine_type.startswith("a2-ultragpu-"):
        return "NVIDIA_A100_80GB"
    if machine_type and machine_type.startswith("a2-"):
        return "NVIDIA_TESLA_A100"
    return DEFAULT_ACCELERATOR


def machine_spec(machine_type: str | None, accelerator: str | None, count: int | None) -> dict:
    """Vertex ``machine_spec``; UserError (one line) on an unknown accelerator or a machine
    that cannot hold it. ``accelerator`` None: `default_accelerator`; "none": CPU only."""
    accelerator = accelerator or default_accelerator(machine_type)
    if accelerator.lower() == "none":
        machine_type = machine_type or CPU_MACHINE
        if machine_type.split("-", 1)[0] in GPU_FAMILIES:
            raise UserError(f"--machine-type {machine_type} comes with GPUs: give its --accelerator-type")
        if count:
            raise UserError("--accelerator-count needs an --accelerator-type")
        return {"machine_type": machine_type}
    if accelerator not in accelerator_enum():
        raise UserError(f"--accelerator-type {accelerator}: not a Vertex AI accelerator type "
                        f"(GPUs s2mos trains on: {', '.join(ACCELERATORS)}; or none)")
    if accelerator not in ACCELERATORS:
        raise UserError(f"--accelerator-type {accelerator}: not supported by s2mos train --vertex "
                        f"(one of {', '.join(ACCELERATORS)}; or none)")
    family, counts, defaults = ACCELERATORS[accelerator]
    if machine_type is None:
        count = count or 1
        if count not in defaults:
            raise UserError(f"--accelerator-count {count}: {accelerator} comes {', '.join(map(str, counts))} "
                            "per machine")
        machine_type = defaults[count]
    if machine_type.split("-", 1)[0] != family:
        raise UserError(f"--machine-type {machine_type} cannot hold {accelerator} (it runs on "
                        f"{family.upper()} machines, e.g. {defaults[min(defaults)]})")
    built_in = fixed_count(machine_type)
    if family != "n1":
        if built_in is None:
            raise UserError(f"--machine-type {machine_type}: not a {family.upper()} machine type with GPUs")
        if count not in (None, built_in):
            raise UserError(f"--accelerator-count {count}: {machine_type} comes with {built_in} {accelerator}")
        count = built_in
    count = count or 1
    if count not in counts:
        raise UserError(f"--accelerator-count {count}: {accelerator} comes {', '.join(map(str, counts))} per machine")
    return {"machine_type": machine_type, "accelerator_type": accelerator, "accelerator_count": count}


def container_args(args: argparse.Namespace) -> list[str]:
    """The user's trainer flags as ``python -m trainer.task`` reads them (its own parser), minus
    --model-dir (AIP_MODEL_DIR replaces it): every flag whose value differs from its default."""
    from trainer.task import build_parser

    out: list[str] = []
    for action in build_parser()._actions:
        dest = action.dest
        if not action.option_strings or dest in ("help", "model_dir") or not hasattr(args, dest):
            continue
        value = getattr(args, dest)
        if value == action.default or value is None:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:          # store_true / store_false / store_const
            out.append(flag)
        else:
            out += [flag, str(value)]
    return out


def check_paths(args: argparse.Namespace) -> None:
    """Every path the job reads or writes is gs:// (it cannot reach this machine's files)."""
    for flag, value in (("--data", args.data), ("--model-dir", args.model_dir),
                        ("--staging-bucket", args.staging_bucket)):
        if not value or not value.startswith("gs://") or not value[5:].strip("/"):
            raise UserError(f"{flag} {value}: a Vertex AI job reads and writes Cloud Storage only; give a gs:// path")
    if not PROJECT_RE.match(args.project or ""):
        raise UserError(f"--project {args.project}: not a Google Cloud project id")
    if not REGION_RE.match(args.region or ""):
        raise UserError(f"--region {args.region}: not a Google Cloud region (e.g. europe-west4)")


def build_job(args: argparse.Namespace, credentials=None):
    """The ``aiplatform.CustomJob`` of this training (nothing sent: anonymous credentials unless
    ``credentials`` are given for a submission)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform

    check_paths(args)
    spec = machine_spec(args.machine_type, args.accelerator_type, args.accelerator_count)
    image = args.image or IMAGE_TEMPLATE.format(region=args.region, project=args.project)
    display_name = args.display_name or time.strftime("s2mos-train-%Y%m%d-%H%M%S", time.gmtime())
    pool = {"machine_spec": spec, "replica_count": 1,
            "container_spec": {"image_uri": image, "command": ENTRY, "args": container_args(args)}}
    job = aiplatform.CustomJob(display_name=display_name, worker_pool_specs=[pool],
                               base_output_dir=args.model_dir.rstrip("/"), project=args.project,
                               location=args.region, staging_bucket=args.staging_bucket,
                               credentials=credentials or AnonymousCredentials(),
                               labels={"app": "s2mos", "stage": "train"})
    if args.service_account:
        job._gca_resource.job_spec.service_account = args.service_account
    return job


def job_dict(job) -> dict:
    """The CustomJob as the REST API sees it (camelCase JSON)."""
    return job.to_dict()


def run(args: argparse.Namespace, extra: list[str]) -> int:
    """Build, check and print (--dry-run) or submit the custom job."""
    job = build_job(args)
    base = args.model_dir.rstrip("/")
    where = (f"model: {base}/model (AIP_MODEL_DIR), checkpoints: {base}/checkpoints, "
             f"TensorBoard: {base}/logs")
    if args.dry_run:
        print(json.dumps(job_dict(job), indent=2))
        print(f"s2mos train --vertex --dry-run: nothing submitted; {where}", file=sys.stderr)
        return 0
    import google.auth
    from google.api_core import exceptions as api_errors
    from google.auth import exceptions as auth_errors

    from s2mos_transforms import fileio

    try:
        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except auth_errors.DefaultCredentialsError:
        raise UserError("no Google Cloud credentials: run `gcloud auth application-default login` "
                        "(or run where a service account is attached)") from None
    fileio.check_writable(base, "--model-dir")
    try:
        job = build_job(args, credentials=credentials)
        job.submit(service_account=args.service_account)
    except api_errors.GoogleAPICallError as err:
        raise UserError(f"Vertex AI refused the job: {str(err).splitlines()[0]}") from None
    print(f"s2mos train --vertex: submitted {job.display_name}; {where}", file=sys.stderr)
    print(job.resource_name)
    return 0
