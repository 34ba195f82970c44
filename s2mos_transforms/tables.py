"""Reading the tables users bring (samples, observation tables, lab spectra): one reader, one
cell rule, shared by the dataset's sample reader and the `table` source."""
from __future__ import annotations

import io
import os

import numpy as np
import pandas as pd

from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError


def read_table_file(path: str, what: str) -> pd.DataFrame:
    """Read a CSV (optionally .gz) or Parquet file as strings/values; UserError if unreadable.

    Local paths and any filesystem Beam knows (gs://) are accepted.
    """
    lower = path.lower()
    if not lower.endswith((".csv", ".csv.gz", ".parquet", ".pq", ".txt", ".tsv")):
        raise UserError(f"{what} {path}: unsupported file type (expected .csv, .csv.gz or .parquet)")
    try:
        data = _read_bytes(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path}: file not found") from None
    except (OSError, IOError) as err:
        raise UserError(f"{what} {path}: cannot read file ({err})") from None
    try:
        if lower.endswith((".parquet", ".pq")):
            return pd.read_parquet(io.BytesIO(data))
        sep = "\t" if lower.endswith(".tsv") else ","
        return pd.read_csv(io.BytesIO(data), dtype=str, sep=sep, encoding="utf-8-sig",
                           compression="gzip" if lower.endswith(".gz") else None,
                           skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise UserError(f"{what} {path}: the file is empty") from None
    except Exception as err:  # noqa: BLE001 — any parser failure means "unreadable"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{what} {path}: cannot parse file ({first})") from None


def _read_bytes(path: str) -> bytes:
    if fileio.is_remote(path):
        if not fileio.exists(path):
            raise FileNotFoundError(path)
    elif os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory")
    return fileio.read_bytes(path)


def cell_text(v) -> str | None:
    """One cell as a stripped string, None where empty; integers from Parquet lose no digits."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        v = int(v)
    s = str(v).strip()
    return s or None
