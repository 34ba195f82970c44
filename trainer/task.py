"""Vertex AI custom-job entry point: ``python -m trainer.task --data gs://… [train flags]``.

Vertex conventions honoured:
  * ``AIP_MODEL_DIR``: the model directory (overrides --model-dir), where Vertex expects the
    artefacts to import as a Model (the serving SavedModel is ``$AIP_MODEL_DIR/ensemble``);
  * ``AIP_CHECKPOINT_DIR``: Keras BackupAndRestore per model and bag, so a preempted job resumes
    the bag it was on (with --parallel-bags: one per model, ``<dir>/<name>/parallel_bags``);
  * ``AIP_TENSORBOARD_LOG_DIR``: TensorBoard logs (a Vertex TensorBoard instance reads them).
Paths may be local or gs:// (tf.io.gfile throughout). TensorFlow places the model on a GPU
when it sees one and on the CPU otherwise; the device is printed and recorded in
train_config.json. After training, the evaluation report is written to
``$AIP_MODEL_DIR/evaluation`` unless --no-evaluate.

Example job spec (container: an image with `pip install .` of this repository):
    gcloud ai custom-jobs create --region=europe-west4 --display-name=s2mos-train \\
      --worker-pool-spec=machine-type=n1-standard-8,accelerator-type=NVIDIA_TESLA_T4,\\
accelerator-count=1,container-image-uri=IMAGE \\
      --args=-m,trainer.task,--data=gs://BUCKET/dataset --base-output-dir=gs://BUCKET/run1
(`--base-output-dir` makes Vertex set AIP_MODEL_DIR=gs://BUCKET/run1/model etc.)
"""
from __future__ import annotations

import argparse
import os
import sys

from s2mos_transforms.errors import UserError


def vertex_paths(args, environ=os.environ) -> dict[str, str | None]:
    """Model/checkpoint/TensorBoard dirs: the AIP_* variables win over flags."""
    model_dir = environ.get("AIP_MODEL_DIR") or args.model_dir
    if not model_dir:
        raise UserError("no model directory: set AIP_MODEL_DIR or pass --model-dir")
    return {"model_dir": model_dir,
            "checkpoint_dir": environ.get("AIP_CHECKPOINT_DIR") or args.checkpoint_dir,
            "tensorboard_dir": environ.get("AIP_TENSORBOARD_LOG_DIR") or args.tensorboard_dir}


def build_parser() -> argparse.ArgumentParser:
    from trainer import cli
    p = argparse.ArgumentParser(prog="python -m trainer.task", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_train_flags(p, require_paths=False)
    p.add_argument("--checkpoint-dir", default=None, help="fallback when AIP_CHECKPOINT_DIR is unset")
    p.add_argument("--tensorboard-dir", default=None, help="fallback when AIP_TENSORBOARD_LOG_DIR is unset")
    p.add_argument("--no-evaluate", dest="evaluate", action="store_false", help="skip the evaluation report")
    return p


def main(argv: list[str] | None = None, environ=os.environ) -> int:
    from trainer import cli

    args = build_parser().parse_args(argv)
    try:
        if not args.data:
            raise UserError("--data is required")
        paths = vertex_paths(args, environ)
        from trainer import evaluate, train
        from trainer.config import printer
        cfg = cli.train_config(args, **paths)
        train.train(cfg)
        if args.evaluate:
            evaluate.evaluate(cfg.model_dir, cfg.data, None, 0.05, printer(cfg.verbose))
    except UserError as err:
        print(f"trainer.task: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
