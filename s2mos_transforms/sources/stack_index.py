"""What a GeoTIFF stack holds: its acquisitions and their files, from an index CSV or a folder.

An **acquisition** is one sensor overpass over one scene (an S2 granule, an S1 slice): a
UTC time, a scene key, per-acquisition metadata (scene cloud %, incidence angle) and the
files that hold its bands. Two ways to describe a stack (README, "Your own Sentinel files"):

* an **index CSV** (``--stack index.csv``, or a folder holding ``index.csv``), one row per
  file: ``path`` (relative to the index's folder, or absolute), ``sensor`` (S2|S1),
  ``datetime`` (UTC; an offset is converted), ``band`` (one name, or the bands of a
  multi-band file in order, separated by ``;``, ``|``, space or ``+``), and optionally
  ``unit`` (S1: ``dB`` default, or ``linear`` power, converted to dB), ``offset`` (S2: added
  to the stored integers, e.g. -1000 for processing baseline ≥ 04.00), ``scene_cloud_pct``,
  ``angle`` and ``scene`` (the files of one sensor, time and scene are one acquisition; without
  a scene, all files of one sensor and time are; two granules of one overpass need it);
* a **folder** in the naming convention: every ``*.tif`` whose parent folder's name holds a
  ``YYYYMMDDTHHMMSS`` UTC time and whose sensor is named by that folder's prefix (``S2…``,
  ``S1…``) or by the folder above it (``S2/``, ``S1/``); the band(s) are the ``_``-separated
  tokens of the file name (``B4.tif``, ``…_B8A.tif``, ``B2_B3_B4_B8.tif``, ``SCL.tif``,
  ``VV.tif``); an optional ``meta.json`` in the acquisition folder gives ``scene_cloud_pct``,
  ``angle``, ``unit``, ``offset``.

Bad rows and files become notes (one line each, naming the file) and are skipped, never fatal.
"""
from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import re

import numpy as np
import pandas as pd

from s2mos_transforms import bands, fileio
from s2mos_transforms.errors import UserError

INDEX_NAME = "index.csv"
SCL = "SCL"
KNOWN_BANDS = frozenset(bands.S2_BANDS + (SCL,) + bands.S1_BANDS)
_TIME_RE = re.compile(r"(\d{8}T\d{6})")
_BAND_RE = re.compile(r"^B0*(\d{1,2}A?)$", re.IGNORECASE)
_SEP_RE = re.compile(r"[;|+\s,]+")


@dataclasses.dataclass(frozen=True)
class StackFile:
    """One GeoTIFF of an acquisition: its path and the band held by each of its bands."""

    path: str
    bands: tuple[str, ...]
    unit: str = "dB"          # S1 only: dB or linear
    offset: float = 0.0       # S2 only: added to the stored integers


@dataclasses.dataclass
class Acquisition:
    sensor: str
    time: np.datetime64           # datetime64[s], UTC
    scene: str
    files: list[StackFile]
    scene_cloud_pct: float = float("nan")
    angle: float = float("nan")

    @property
    def label(self) -> str:
        return f"{self.sensor} {str(self.time)}Z{' ' + self.scene if self.scene else ''}"

    def band_files(self) -> dict[str, tuple[StackFile, int]]:
        """band name → (file, 1-based band index in it); the first file naming a band wins."""
        out: dict[str, tuple[StackFile, int]] = {}
        for f in self.files:
            for i, b in enumerate(f.bands):
                out.setdefault(b, (f, i + 1))
        return out

    def duplicate_bands(self) -> list[str]:
        """Bands named by more than one file (two scenes of one time without a scene key)."""
        names = [b for f in self.files for b in f.bands]
        return sorted({b for b in names if names.count(b) > 1})


def band_name(text: str) -> str | None:
    """``B02``/``b2``/``B8A``/``scl``/``vv`` → the canonical name, or None if not a band."""
    t = str(text).strip()
    m = _BAND_RE.match(t)
    if m:
        t = "B" + m.group(1).upper()
    t = t.upper() if t.upper() in (SCL,) + bands.S1_BANDS else t
    return t if t in KNOWN_BANDS else None


def band_list(text: str) -> tuple[str, ...] | None:
    names = [band_name(tok) for tok in _SEP_RE.split(str(text).strip()) if tok]
    return tuple(names) if names and all(names) else None


def sensor_of(text: str) -> str | None:
    t = str(text).strip().upper()
    return bands.SENSOR_S2 if t.startswith("S2") else bands.SENSOR_S1 if t.startswith("S1") else None


def _number(value, default: float = float("nan")) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return default if math.isnan(v) else v


def _unit(value) -> str | None:
    t = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip().lower()
    return "dB" if t in ("", "db") else "linear" if t in ("linear", "lin", "power") else None


def load_stack(path: str) -> tuple[list[Acquisition], list[str]]:
    """(acquisitions sorted by time, notes) of an index CSV or a stack folder.

    UserError only when `path` itself is unusable (missing, an index without its columns);
    a bad row or file is a note and is skipped."""
    if fileio.is_remote(path):                  # an object store: an index object, or a prefix
        index = fileio.join(path, INDEX_NAME)
        if fileio.exists(index):
            acqs, notes = read_index(index)
        elif path.lower().endswith(".csv") and fileio.exists(path):
            acqs, notes = read_index(path)
        else:
            acqs, notes = scan_folder(path)
    elif os.path.isdir(path):
        index = os.path.join(path, INDEX_NAME)
        acqs, notes = read_index(index) if os.path.isfile(index) else scan_folder(path)
    elif os.path.isfile(path):
        acqs, notes = read_index(path)
    else:
        raise UserError(f"--stack {path}: no such folder or index file")
    acqs.sort(key=lambda a: (a.time, a.sensor, a.scene))
    if not acqs:
        raise UserError(f"--stack {path}: no usable acquisition (" + ("; ".join(notes[:3]) or "no GeoTIFF found") + ")")
    return acqs, notes


def read_index(path: str) -> tuple[list[Acquisition], list[str]]:
    try:
        table = pd.read_csv(io.BytesIO(fileio.read_bytes(path)), dtype=str, keep_default_na=False)
    except Exception as err:  # noqa: BLE001 — any parse failure is one line about the file
        raise UserError(f"--stack {path}: cannot read the index CSV ({str(err).splitlines()[0]})") from None
    cols = {c.strip().lower(): c for c in table.columns}
    missing = [c for c in ("path", "sensor", "datetime", "band") if c not in cols]
    if missing:
        raise UserError(f"--stack {path}: index is missing column(s) {', '.join(missing)} "
                        f"(found: {', '.join(table.columns) or 'none'})")
    root = path.rstrip("/").rsplit("/", 1)[0] if fileio.is_remote(path) else os.path.dirname(os.path.abspath(path))
    notes: list[str] = []
    groups: dict[tuple, Acquisition] = {}
    for i, row in enumerate(table.to_dict("records"), start=2):    # line 1 is the header
        cell = {k: row[c] for k, c in cols.items()}
        where = f"{path} line {i}"
        file_path = cell["path"].strip()
        if not file_path:
            notes.append(f"{where}: empty path, row skipped")
            continue
        full = file_path if os.path.isabs(file_path) or fileio.is_remote(file_path) else _join(root, file_path)
        sensor = sensor_of(cell["sensor"])
        names = band_list(cell["band"])
        unit = _unit(cell.get("unit"))
        try:
            t = pd.Timestamp(cell["datetime"])
            t = t.tz_localize("UTC") if t.tz is None else t.tz_convert("UTC")
            when = np.datetime64(t.tz_convert(None).to_datetime64(), "s")
        except (ValueError, TypeError):
            when = None
        problem = (None if sensor else f"sensor {cell['sensor']!r} is not S2 or S1") or \
                  (None if when is not None else f"datetime {cell['datetime']!r} is not a date/time") or \
                  (None if names else f"band {cell['band']!r} names no known band "
                                      f"({', '.join(sorted(KNOWN_BANDS))})") or \
                  (None if unit else f"unit {cell.get('unit')!r} is not dB or linear")
        if problem:
            notes.append(f"{where} ({file_path}): {problem}, row skipped")
            continue
        if not (fileio.exists(full) if fileio.is_remote(full) else os.path.isfile(full)):
            notes.append(f"{where}: {file_path} does not exist, row skipped")
            continue
        scene = cell.get("scene", "").strip()
        key = (sensor, when, scene)
        acq = groups.get(key)
        if acq is None:
            acq = groups[key] = Acquisition(sensor, when, scene, [])
        acq.files.append(StackFile(full, names, unit, _number(cell.get("offset"), 0.0)))
        acq.scene_cloud_pct = _number(cell.get("scene_cloud_pct"), acq.scene_cloud_pct)
        acq.angle = _number(cell.get("angle"), acq.angle)
    return list(groups.values()), notes


def scan_folder(root: str) -> tuple[list[Acquisition], list[str]]:
    notes: list[str] = []
    acqs: list[Acquisition] = []
    for folder, files in _walk(root):
        tifs = sorted(f for f in files if f.lower().endswith((".tif", ".tiff")))
        if not tifs:
            continue
        name = folder.rstrip("/").rsplit("/", 1)[-1]
        m = _TIME_RE.search(name)
        sensor = sensor_of(name) or sensor_of(folder.rstrip("/").rsplit("/", 2)[-2] if "/" in folder else "")
        if not m or not sensor:
            notes.append(f"{folder}: folder name has no YYYYMMDDTHHMMSS time or no S2/S1 sensor, "
                         f"{len(tifs)} file(s) skipped")
            continue
        when = np.datetime64(pd.Timestamp(m.group(1)).to_datetime64(), "s")
        meta = _read_meta(_join(folder, "meta.json"), notes)
        unit = _unit(meta.get("unit")) or "dB"
        acq = Acquisition(sensor, when, name, [], _number(meta.get("scene_cloud_pct")), _number(meta.get("angle")))
        for f in tifs:
            stem = os.path.splitext(f)[0]
            names = band_list(stem.replace("_", " "))
            if names is None:
                last = band_name(stem.split("_")[-1])
                names = (last,) if last else None
            if names is None:
                notes.append(f"{_join(folder, f)}: the file name names no band, file skipped")
                continue
            acq.files.append(StackFile(_join(folder, f), names, unit, _number(meta.get("offset"), 0.0)))
        if acq.files:
            acqs.append(acq)
    return acqs, notes


def _join(folder: str, name: str) -> str:
    return fileio.join(folder, name) if fileio.is_remote(folder) else os.path.join(folder, name)


def _walk(root: str):
    """(folder, file names) under ``root``, sorted: os.walk locally; on an object store the
    objects under the prefix, grouped by their parent "folder"."""
    if not fileio.is_remote(root):
        for folder, _, files in sorted(os.walk(root)):
            yield folder, files
        return
    folders: dict[str, list[str]] = {}
    for path in fileio.glob(root.rstrip("/") + "/**"):
        folder, _, name = path.rpartition("/")
        folders.setdefault(folder, []).append(name)
    yield from sorted(folders.items())


def _read_meta(path: str, notes: list[str]) -> dict:
    if not fileio.exists(path):
        return {}
    try:
        meta = json.loads(fileio.read_text(path))
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError) as err:
        notes.append(f"{path}: not readable JSON ({err}), ignored")
        return {}
