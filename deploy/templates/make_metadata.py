"""Flex Template ``metadata.json`` for build-dataset and predict-map, from the pipelines' own parsers.

    python deploy/templates/make_metadata.py            # (re)writes deploy/templates/<stage>/metadata.json
    python deploy/templates/make_metadata.py --check    # exit 1 if a committed file is stale

Each template parameter is one flag of the stage's argparse parser (its own flags and the
source flags registered through ``sources.add_source_arguments``), named in snake_case like
Beam's own options (``--ndvi-max`` → ``ndvi_max``, `pipelines.template_params`): the Flex
Template launcher passes a parameter as ``--NAME=VALUE`` to the image's entry
(``deploy/flex_main.py``), which writes the name back as the flag before the stage's parser
reads it. Beam's own options (``--temp_location``, ``--sdk_container_image``,
``--machine_type`` …) are the launch environment's, not template parameters.

Regexes: numbers for int/float flags, ISO dates, ``gs://`` paths (a template runs on Dataflow,
where a local path means nothing), a Google Cloud project id, and the choices of a choice flag
(the registered sources, the embedded-world presets). A new string flag that fits none of them
stops the generator until it is classified below, so no parameter goes out unvalidated.

A switch that also takes a value (``nargs="?"`` with a boolean ``const``, e.g. build-dataset's
``--require-s1-pair``) is a parameter with the values ``true|false``.

Flags left out (``SKIPPED``), because they make no sense in a template:
* switches (``store_true``: ``--quiet``, ``--cloud-score-plus``, ``--override-extraction``,
  ``--no-report``): the launcher always passes ``--NAME=VALUE`` and argparse refuses a value
  on a switch, so such a parameter would fail every launch; run the CLI for them;
* ``--dry-run``: a template launch is a real job; a plan is printed by the CLI;
* ``--bbox``: four values (argparse ``nargs=4``) cannot come as one ``--bbox=VALUE``; give
  ``--aoi gs://…/aoi.geojson`` or ``--preset``;
* ``--ee-credentials``: a key file path exists on the launching machine only; Dataflow
  workers authenticate with their service account (the default, ``adc``).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from pipelines.template_params import parameter_name  # noqa: E402  (ROOT on sys.path first)

STAGES = {"build-dataset": "pipelines.build_dataset", "predict-map": "pipelines.predict_map"}
# flags a template run must have although the CLI does not require them (it has --dry-run)
TEMPLATE_REQUIRED = {"predict-map": {"model-dir", "out"}}

SKIPPED = {
    "help": "argparse's own",
    "dry-run": "a template launch is a real job; plans come from the CLI",
    "bbox": "four values (nargs=4) cannot be passed as one --bbox=VALUE; use --aoi or --preset",
    "ee-credentials": "a key file exists on the launching machine only; Dataflow workers use their "
                      "service account (adc, the default)",
}
SWITCH_REASON = "a switch: the launcher passes --NAME=VALUE and argparse refuses a value on a switch"

PATH_FLAGS = {"samples", "out", "holdout-samples", "observations", "stack", "cube", "model-dir", "aoi"}
DATE_FLAGS = {"start", "end", "ee-start", "ee-end"}
PROJECT_FLAGS = {"ee-project"}

RE_INT = r"^[0-9]+$"
RE_FLOAT = r"^-?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?$"
RE_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
RE_GCS = r"^gs://[a-z0-9][-_.a-z0-9]{1,220}[a-z0-9](/.*)?$"
RE_PROJECT = r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$"
RE_BOOL = r"^(true|false)$"

ACRONYMS = {"ndvi": "NDVI", "nbr2": "NBR2", "ee": "Earth Engine", "aoi": "AOI", "s1": "S1", "gpu": "GPU",
            "obs": "observations", "rps": "requests/s", "id": "ID"}


def _choices(stage: str, name: str) -> list[str] | None:
    """Choices the parser leaves to later checks: the registered sources serving the stage, presets."""
    if name == "source":
        from s2mos_transforms import sources
        serves = sources.POINTS if stage == "build-dataset" else sources.TILES
        return sorted(n for n, p in sources.plugins().items() if serves in p.serves)
    if name == "preset":
        from s2mos_transforms.world.presets import PRESETS
        return sorted(PRESETS)
    return None


def _regex(stage: str, name: str, action: argparse.Action) -> str:
    choices = list(action.choices) if action.choices else _choices(stage, name)
    if choices:
        return "^(" + "|".join(re.escape(str(c)) for c in choices) + ")$"
    if action.nargs == "?" and isinstance(action.const, bool):     # --NAME alone or --NAME=true|false
        return RE_BOOL
    if action.type is int:
        return RE_INT
    if action.type is float:
        return RE_FLOAT
    if name in PATH_FLAGS:
        return RE_GCS
    if name in DATE_FLAGS:
        return RE_DATE
    if name in PROJECT_FLAGS:
        return RE_PROJECT
    raise SystemExit(f"make_metadata: {stage} flag --{name} has no known value kind: classify it in "
                     f"{os.path.relpath(__file__, ROOT)} (PATH_FLAGS, DATE_FLAGS, PROJECT_FLAGS, choices or SKIPPED)")


def _label(name: str) -> str:
    words = [ACRONYMS.get(w, w) for w in name.split("-")]
    text = " ".join(words)
    return text[0].upper() + text[1:]


def parser_for(stage: str) -> argparse.ArgumentParser:
    """The stage's real parser, as ``s2mos STAGE`` builds it."""
    import importlib
    parser = argparse.ArgumentParser(prog=f"s2mos {stage}")
    importlib.import_module(STAGES[stage]).configure(parser)
    return parser


def skipped(stage: str) -> dict[str, str]:
    """Flag name → why it is not a template parameter."""
    out = {}
    for action in parser_for(stage)._actions:
        name = action.option_strings[-1].lstrip("-")
        if name in SKIPPED:
            out[name] = SKIPPED[name]
        elif isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            out[name] = SWITCH_REASON
    return out


def metadata(stage: str) -> dict[str, Any]:
    """The metadata.json of one stage's Flex Template."""
    from pipelines.cli import COMMANDS

    left_out = skipped(stage)
    params = []
    for action in parser_for(stage)._actions:
        name = action.option_strings[-1].lstrip("-")
        if name in left_out:
            continue
        help_text = (action.help or "").replace("%%", "%")
        params.append({"name": parameter_name(name), "label": _label(name), "helpText": help_text,
                       "isOptional": not (action.required or name in TEMPLATE_REQUIRED.get(stage, set())),
                       "regexes": [_regex(stage, name, action)]})
    what = COMMANDS[stage][1]
    return {"name": f"s2mos {stage}",
            "description": f"{what[0].upper()}{what[1:]}. Parameters are the flags of `s2mos {stage}` "
                           "(local paths as gs:// URIs); Beam options come from the launch environment.",
            "parameters": params}


def path_of(stage: str) -> str:
    return os.path.join(HERE, stage, "metadata.json")


def render(stage: str) -> str:
    return json.dumps(metadata(stage), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a committed metadata.json is stale")
    args = ap.parse_args(argv)
    stale = []
    for stage in STAGES:
        text, path = render(stage), path_of(stage)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current == text:
            continue
        if args.check:
            stale.append(os.path.relpath(path, ROOT))
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
        print(f"wrote {os.path.relpath(path, ROOT)}")
    if stale:
        print(f"stale: {', '.join(stale)}; run python deploy/templates/make_metadata.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
