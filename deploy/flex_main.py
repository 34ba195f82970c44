"""The image's Flex Template entry (``FLEX_TEMPLATE_PYTHON_PY_FILE``) for both templates.

One image serves both templates, and a prebuilt image (``gcloud dataflow flex-template build
--image``) carries one ``FLEX_TEMPLATE_PYTHON_PY_FILE``: this file picks the stage from the
parameters the launcher passes (``--NAME=VALUE``), using the stages' real parsers. Each stage
has required flags the other lacks (build-dataset ``--samples``, predict-map ``--model-dir``),
so every valid launch names exactly one stage; it then runs that template's own entry,
``deploy/templates/<stage>/main.py``, with the parameters' snake_case names written as the
stage's flags (``--ndvi_max=0.3`` → ``--ndvi-max=0.3``, `pipelines.template_params`).

Workers run the same image: unless the launch already passes them, ``--sdk_container_image``
(the image's own name, ``S2MOS_IMAGE``, baked in by ``docker build --build-arg S2MOS_IMAGE=…``)
and ``--sdk_location=container`` are added, so nothing is staged or pip-installed at worker start.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STAGES = ("build-dataset", "predict-map")


def stage_flags(stage: str) -> set[str]:
    """Every option string of ``s2mos STAGE`` (its real parser)."""
    import importlib

    from pipelines.cli import COMMANDS
    parser = argparse.ArgumentParser()
    importlib.import_module(COMMANDS[stage][0]).configure(parser)
    return {s for action in parser._actions for s in action.option_strings}


def pick_stage(argv: list[str]) -> str:
    """The one stage whose own flags (those the other stage lacks) appear in ``argv``, given as
    flags (``--model-dir``) or as template parameters (``--model_dir``)."""
    from pipelines.template_params import cli_argv

    flags = {stage: stage_flags(stage) for stage in STAGES}
    given = {a.split("=", 1)[0] for a in cli_argv(argv, set().union(*flags.values())) if a.startswith("--")}
    hits = {stage: sorted(given & (flags[stage] - set().union(*(flags[o] for o in STAGES if o != stage))))
            for stage in STAGES}
    chosen = [stage for stage in STAGES if hits[stage]]
    if len(chosen) != 1:
        found = "; ".join(f"{s}: {', '.join(h)}" for s, h in hits.items() if h) or "none"
        raise SystemExit(f"flex_main: cannot tell the template from the parameters (flags only one stage "
                         f"takes: {found}); build-dataset needs --samples, predict-map --model-dir")
    return chosen[0]


def worker_image_flags(argv: list[str], environ=os.environ) -> list[str]:
    """``--sdk_container_image`` / ``--sdk_location=container`` the launch lacks (workers = this image)."""
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    extra = []
    image = environ.get("S2MOS_IMAGE", "")
    if "--sdk_container_image" not in given:
        if not image:
            raise SystemExit("flex_main: no worker image: build the image with --build-arg S2MOS_IMAGE=<its "
                             "Artifact Registry name> or pass the parameter sdk_container_image")
        extra.append(f"--sdk_container_image={image}")
    if "--sdk_location" not in given:
        extra.append("--sdk_location=container")
    return extra


def main(argv: list[str]) -> None:
    from pipelines.template_params import cli_argv

    stage = pick_stage(argv)
    argv = cli_argv(argv, stage_flags(stage))
    sys.argv = [os.path.join(HERE, "templates", stage, "main.py"), *argv, *worker_image_flags(argv)]
    runpy.run_path(sys.argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
