"""Flex Template parameter names and the CLI flags they stand for: one definition for the
metadata generator (`deploy/templates/make_metadata.py`) and the image's entry
(`deploy/flex_main.py`).

A template parameter is named in snake_case (`ndvi_max`), the CLI flag in kebab-case
(`--ndvi-max`). snake_case is the convention of Beam's own options (`temp_location`,
`max_num_workers`) and of Google's Python Flex Templates; Dataflow's documentation does not say
whether a parameter name may contain a hyphen, so none does. The launcher passes each parameter
as `--NAME=VALUE`; `cli_argv` turns the names back into the stage's flags before argparse reads
them, and leaves everything else (Beam's options above all) as it came.
"""
from __future__ import annotations

from collections.abc import Iterable


def parameter_name(flag: str) -> str:
    """The template parameter of a CLI flag: ``--ndvi-max`` → ``ndvi_max``."""
    return flag.lstrip("-").replace("-", "_")


def flag_of(name: str, flags: Iterable[str]) -> str | None:
    """The CLI flag (``--ndvi-max``) among ``flags`` whose parameter is ``name``, else None."""
    matches = [f for f in flags if f.startswith("--") and parameter_name(f) == name]
    if len(matches) > 1:
        raise ValueError(f"flags {', '.join(sorted(matches))} share the template parameter {name!r}")
    return matches[0] if matches else None


def cli_argv(argv: list[str], flags: Iterable[str]) -> list[str]:
    """``argv`` with every ``--NAME[=VALUE]`` whose NAME is the parameter of one of ``flags``
    written as that flag; a flag given as itself, Beam options and values pass unchanged."""
    flags = set(flags)
    out = []
    for arg in argv:
        if arg.startswith("--") and arg.split("=", 1)[0] not in flags:
            name, eq, value = arg[2:].partition("=")
            flag = flag_of(name, flags)
            if flag is not None:
                arg = f"{flag}{eq}{value}"
        out.append(arg)
    return out
