"""The end of a build, inside the Beam job: parts → dataset files → swapped into ``--out``.

A Flex Template launch (and any job whose launcher does not wait) exits as soon as the job is
submitted, so whatever the launcher would do after the run never happens. The dataset is
therefore finished by the job's own last step, ``FinishDataset``: `dataset.finalize` writes the
schema, stats, rejections, split, figures and summary into the staging directory and checks the
accounting identity, then `dataset.staging.swap_into_place` replaces ``--out`` whole. A
launcher that waits (the CLI) only reads the summary back and checks the Beam counters.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from s2mos_transforms.sequences import ExtractConfig


@dataclass(frozen=True)
class FinishSpec:
    """Everything the last step needs, as plain picklable values."""
    staging: str
    out: str
    inputs: dict[str, Any]
    test_fraction: float
    n_input: int
    row_rejections: list[dict[str, Any]]    # JSON records of the rows refused before the pipeline
    config: ExtractConfig
    notes: list[str]
    num_shards: int
    require_s1_pair: bool = False           # the dataset inclusion rule, recorded in summary.json


def finish(spec: FinishSpec) -> dict[str, Any]:
    """Write the dataset's files, check the accounting, swap it into place; → the summary.
    An `AccountingError` leaves the staging directory as it is, for inspection."""
    from s2mos_transforms.dataset import staging
    from s2mos_transforms.dataset.finalize import finalize

    summary = finalize(spec.staging, spec.inputs, spec.test_fraction, spec.n_input, spec.row_rejections,
                       spec.config, spec.notes, spec.num_shards, spec.require_s1_pair)
    staging.swap_into_place(spec.staging, spec.out)
    return summary


def finish_after(_parts_written: int, spec: FinishSpec) -> dict[str, Any]:
    """`finish`, as the graph's ``beam.Map`` once every part is written (the count orders it)."""
    return finish(spec)
