"""The ``table`` source: a long-format observations table (CSV or Parquet), points only.

Data extracted elsewhere (another platform, a field campaign, a colleague's export) enters
the same pipeline through this table (docs/architecture.md, `bands.OBS_COLUMNS`). Lenient on
what is optional, strict on what is required:

* required: ``point_id``, ``datetime`` (``date`` accepted) and the S2 bands ``B2 … B12``
  (cells may be empty). Times come out timezone-aware UTC (``datetime64[ns, UTC]``):
  a naive time (no offset) is read as UTC, a date alone means 00:00 UTC, and a time with an
  offset (``+02:00``) or a zone-aware Parquet column is converted to UTC;
* ``VV, VH`` optional, as a pair: a table without them is S2-only data (no S1 rows; every
  point's paired sequence is empty, `notes` says so), one with only one of them is an error;
  ``angle`` optional;
* ``sensor`` optional: inferred as S2 where B4 is present, else S1;
* ``SCL`` and ``scene_cloud_pct`` optional: without them that filter is skipped, and
  `notes` says so (the build summary repeats it).

The table has no coordinates, so `covers` is True everywhere; a sample point absent from
the table simply has no observations.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from s2mos_transforms import bands
from s2mos_transforms.errors import UserError
from s2mos_transforms.tables import cell_text, read_table_file
from s2mos_transforms.sources.base import POINTS, SamplePoint, SourceError, SourcePlugin, utc_times

REQUIRED: tuple[str, ...] = ("point_id", "datetime") + bands.S2_BANDS
OPTIONAL_TOGETHER: tuple[str, ...] = bands.S1_BANDS      # S2-only tables have neither
DATETIME_ALIASES = ("datetime", "date", "time", "timestamp")


# One loaded table per process, keyed by file identity: the driver's validation and the
# DirectRunner's in-process workers then read the file once, not once per DoFn instance.
_CACHE: dict[tuple, tuple] = {}


def _file_key(path: str) -> tuple | None:
    import os
    if "://" in path:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


class TableSource:
    """Serves `observations` from an in-memory table indexed by point_id."""

    name = "table"

    def __init__(self, path: str):
        self.path = path
        key = _file_key(path)
        if key is not None and key in _CACHE:
            frame, slices, notes = _CACHE[key]
        else:
            self.notes = []
            frame, slices = self._load(path)
            notes = list(self.notes)
            if key is not None:
                _CACHE.clear()              # keep one table per process: they can be large
                _CACHE[key] = (frame, slices, notes)
        self._frame, self._slices, self.notes = frame, slices, list(notes)

    # -- loading -----------------------------------------------------------------------
    def _load(self, path: str) -> tuple[pd.DataFrame, dict[str, tuple[int, int]]]:
        what = "observations"
        raw = read_table_file(path, what)
        cols = {str(c).strip(): c for c in raw.columns}
        lower = {k.lower(): k for k in cols}
        rename = {}
        for canon in bands.OBS_COLUMNS:
            key = lower.get(canon.lower())
            if key is not None:
                rename[cols[key]] = canon
        if "datetime" not in rename.values():
            for alias in DATETIME_ALIASES:
                if alias in lower:
                    rename[cols[lower[alias]]] = "datetime"
                    break
        df = raw.rename(columns=rename)
        missing = [c for c in REQUIRED if c not in df.columns]
        s1_found = [c for c in OPTIONAL_TOGETHER if c in df.columns]
        if s1_found:                        # one S1 band without the other is a broken export
            missing += [c for c in OPTIONAL_TOGETHER if c not in df.columns]
        if missing:
            found = ", ".join(map(str, raw.columns)) or "none"
            raise UserError(f"{what} {path}: missing required column(s) {', '.join(missing)} (found: {found})")

        out = pd.DataFrame({"point_id": pd.Series([cell_text(v) for v in df["point_id"].astype(object).to_numpy()],
                                                 dtype=object)})
        if out["point_id"].isna().any():
            row = int(np.flatnonzero(out["point_id"].isna().to_numpy())[0]) + 1
            raise UserError(f"{what} {path} row {row}: empty point_id")
        out["datetime"] = self._parse_times(df["datetime"], path)
        for col in bands.S2_BANDS + ("SCL",) + bands.S1_BANDS + ("scene_cloud_pct", "angle"):
            if col in df.columns:
                values = pd.to_numeric(df[col], errors="coerce")
                bad = values.isna() & df[col].notna() & (df[col].astype(str).str.strip() != "")
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
                    raise UserError(f"{what} {path} row {row}: {col}={df[col].iloc[row - 1]!r} is not a number")
                out[col] = values.astype(np.float64)
            else:
                out[col] = np.nan
        if not s1_found:
            self.notes.append(f"{path}: no VV/VH columns, S2-only observations (no S1 pair for any point)")
        if "SCL" not in df.columns:
            self.notes.append(f"{path}: no SCL column, pixel cloud/shadow mask skipped")
        if "scene_cloud_pct" not in df.columns:
            self.notes.append(f"{path}: no scene_cloud_pct column, scene cloud filter skipped")

        has_s2 = out["B4"].notna().to_numpy()
        if "sensor" in df.columns:
            sensor = df["sensor"].astype(object).map(lambda v: None if pd.isna(v) else str(v).strip().upper())
            norm = sensor.map(lambda s: None if s is None else
                              bands.SENSOR_S2 if s.startswith("S2") else bands.SENSOR_S1 if s.startswith("S1") else "?")
            bad = norm == "?"
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
                raise UserError(f"{what} {path} row {row}: sensor {df['sensor'].iloc[row - 1]!r} is not S2 or S1")
            inferred = np.where(has_s2, bands.SENSOR_S2, bands.SENSOR_S1)
            out["sensor"] = np.where(norm.isna().to_numpy(), inferred, norm.to_numpy(dtype=object))
        else:
            out["sensor"] = np.where(has_s2, bands.SENSOR_S2, bands.SENSOR_S1)
            self.notes.append(f"{path}: no sensor column, inferred S2 where B4 is present, else S1")

        out = out[list(bands.OBS_COLUMNS)]
        out = out.sort_values(["point_id", "sensor", "datetime"], kind="stable").reset_index(drop=True)
        ids = out["point_id"].to_numpy(dtype=object)
        starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.zeros(0, int)
        stops = np.r_[starts[1:], len(ids)] if len(ids) else np.zeros(0, int)
        slices = {str(ids[s]): (int(s), int(e)) for s, e in zip(starts, stops)}
        return out, slices

    @staticmethod
    def _parse_times(values: pd.Series, path: str) -> pd.Series:
        """The datetime column → ``datetime64[ns, UTC]``: naive times are UTC, offsets are
        converted (``2018-05-01T12:30:00+02:00`` is 10:30 UTC); a bad cell names its row."""
        if pd.api.types.is_datetime64_any_dtype(values):
            return utc_times(values)
        parsed = pd.to_datetime(values, utc=True, errors="coerce", format="mixed")
        bad = parsed.isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0]) + 1
            raise UserError(f"observations {path} row {row}: datetime {values.iloc[row - 1]!r} is not a date/time")
        return utc_times(parsed)

    # -- Source interface ----------------------------------------------------------------
    @property
    def point_ids(self) -> list[str]:
        return list(self._slices)

    def covers(self, lat, lon) -> np.ndarray:
        """No coordinates in the table: every location is "covered"; absent ids have no rows."""
        return np.ones(np.broadcast(np.asarray(lat), np.asarray(lon)).shape, bool)

    def observations(self, points: Sequence[SamplePoint]) -> pd.DataFrame:
        parts = [np.arange(*self._slices[p.point_id]) for p in points if p.point_id in self._slices]
        rows = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return self._frame.iloc[rows].reset_index(drop=True)

    def tile_stack(self, tile, start=None, end=None):
        raise SourceError("the 'table' source serves sample points only, not map tiles")


def _add_arguments(group) -> None:
    group.add_argument("--observations", metavar="PATH",
                       help="observations table, CSV or Parquet, long format (point_id, sensor, datetime, "
                            "scene_cloud_pct, B2…B12, SCL, VV, VH, angle; VV/VH/angle may be absent: S2-only "
                            "data); a datetime without a UTC offset is read as UTC, one with an offset (+02:00) "
                            "is converted to UTC")


def _options(args) -> dict:
    if not getattr(args, "observations", None):
        raise SourceError("the 'table' source needs --observations PATH")
    return {"observations": args.observations}


def _create(observations: str) -> TableSource:
    return TableSource(observations)


PLUGIN = SourcePlugin(
    name="table",
    summary="an observations table extracted elsewhere (points only)",
    serves=frozenset({POINTS}),
    factory=_create,
    add_arguments=_add_arguments,
    options=_options,
)
