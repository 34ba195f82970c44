"""Read and validate a soil sample table (the contract in docs/architecture.md), before any other work.

A table that cannot be read at all, or lacks a required column, raises `UserError` naming
the file. Bad rows do not stop the run: each becomes a `Rejection` with one reason:

================  =====================================================================
missing_point_id  the point_id cell is empty
missing_value     lat, lon or clay is empty
non_numeric       lat, lon or clay is not a finite number
lat_out_of_range  latitude outside [−90, 90]
lon_out_of_range  longitude outside [−180, 180]
clay_out_of_range clay outside [0, 100] %
duplicate_point_id the point_id already appeared (earlier row, or in the main samples)
================  =====================================================================

Rows are checked in that order; the first failing check names the reason.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable

import numpy as np
import pandas as pd

from s2mos_transforms import bands
from s2mos_transforms.errors import UserError
from s2mos_transforms.tables import cell_text, read_table_file

# Reasons, in the order the checks run.
MISSING_POINT_ID = "missing_point_id"
MISSING_VALUE = "missing_value"
NON_NUMERIC = "non_numeric"
LAT_OUT_OF_RANGE = "lat_out_of_range"
LON_OUT_OF_RANGE = "lon_out_of_range"
CLAY_OUT_OF_RANGE = "clay_out_of_range"
DUPLICATE_POINT_ID = "duplicate_point_id"
ROW_REASONS: tuple[str, ...] = (MISSING_POINT_ID, MISSING_VALUE, NON_NUMERIC, LAT_OUT_OF_RANGE,
                                LON_OUT_OF_RANGE, CLAY_OUT_OF_RANGE, DUPLICATE_POINT_ID)

ORIGIN_SAMPLES = "samples"
ORIGIN_HOLDOUT = "holdout"

_RANGES = {"lat": (-90.0, 90.0, LAT_OUT_OF_RANGE), "lon": (-180.0, 180.0, LON_OUT_OF_RANGE),
           "clay": (0.0, 100.0, CLAY_OUT_OF_RANGE)}


@dataclasses.dataclass(frozen=True)
class Rejection:
    """One input row that will not be in the dataset, and why. ``row`` is the 1-based data
    row of the file (header excluded); ``origin`` says which input table it came from."""

    point_id: str | None
    reason: str
    detail: str
    origin: str = ORIGIN_SAMPLES
    row: int | None = None
    file: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=False)


@dataclasses.dataclass
class SampleTable:
    """Valid rows (``point_id, lat, lon, clay, origin, row``, input order) and rejections."""

    path: str
    points: pd.DataFrame
    rejected: list[Rejection]
    n_rows: int


def canonical_columns(df: pd.DataFrame, path: str, what: str = "samples") -> pd.DataFrame:
    """Rename LUCAS aliases (case-insensitive) to the contract names; UserError on ambiguity
    or on missing required columns."""
    lookup = {name.lower(): name for name in bands.SAMPLE_COLUMNS}
    lookup.update({alias.lower(): canon for alias, canon in bands.SAMPLE_ALIASES.items()})
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for col in df.columns:
        canon = lookup.get(str(col).strip().lower())
        if canon is None:
            continue
        if canon in seen:
            raise UserError(f"{what} {path}: columns {seen[canon]!r} and {col!r} both give {canon!r}")
        seen[canon] = str(col)
        mapping[col] = canon
    missing = [c for c in bands.SAMPLE_COLUMNS if c not in seen]
    if missing:
        found = ", ".join(map(str, df.columns)) or "none"
        raise UserError(f"{what} {path}: missing required column(s) {', '.join(missing)} "
                        f"(found: {found}; LUCAS names POINT_ID, GPS_LAT, GPS_LONG are accepted)")
    return df.rename(columns=mapping)[list(bands.SAMPLE_COLUMNS)]


def _as_text(values: pd.Series) -> pd.Series:
    """Cells as stripped strings (see cell_text)."""
    return pd.Series([cell_text(v) for v in values.astype(object).to_numpy()], index=values.index, dtype=object)


def validate_samples(df: pd.DataFrame, path: str, origin: str = ORIGIN_SAMPLES,
                     seen_ids: dict[str, str] | None = None) -> SampleTable:
    """Check every row of a canonical sample table; ``seen_ids`` (point_id → where) carries
    ids of a table read before, so ids are unique across the main and held-out tables."""
    seen = {} if seen_ids is None else seen_ids
    ids = _as_text(df["point_id"])
    numbers = {}
    texts = {}
    for col in ("lat", "lon", "clay"):
        texts[col] = _as_text(df[col])
        numbers[col] = pd.to_numeric(texts[col], errors="coerce").astype(np.float64).to_numpy()
    keep_rows, rejected = [], []
    for i in range(len(df)):
        row = i + 1
        pid = ids.iat[i]

        def reject(reason: str, detail: str) -> None:
            rejected.append(Rejection(pid, reason, detail, origin, row, path))

        if pid is None:
            reject(MISSING_POINT_ID, "empty point_id")
            continue
        empty = [c for c in ("lat", "lon", "clay") if texts[c].iat[i] is None]
        if empty:
            reject(MISSING_VALUE, f"empty {', '.join(empty)}")
            continue
        bad = [f"{c}={texts[c].iat[i]!r}" for c in ("lat", "lon", "clay") if not np.isfinite(numbers[c][i])]
        if bad:
            reject(NON_NUMERIC, f"not a finite number: {', '.join(bad)}")
            continue
        out_of_range = False
        for col, (lo, hi, reason) in _RANGES.items():
            v = numbers[col][i]
            if not lo <= v <= hi:
                reject(reason, f"{col}={v:g} outside [{lo:g}, {hi:g}]")
                out_of_range = True
                break
        if out_of_range:
            continue
        if pid in seen:
            reject(DUPLICATE_POINT_ID, f"point_id {pid!r} already in {seen[pid]}")
            continue
        seen[pid] = f"{os.path.basename(path)} row {row}"
        keep_rows.append(i)
    points = pd.DataFrame({
        "point_id": ids.iloc[keep_rows].astype(str).to_numpy(dtype=object),
        "lat": numbers["lat"][keep_rows],
        "lon": numbers["lon"][keep_rows],
        "clay": numbers["clay"][keep_rows],
        "origin": origin,
        "row": np.asarray(keep_rows, np.int64) + 1,
    })
    return SampleTable(path=path, points=points, rejected=rejected, n_rows=len(df))


def read_samples(path: str, origin: str = ORIGIN_SAMPLES, seen_ids: dict[str, str] | None = None,
                 what: str = "samples") -> SampleTable:
    """Read and validate a sample table (CSV or Parquet; LUCAS 2009 names accepted)."""
    df = read_table_file(path, what)
    df = canonical_columns(df, path, what)
    return validate_samples(df, path, origin, seen_ids)


def read_sample_tables(samples: str, holdout: str | None = None) -> tuple[pd.DataFrame, list[Rejection], int]:
    """The main table and an optional held-out site table: valid points (main first, then
    held-out, in row order), every rejection, and the number of input rows."""
    seen: dict[str, str] = {}
    main = read_samples(samples, ORIGIN_SAMPLES, seen)
    tables = [main]
    if holdout:
        tables.append(read_samples(holdout, ORIGIN_HOLDOUT, seen, what="holdout samples"))
    points = pd.concat([t.points for t in tables], ignore_index=True)
    rejected: list[Rejection] = [r for t in tables for r in t.rejected]
    return points, rejected, sum(t.n_rows for t in tables)


def iter_rejections_json(rejections: Iterable[Rejection]) -> Iterable[str]:
    for r in rejections:
        yield r.to_json()
