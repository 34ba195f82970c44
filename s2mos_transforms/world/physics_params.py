"""Every physical parameter of the embedded world's soil moisture, darkening, crusting,
radar geometry and cloud-mask error models, in one place, each with its source.

Where a paper gives a range, the value is chosen inside it and the range is quoted; where a
value is read from a paper's figures or abstract rather than a table, the comment says so. The
papers were not at hand when these were written (quoted from memory): check a value against
its source before relying on it.
docs/world.md lists the models and shows the world side by side with real data.
"""
from __future__ import annotations

import numpy as np

# ---- soil hydraulic properties --------------------------------------------------------------
# Porosity (saturated volumetric water content, m³/m³) from texture: Cosby et al. (1984), Water
# Resour. Res. 20(6):682–690, Table 4: θs = (50.5 − 0.142·sand% − 0.037·clay%) / 100.
POROSITY_INTERCEPT, POROSITY_SAND, POROSITY_CLAY = 0.505, -0.00142, -0.00037
# Air-dry (hygroscopic) water content grows with clay (specific surface): ≈ 0.01 for sands to
# ≈ 0.06–0.09 m³/m³ for clays (order of magnitude of e.g. Arthur et al. 2013, SSSAJ 77:1791).
AIR_DRY_BASE, AIR_DRY_PER_CLAY = 0.01, 0.08 / 100.0
# Wilting point (θ at 1 500 kPa), the dry end of the few-cm layer: ≈ 0.03 (sand) … 0.30 (clay
# 60 %), a linear fit through the texture classes of Saxton & Rawls (2006), SSSAJ 70:1569, Table 3.
WILTING_BASE, WILTING_PER_CLAY = 0.03, 0.0045

# ---- two-layer drydown after rain ------------------------------------------------------------
# Texture index f ∈ [0, 1] (0 sand … 1 clay) that sets the drydown time: finer soils hold water
# longer (larger capillary length: Lehmann, Assouline & Or 2008, Phys. Rev. E 77:056309).
TEXTURE_CLAY_WEIGHT, TEXTURE_SILT_WEIGHT, TEXTURE_OFFSET, TEXTURE_SPAN = 1.0, 0.5, 10.0, 50.0
# Optical skin (top millimetres): dries within hours to ~1–2 days after rain, decoupled from
# the layer below (Capehart & Carlson 1997, Water Resour. Res. 33:1383; stage-1 evaporation
# of hours for sands to ~1–2 days for fine soils, Lehmann et al. 2008). e-folding time (days)
# at reference evaporative demand (summer), sandy and clayey end.
TAU_SKIN_DAYS = (0.25, 1.2)
# The few-cm layer C-band senses: SMAP drydowns of the ~5 cm layer have e-folding times of
# mostly 2–10 days (McColl et al. 2017, Geophys. Res. Lett. 44:3682), shorter for sands.
TAU_DEEP_DAYS = (2.5, 8.0)
# Water (mm) that takes each layer from air-dry to saturated: ~1 cm and ~5 cm of soil at
# porosity ≈ 0.45 hold ≈ 4.5 and ≈ 22 mm.
SKIN_CAPACITY_MM, DEEP_CAPACITY_MM = 4.0, 20.0
# Capillary rise keeps the skin at a small fraction of the wetness below: the skin decouples
# from the layer below within hours of drying (Capehart & Carlson 1997).
# Within-field scatter of the wetness (relative sd, per pixel and date; logistic noise).
WETNESS_REL_SD = 0.15
SKIN_FROM_DEEP = 0.10
# Rain falls mostly under the cloudy synoptic systems: on a clear day it is this much as likely
# as on an average day (a modelling choice; clear skies and dry days go together).
RAIN_ON_CLEAR_DAYS = 0.15
# Evaporative demand relative to a mid-latitude summer day: drying is ~2–3× slower in winter
# (reference ET over Europe, e.g. FAO-56 Allen et al. 1998 climatologies), faster in the south.
DEMAND_WINTER, DEMAND_SUMMER, DEMAND_SOUTH = 0.40, 1.0, 0.30

# ---- optical darkening by moisture (Lobell & Asner 2002, SSSAJ 66:722) -----------------------
# R = R_sat + (R_dry − R_sat)·exp(−c·S), S = degree of saturation above air-dry. Lobell & Asner
# found the curves of four soils collapse when moisture is expressed as degree of saturation,
# and that VNIR saturates at much lower moisture than SWIR (their abstract and Fig. 3). The c
# and floor values reproduce those shapes (VNIR: ~95 % of its darkening by S ≈ 0.3; SWIR:
# still darkening at S ≈ 1, with the larger total darkening); they are read from the paper's
# curves, not copied from its table. Band order: bands.S2_BANDS.
WET_C = np.array([10.0, 10.0, 10.0, 10.0, 9.0, 8.0, 7.5, 7.5, 3.2, 3.0])
WET_FLOOR = np.array([0.52, 0.52, 0.52, 0.52, 0.52, 0.52, 0.52, 0.52, 0.25, 0.22])

# ---- rain-driven roughness decay and crusting -------------------------------------------------
# Random roughness of a tilled surface decays exponentially with cumulative rainfall since
# tillage (Zobeck & Onstad 1987, Soil Tillage Res. 9:1–20; Potter 1990, Trans. ASAE 33:1889):
# RR = RR_settled + (RR_0 − RR_settled)·exp(−P/P0), with P0 of tens of mm, smallest for silty,
# low-organic soils that slake (Le Bissonnais 1996, Eur. J. Soil Sci. 47:425). P0 (mm) for a
# stable (sandy/organic) and an unstable (silty) soil; a slow time-only settling stays.
ROUGH_P0_MM = (110.0, 45.0)
ROUGH_TIME_DAYS = 240.0
# Structural crusts (seals) form after ~20–60 mm of rain on silty and clayey, low-SOC soils
# (Le Bissonnais 1996); they brighten the surface by up to ~10–15 % across VNIR–SWIR
# (Goldshleger et al. 2010, Soil Sci. Soc. Am. J. 74:1433; de Jong et al. 2011, Geoderma 160:324).
CRUST_RAIN_MM = 35.0
CRUST_BRIGHTENING = 0.12

# ---- Sentinel-1 acquisition geometry ----------------------------------------------------------
# Over Europe a site is seen from 2–4 relative orbits, ascending (~18 h local) and descending
# (~06 h), at 29–46° incidence across the IW swath; each relative orbit repeats every 12 days
# per satellite, every 6 days with S1A + S1B (2017–2021). ESA Sentinel-1 User Guide, "Revisit
# and Coverage" and "Interferometric Wide Swath" (incidence 29.1°–46.0°).
S1_ORBITS_MIN, S1_ORBITS_MAX = 2, 4
S1_ORBIT_REVISIT_DAYS = 6
S1_INCIDENCE_DEG = (30.5, 45.5)
# Bare-soil σ° falls with incidence by ≈0.1–0.3 dB/° at C band (Mladenova et al. 2013, IEEE
# TGRS 51:1791, incidence-angle normalisation); the Dubois (1995) model gives that slope by
# itself (tested), so no extra term is added.
S1_ANGLE_SLOPE_DB_PER_DEG = (-0.35, -0.05)

# ---- Sen2Cor-like scene classification errors --------------------------------------------------
# Sen2Cor misses a sizeable share of thin and broken cloud and most of the shadows that the
# reference masks hold: Baetens et al. (2019, Remote Sens. 11:433) report Sen2Cor cloud
# omission ~10–20 % (mostly thin clouds and edges) and poor shadow detection; the CMIX
# comparison (Skakun et al. 2022, Remote Sens. Environ. 274:112990) finds Sen2Cor among the
# processors with the highest cloud omission. Values here are inside those ranges.
SCL_EDGE_SHARE = 0.12          # outer, optically thin share of each cloud's area (its edge)
SCL_EDGE_MISS = 0.70           # share of edge pixels Sen2Cor labels as surface
SCL_CIRRUS_MISS = 0.45         # thin cirrus labelled as surface instead of class 10
SCL_SHADOW_MISS = 0.40         # cloud shadow labelled as surface instead of class 3
# Shadowed ground is lit by diffuse sky light only, which is bluer than direct sun: the ratio of
# diffuse to global irradiance falls from ~0.3 in the blue to ~0.05 in the SWIR under a clear
# sky (Iqbal 1983, An Introduction to Solar Radiation, ch. 7). Band order: bands.S2_BANDS.
SHADOW_DIFFUSE = np.array([0.34, 0.27, 0.22, 0.20, 0.18, 0.16, 0.14, 0.13, 0.08, 0.07])
CIRRUS_ADD = np.array([0.035, 0.033, 0.031, 0.030, 0.030, 0.029, 0.028, 0.028, 0.022, 0.018])

# ---- laboratory spectra ------------------------------------------------------------------------
# Clay explains only part of the SWIR signal in real libraries: clay models from the LUCAS 2009
# topsoil library resampled to Sentinel-2 bands reach R² of roughly 0.3–0.6 (Castaldi et al.
# 2016, Remote Sens. Environ. 179:54; Vaudour et al. 2019, Remote Sens. Environ. 223:21), i.e.
# |r| ≈ 0.55–0.8 for the best combination of bands, lower for one ratio. Other SWIR-active
# minerals (carbonates, micas, kaolinite vs smectite) blur the Al-OH depth of the soil itself
# (field and laboratory alike, SWIR_MINERAL_RATIO); sample preparation and instruments add
# laboratory scatter (LAB_*). The tested range of r(clay, ln B12/B11) in the lab spectra:
LAB_CLAY_RATIO_R = (-0.75, -0.45)
SWIR_MINERAL_RATIO = 0.016     # B12/B11 change per standard score of non-clay SWIR minerals
CLAY_RATIO_SLOPE = 0.0012      # B12/B11 change per % clay (Al-OH absorption near 2.2 µm)
LAB_RATIO_SD = 0.010           # laboratory scatter of ln(B12/B11)
LAB_BAND_SD = 0.010            # per-band, per-sample multiplicative laboratory scatter
