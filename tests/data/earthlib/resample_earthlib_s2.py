"""Make `soil_s2.csv`: real soil reflectance spectra of earthlib 1.1.0 resampled to Sentinel-2.

    pip download --no-deps earthlib==1.1.0          # the wheel, MIT licence
    python tests/data/earthlib/resample_earthlib_s2.py earthlib-1.1.0-py3-none-any.whl

Reads `earthlib/data/spectra.sli` (ENVI spectral library, float32, 180 bands 0.40–2.45 µm at
10 nm, water-absorption regions removed) and `spectra.csv` (its metadata) straight from the
wheel, keeps the bare-soil spectra (LEVEL_2 == "bare", LEVEL_3 == "soil"; 4 185, almost all
from the ICRAF-ISRIC soil spectral library), takes every STRIDE-th of them, and resamples each
to the 10 Sentinel-2 bands of `s2mos_transforms.bands.S2_BANDS` with Gaussian responses of the
centres and widths (FWHM) earthlib itself uses for Sentinel-2 (`earthlib/sensors.py`), each
normalised over the wavelengths the library holds. Only NumPy is needed.
"""
from __future__ import annotations

import csv
import io
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

STRIDE = 8
BANDS = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
# earthlib 1.1.0, earthlib/sensors.py, `Sentinel2`: band_centers and band_widths (µm).
CENTRES = (0.494, 0.560, 0.665, 0.704, 0.740, 0.781, 0.834, 0.864, 1.612, 2.194)
WIDTHS = (0.095, 0.045, 0.039, 0.020, 0.018, 0.028, 0.141, 0.033, 0.142, 0.240)


def resample(spectra: np.ndarray, wavelengths: np.ndarray) -> np.ndarray:
    """(n, W) spectra at `wavelengths` (µm) → (n, 10) band reflectance (Gaussian responses)."""
    sigma = np.asarray(WIDTHS) / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    resp = np.exp(-0.5 * ((wavelengths[None, :] - np.asarray(CENTRES)[:, None]) / sigma[:, None]) ** 2)
    resp /= resp.sum(axis=1, keepdims=True)
    return spectra @ resp.T


def main(wheel: str, out: str = str(Path(__file__).with_name("soil_s2.csv"))) -> None:
    with zipfile.ZipFile(wheel) as z:
        header = z.read("earthlib/data/spectra.sli.hdr").decode()
        data = z.read("earthlib/data/spectra.sli")
        meta = list(csv.DictReader(io.StringIO(z.read("earthlib/data/spectra.csv").decode())))
    wl = np.array([float(v) for v in re.search(r"wavelength = \{([^}]*)\}", header).group(1).split(",")])
    lines = int(re.search(r"lines = (\d+)", header).group(1))
    spectra = np.frombuffer(data, "<f4").reshape(lines, wl.size).astype(np.float64)
    soil = [i for i, m in enumerate(meta) if m["LEVEL_2"] == "bare" and m["LEVEL_3"] == "soil"][::STRIDE]
    refl = resample(spectra[soil], wl)
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["name", "source", "lat", "lon", *BANDS])
        for i, row in zip(soil, refl):
            m = meta[i]
            w.writerow([m["NAME"], m["SOURCE"], m["LAT"], m["LON"], *(f"{v:.4f}" for v in row)])
    print(f"wrote {len(soil)} soil spectra to {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
