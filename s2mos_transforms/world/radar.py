"""Sentinel-1 C-band backscatter (VV, VH in dB) of bare and vegetated soil.

Bare soil: Dubois et al. (1995) for VV with the dielectric constant of Hallikainen et al.
(1985) at 5 GHz (clay- and sand-dependent), cross-polarised ratio of Oh (2002); vegetation by
the water-cloud model (Attema & Ulaby 1978); multiplicative Gamma speckle of ~4.4 looks.
"""
from __future__ import annotations

import numpy as np

WAVELENGTH_CM = 5.55      # Sentinel-1 C band, 5.405 GHz
LOOKS = 4.4
# Hallikainen et al. (1985) ε' coefficients at 5 GHz: (a0,a1,a2), (b0,b1,b2), (c0,c1,c2); S, C in %.
_HALLIKAINEN_5GHZ = ((2.502, -0.003, -0.003), (10.101, 0.221, -0.004), (77.482, -0.061, -0.135))
# Water-cloud parameters (A, B) per polarisation, vegetation water content in kg/m².
# A modelling choice: full canopy (4 kg/m²) raises VH by ≈ 1 dB at equal soil moisture, between
# cereals (no VH rise: Bousbih et al. 2017, Sensors 17:2617; Harfenmeister et al. 2019, Remote
# Sens. 11:1569) and soybean (≈ +2.4 dB in published Sentinel-1 points); docs/world.md.
WCM = {"VV": (0.060, 0.14), "VH": (0.015, 0.10)}
# Calibration of the bare-soil models to Sentinel-1 IW statistics over bare fields (Baghdadi
# et al. 2016 report Dubois/Oh biases at C band): VV ≈ −14…−7 dB, VH ≈ −23…−17 dB.
VV_CALIBRATION_DB = 4.0
VH_RATIO_CALIBRATION_DB = 3.0


def dielectric_constant(moisture, sand, clay) -> np.ndarray:
    """Real relative permittivity of soil (Hallikainen 1985, 5 GHz); moisture in m³/m³."""
    (a0, a1, a2), (b0, b1, b2), (c0, c1, c2) = _HALLIKAINEN_5GHZ
    mv = np.asarray(moisture)
    return ((a0 + a1 * sand + a2 * clay) + (b0 + b1 * sand + b2 * clay) * mv
            + (c0 + c1 * sand + c2 * clay) * mv ** 2)


def bare_soil_sigma0(eps, rms_cm, theta_deg) -> tuple[np.ndarray, np.ndarray]:
    """Linear σ° (VV, VH) of bare soil."""
    th = np.radians(theta_deg)
    k = 2 * np.pi / WAVELENGTH_CM
    ks = k * np.asarray(rms_cm)
    vv = (10 ** -2.35 * np.cos(th) ** 3 / np.sin(th) ** 3 * 10 ** (0.046 * eps * np.tan(th))
          * (ks * np.sin(th)) ** 1.1 * WAVELENGTH_CM ** 0.7)
    q = 0.095 * (0.13 + np.sin(1.5 * th)) ** 1.4 * (1 - np.exp(-1.3 * ks ** 0.9))
    vv = vv * 10 ** (VV_CALIBRATION_DB / 10)
    return vv, q * vv * 10 ** (VH_RATIO_CALIBRATION_DB / 10)


def water_cloud_terms(veg_water, theta_deg, pol: str) -> tuple[np.ndarray, np.ndarray]:
    """Two-way attenuation τ² and volume backscatter of the water-cloud model: the canopy
    over soil σ°_soil gives σ° = volume + τ²·σ°_soil."""
    a, b = WCM[pol]
    cos = np.cos(np.radians(theta_deg))
    tau2 = np.exp(-2 * b * veg_water / cos)
    return tau2, a * veg_water * cos * (1 - tau2)


def to_db(x) -> np.ndarray:
    return 10.0 * np.log10(np.maximum(x, 1e-6))
