"""Sentinel-2 L2A reflectance of a mixed surface: soil (clay, SOC, iron, moisture, roughness),
green vegetation, crop residue; clouds, shadows, snow; sensor noise. Band order: bands.S2_BANDS.
"""
from __future__ import annotations

import numpy as np

from s2mos_transforms.world import physics_params as P

# Dry bare-soil reflectance of a typical European cropland soil (clay 23 %, SOC 14 g/kg). The
# red (B4) is set so that the laboratory NDVI matches real soil libraries resampled to S2
# (median ≈ 0.11–0.15: earthlib / ICRAF-ISRIC, tests/data/earthlib; tests/test_world_real_data).
SOIL_BASE = 1.08 * np.array([0.095, 0.135, 0.198, 0.212, 0.228, 0.238, 0.250, 0.258, 0.400, 0.370])
# Endmembers: green vegetation and dry crop residue (cellulose/lignin absorption near 2.1 µm,
# hence B12 ≪ B11 and a high NBR2).
VEGETATION = np.array([0.030, 0.070, 0.040, 0.110, 0.280, 0.360, 0.400, 0.410, 0.210, 0.100])
RESIDUE = np.array([0.090, 0.120, 0.150, 0.190, 0.230, 0.260, 0.290, 0.300, 0.390, 0.240])
CLOUD = np.array([0.480, 0.470, 0.470, 0.480, 0.480, 0.480, 0.490, 0.490, 0.400, 0.300])
SNOW = np.array([0.850, 0.850, 0.830, 0.800, 0.770, 0.740, 0.700, 0.680, 0.100, 0.080])
VIS = slice(0, 4)
B3, B4, B11, B12 = 1, 2, 8, 9
LAB_BRIGHTENING = 1.12  # sieved, dry, smooth laboratory samples are brighter than the field


def dry_soil_spectrum(clay, sand, soc, iron, albedo, swir_mineral=0.0) -> np.ndarray:
    """(n, 10) dry soil reflectance: albedo falls with SOC and (weakly) clay and rises with
    sand; iron oxides steepen the red slope; Al-OH absorption near 2.2 µm deepens with clay
    (B12/B11), blurred by other SWIR-active minerals."""
    clay, sand, soc = (np.asarray(v, np.float64)[:, None] for v in (clay, sand, soc))
    a = (soc / 14.0) ** -0.25 * (1.0 - 0.0015 * (clay - 23.0)) * (1.0 + 0.0015 * (sand - 35.0))
    a = a * np.asarray(albedo, np.float64)[:, None]
    r = SOIL_BASE[None, :] * a
    r[:, VIS] *= (soc / 14.0) ** -0.08
    iron = np.asarray(iron, np.float64)
    r[:, B4] *= 1.0 + 0.06 * iron
    r[:, B3] *= 1.0 + 0.02 * iron
    r[:, B12] = r[:, B11] * (0.96 - P.CLAY_RATIO_SLOPE * clay[:, 0]
                             + P.SWIR_MINERAL_RATIO * np.asarray(swir_mineral, np.float64))
    return r


def lab_spectrum(dry: np.ndarray, ratio_noise: np.ndarray, band_noise: np.ndarray) -> np.ndarray:
    """Laboratory spectra (n, 10) of dried, sieved samples: brighter than the field, with the
    measurement's scatter: per band (band_noise (n, 10) ~ N(0, 1)) and in the SWIR ratio
    (ratio_noise (n,) ~ N(0, 1))."""
    lab = dry * LAB_BRIGHTENING * (1.0 + P.LAB_BAND_SD * band_noise)
    lab[:, B12] *= np.exp(P.LAB_RATIO_SD * ratio_noise)
    return lab


def moist_soil(dry: np.ndarray, saturation: np.ndarray) -> np.ndarray:
    """Darken (..., 10) dry reflectance by the degree of saturation (...) above air-dry
    (Lobell & Asner 2002; constants in physics_params)."""
    s = np.clip(np.asarray(saturation), 0.0, 1.0)[..., None]
    sat = dry * P.WET_FLOOR
    return sat + (dry - sat) * np.exp(-P.WET_C * s)


def crust_brightening(crust: np.ndarray) -> np.ndarray:
    """Multiplicative brightening of a structural crust of intensity crust ∈ [0, 1]."""
    return 1.0 + P.CRUST_BRIGHTENING * np.asarray(crust)


def roughness_shading(rms_cm: np.ndarray, sun_zenith_deg: np.ndarray) -> np.ndarray:
    """Self-shadowing of clods: rougher soil and lower sun → darker (multiplicative)."""
    return np.exp(-0.035 * np.asarray(rms_cm) * np.tan(np.radians(np.minimum(sun_zenith_deg, 75.0))))


def sun_zenith_deg(lat, day) -> np.ndarray:
    """Solar zenith near 10:30 local time (deg)."""
    decl = 23.44 * np.sin(2 * np.pi * (np.asarray(day) % 365.25 - 80.0) / 365.25)
    return np.abs(np.asarray(lat) - decl) + 8.0


def mix(soil: np.ndarray, green: np.ndarray, residue: np.ndarray) -> np.ndarray:
    g, r = np.asarray(green)[..., None], np.asarray(residue)[..., None]
    return (1.0 - g - r) * soil + g * VEGETATION + r * RESIDUE


def ndvi(r: np.ndarray) -> np.ndarray:
    return (r[..., 6] - r[..., 2]) / np.maximum(r[..., 6] + r[..., 2], 1e-9)
