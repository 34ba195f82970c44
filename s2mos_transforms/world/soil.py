"""Soil fields: clay, sand (silt the rest), SOC and iron, spatially correlated, with a latitude trend."""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.special import betaincinv

from s2mos_transforms.world import physics_params as P
from s2mos_transforms.world.noise import MultiScaleField, gaussian_to_uniform
from s2mos_transforms.world.presets import Preset

# Length scales (km) and variance shares of the soil fields: continental, regional, landscape,
# and within-field variation, so a 2 km map shows structure and Europe shows gradients.
SOIL_SCALES = {300.0: 0.30, 30.0: 0.25, 1.5: 0.25, 0.15: 0.20}
ALBEDO_LOG_SD = 0.22


@dataclasses.dataclass
class SoilProperties:
    clay: np.ndarray   # %
    sand: np.ndarray   # %
    soc: np.ndarray    # g/kg
    iron: np.ndarray   # standard score of free iron oxides (red slope)
    albedo: np.ndarray  # multiplicative local albedo factor (parent material, stoniness)
    swir_mineral: np.ndarray  # standard score of non-clay SWIR minerals (carbonates, micas)

    @property
    def silt(self) -> np.ndarray:
        """Silt (%): the rest of the fine earth (sand + silt + clay = 100)."""
        return np.maximum(100.0 - self.clay - self.sand, 0.0)


class SoilModel:
    def __init__(self, preset: Preset, seed: int):
        self.preset = preset
        scales = dict(preset.soil_scales) if preset.soil_scales else SOIL_SCALES
        self.clay_field = MultiScaleField(seed, 11, scales)
        self.sand_field = MultiScaleField(seed, 12, scales)
        self.soc_field = MultiScaleField(seed, 13, {300.0: 0.4, 30.0: 0.3, 1.5: 0.3})
        self.iron_field = MultiScaleField(seed, 14, {100.0: 0.5, 5.0: 0.5})
        self.albedo_field = MultiScaleField(seed, 15, {50.0: 0.4, 5.0: 0.3, 0.5: 0.3})
        self.swir_field = MultiScaleField(seed, 16, {100.0: 0.5, 3.0: 0.5})
        # One realisation of a continental field need not have mean 0 and sd 1 over the extent:
        # standardise on a fixed reference sample so the preset's clay marginal is the target.
        from s2mos_transforms.world.presets import lonlat_to_km
        rng = np.random.default_rng([seed, 99])
        lat = rng.uniform(*preset.lat_range, 4000)
        lon = rng.uniform(*preset.lon_range, 4000)
        self._clay_mu, self._clay_sd = 0.0, 1.0
        z = self._clay_z(lat, *lonlat_to_km(lon, lat))
        self._clay_mu, self._clay_sd = float(z.mean()), float(z.std())

    def _clay_z(self, lat, x_km, y_km) -> np.ndarray:
        trend = self.preset.clay_lat_trend
        z = np.sqrt(trend) * self._lat_z(lat) + np.sqrt(1.0 - trend) * self.clay_field(x_km, y_km)
        return (z - self._clay_mu) / self._clay_sd

    def _lat_z(self, lat: np.ndarray) -> np.ndarray:
        lo, hi = self.preset.lat_range
        half = max((hi - lo) / 2.0, 1e-6)
        return (np.asarray(lat) - (lo + hi) / 2.0) / (half / np.sqrt(3.0))  # unit variance over extent

    def properties(self, lat, lon, x_km, y_km) -> SoilProperties:
        z_clay = self._clay_z(lat, x_km, y_km)
        a, b = self.preset.clay_beta
        u = np.clip(gaussian_to_uniform(z_clay), 1e-6, 1 - 1e-6)
        clay = np.clip(100.0 * betaincinv(a, b, u), 1.0, 95.0)
        # Sand takes a share of the non-clay fraction; negatively tied to clay by construction.
        sand_share = 0.15 + 0.7 * gaussian_to_uniform(0.8 * self.sand_field(x_km, y_km) - 0.6 * (z_clay))
        sand = (100.0 - clay) * sand_share
        # SOC: log-normal, more in the north and in clayey soils (g/kg).
        z_soc = 0.7 * self.soc_field(x_km, y_km) + 0.35 * self._lat_z(lat) + 0.08 * z_clay
        soc = np.clip(14.0 * np.exp(0.40 * z_soc), 4.0, 45.0)
        iron = self.iron_field(x_km, y_km)
        # Parent material and stoniness dominate field albedo (hence the weak clay-band
        # correlations of the paper's Figure 3).
        albedo = np.exp(ALBEDO_LOG_SD * self.albedo_field(x_km, y_km))
        return SoilProperties(clay, sand, soc, iron, albedo, self.swir_field(x_km, y_km))


def kelvin_suction_mpa(relative_humidity: float, temperature_k: float = P.AIR_TEMPERATURE_K) -> float:
    """Matric suction (MPa) of soil water in equilibrium with air at `relative_humidity`."""
    gas_constant, water_molar_volume = 8.314, 1.8e-5          # J/(mol K), m³/mol
    return -gas_constant * temperature_k / water_molar_volume * np.log(relative_humidity) / 1e6


def air_dry_water(wilting, clay, sand, relative_humidity: float = P.AIR_DRY_RH):
    """Volumetric water (m³/m³) of a soil in equilibrium with air at `relative_humidity`: the
    Campbell curve (b from texture, Cosby et al. 1984) from the wilting point down, bent to
    zero at oven dryness (Ross, Williams & Bristow 1991). Finer soils keep more water because
    both their wilting point and their b are larger."""
    c = 1.0 / (P.CAMPBELL_B_INTERCEPT + P.CAMPBELL_B_CLAY * np.asarray(clay) + P.CAMPBELL_B_SAND * np.asarray(sand))
    psi, psi0 = kelvin_suction_mpa(relative_humidity), P.OVEN_DRY_MPA
    return wilting * (psi ** -c - psi0 ** -c) / (P.WILTING_MPA ** -c - psi0 ** -c)


def hydraulics(soil: SoilProperties) -> dict:
    """Soil-only terms of moisture, roughness and crusting, each (n, 1) (physics_params):
    porosity, air-dry and wilting-point water content (m³/m³), the texture index of drydown
    (0 sand … 1 clay), crust susceptibility (silty and clayey, low-SOC soils) and the rate
    (1/mm) at which rain smooths a tilled surface (slowest near 31 % clay, Potter 1990)."""
    clay, sand, silt = soil.clay[:, None], soil.sand[:, None], soil.silt[:, None]
    porosity = P.POROSITY_INTERCEPT + P.POROSITY_SAND * sand + P.POROSITY_CLAY * clay
    wilting = np.minimum(P.WILTING_BASE + P.WILTING_PER_CLAY * clay, porosity - 0.1)
    air_dry = air_dry_water(wilting, clay, sand)
    f = np.clip((P.TEXTURE_CLAY_WEIGHT * clay + P.TEXTURE_SILT_WEIGHT * silt - P.TEXTURE_OFFSET)
                / P.TEXTURE_SPAN, 0.0, 1.0)
    organic = np.clip(1.2 - soil.soc[:, None] / 40.0, 0.3, 1.0)
    crust_sus = np.clip((silt + 0.5 * clay - 25.0) / 40.0, 0.0, 1.0) * organic
    p0_stable, p0_unstable = P.ROUGH_P0_MM
    rough_instability = np.clip(np.abs(clay - P.ROUGH_STABLE_CLAY) / P.ROUGH_STABLE_CLAY, 0.0, 1.0) * organic
    rough_rate = 1.0 / (p0_stable + (p0_unstable - p0_stable) * rough_instability)
    return {"porosity": porosity, "air_dry": air_dry, "wilting": wilting, "texture_f": f,
            "crust_sus": crust_sus, "rough_rate": rough_rate}
