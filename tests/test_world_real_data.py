"""The embedded world side by side with real data that ships in tests/data (issue 14).

* Sentinel-1 VV/VH (dB) over real land: the two BigEarthNet S1 patches (tests/data/bigearthnet).
* Real soil reflectance: 524 earthlib 1.1.0 soil spectra resampled to S2
  (tests/data/earthlib/soil_s2.csv, made by resample_earthlib_s2.py there).

The table is printed (pytest -s) and copied into docs/world.md; each row has a tolerance.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from s2mos_transforms import bands

DATA = Path(__file__).parent / "data"


def _nd(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return (a - b) / (a + b)


def _real_s1() -> dict[str, np.ndarray]:
    import rasterio
    out = {}
    for pol in ("VV", "VH"):
        vals = []
        for path in sorted((DATA / "bigearthnet" / "s1").glob(f"*/*_{pol}.tif")):
            with rasterio.open(path) as ds:
                vals.append(ds.read(1).ravel())
        out[pol] = np.concatenate(vals)
    return out


@pytest.fixture(scope="module")
def side_by_side(quick_world):
    obs = pd.read_parquet(quick_world / "observations.parquet")
    state = pd.read_parquet(quick_world / "state.parquet")
    lab = pd.read_csv(quick_world / "lab_spectra.csv")
    real = pd.read_csv(DATA / "earthlib" / "soil_s2.csv")
    s1 = obs["sensor"] == bands.SENSOR_S1
    s2 = ~s1
    clear_bare = (s2 & ~state["cloud"] & ~state["snow"] & (state["green"] < 0.02) & (state["residue"] < 0.02)
                  & ~obs["SCL"].isin(bands.SCL_MASKED)).to_numpy()
    moist = state["moisture"].to_numpy()
    dry = clear_bare & (moist <= np.quantile(moist[clear_bare], 0.25))
    field = obs.loc[dry, list(bands.S2_BANDS)].to_numpy(float) / bands.S2_SCALE
    real_s1 = _real_s1()
    rows = []   # (quantity, world, real, tolerance)

    def add(name, world, real_v, tol):
        rows.append((name, float(world), float(real_v), tol))

    for pol in ("VV", "VH"):
        add(f"S1 {pol} median (dB), all land", np.median(obs.loc[s1, pol]), np.median(real_s1[pol]), 2.5)
        add(f"S1 {pol} 10–90 % spread (dB)", np.subtract(*np.percentile(obs.loc[s1, pol], [90, 10])),
            np.subtract(*np.percentile(real_s1[pol], [90, 10])), 3.0)
    r_ndvi, r_nbr2 = _nd(real["B8"], real["B4"]), _nd(real["B11"], real["B12"])
    for label, frame in (("lab", lab), ("dry bare field", pd.DataFrame(field, columns=bands.S2_BANDS))):
        add(f"soil NDVI median, {label}", np.median(_nd(frame["B8"], frame["B4"])), np.median(r_ndvi), 0.07)
        add(f"soil NBR2 median, {label}", np.median(_nd(frame["B11"], frame["B12"])), np.median(r_nbr2), 0.04)
        add(f"soil B12/B11 median, {label}", np.median(frame["B12"] / frame["B11"]),
            np.median(real["B12"] / real["B11"]), 0.08)
    add("soil B11 median, lab", np.median(lab["B11"]), np.median(real["B11"]), 0.10)
    return rows, {"ndvi": r_ndvi, "nbr2": r_nbr2, "lab": lab, "real": real}


def test_world_vs_real_data_table(side_by_side):
    rows, _ = side_by_side
    lines = ["| quantity | world | real | tolerance |", "|---|---|---|---|"]
    lines += [f"| {n} | {w:.3f} | {r:.3f} | ±{t} |" for n, w, r, t in rows]
    print("\n" + "\n".join(lines))
    bad = [(n, w, r, t) for n, w, r, t in rows if abs(w - r) > t]
    assert not bad, bad


def test_laboratory_spectra_lie_within_the_real_soil_library(side_by_side):
    """The bulk of the world's lab spectra falls inside the real library's range."""
    _, d = side_by_side
    lab, real = d["lab"], d["real"]
    for name, world, ref in (("NDVI", _nd(lab["B8"], lab["B4"]), d["ndvi"]),
                             ("NBR2", _nd(lab["B11"], lab["B12"]), d["nbr2"])):
        lo, hi = np.percentile(ref, [2, 98])
        inside = np.mean((world >= lo) & (world <= hi))
        assert inside > 0.9, (name, inside, lo, hi)
    for band in ("B2", "B4", "B8", "B11", "B12"):
        lo, hi = np.percentile(real[band], [1, 99])
        assert lo <= np.median(lab[band]) <= hi, band
