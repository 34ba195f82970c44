"""Beam PipelineOptions for every Beam stage: the standard flags, nothing else.

A stage's own flags are parsed by its argparse parser; what is left must be a Beam pipeline
option (``--runner``, ``--project``, ``--region``, ``--temp_location``,
``--direct_num_workers`` …). Anything else is a typo, refused in one line before any work,
so ``--min_obs 3`` never runs silently as if it had not been given.
"""
from __future__ import annotations

import logging

from s2mos_transforms.errors import UserError

METRICS_NAMESPACE = "s2mos"  # the one Beam metrics namespace of every stage


def pipeline_options(extra: list[str], stage: str):
    """PipelineOptions from the unparsed flags; UserError naming every unknown one."""
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
    return options
