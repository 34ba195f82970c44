"""Every physical parameter of the embedded world's soil moisture, darkening, crusting,
radar geometry and cloud-mask error models, in one place, each with its source.

Where a paper gives a range, the value is chosen inside it and the range is quoted; where a
value is read from a paper's figures or abstract rather than a table, the comment says so. The
values were first written from memory of the papers. Issue 14 checked every citation against
stored public copies (abstracts, publisher and catalogue pages, public code that reproduces a
paper's table or equation); full texts, tables and figures were mostly out of reach. Each
comment now ends with its status: "checked: …" (what was seen, where) or "not verifiable
here: …" (why). No value was changed by that check; values that lie outside what a source
supports are listed in docs/world.md ("Sources checked") for the lead to decide.
docs/world.md lists the models and shows the world side by side with real data.
"""
from __future__ import annotations

import numpy as np

# ---- soil hydraulic properties --------------------------------------------------------------
# Porosity (saturated volumetric water content, m³/m³) from texture: Cosby, Hornberger, Clapp &
# Ginn (1984), Water Resour. Res. 20(6):682–690, Table 4: θs = (50.5 − 0.142·sand% − 0.037·clay%)
# / 100. Checked: authors, title, volume, issue and pages on the paper's first page (Wiley
# abstract page doi:10.1029/WR020i006p00682; scribd copy); the three Table 4 coefficients as
# reproduced "from Cosby et al (1984) Table 4" in public code (github vflo/PhD,
# Chapter4/soil_functions.R) — the table itself was not seen.
POROSITY_INTERCEPT, POROSITY_SAND, POROSITY_CLAY = 0.505, -0.00142, -0.00037
# Air-dry (hygroscopic) water content: the retention curve below the wilting point, followed to
# the suction of air at AIR_DRY_RH (soil.air_dry_water). Until session 14 it was a line
# 0.01 + 0.0008·clay whose reference ("Arthur et al. 2013, SSSAJ 77:1791") could not be found;
# the checked sources below put it too wet on sands and too dry on clays (docs/world.md).
#  * Below the wilting point the Campbell curve θ ∝ ψ^(−1/b) is bent to reach zero water at
#    oven dryness, ψ0 = 1 000 MPa: θ = a·(ψ^−c − ψ0^−c), c = 1/b. Ross, Williams & Bristow
#    (1991), "Equation for extending water-retention curves to dryness", Soil Sci. Soc. Am. J.
#    55(4):923–927. Checked: the equation and ψ0 = 1 000 MPa in the abstract (stored abstract
#    pages, discovery.researcher.life and concepedia.online). Here a is pinned at the wilting
#    point (1.5 MPa) of the line below, so θ_ad = θ_wp·(ψ_ad^−c − ψ0^−c) / (ψ_wp^−c − ψ0^−c).
#  * b from Cosby et al. (1984) Table 4, the same table as the porosity above: b = 3.10 +
#    0.157·clay% − 0.003·sand% (as reproduced in public code, github vflo/PhD,
#    Chapter4/soil_functions.R; the table itself was not seen).
#  * ψ_ad from the Kelvin equation, ψ = −(R·T / V_w)·ln(RH), at RH 50 % and 20 °C: 94 MPa (pF ≈ 6).
# Result: 0.008 (5 % clay), 0.032 (20 %), 0.070 (40 %), 0.109 (60 %) m³/m³. Checked against:
# Chen, Ren, Hu, Li & Wang (2014), SSSAJ, doi:10.2136/sssaj2013.06.0247 (abstract): hygroscopic
# water 0.23–4.86 % by mass for clay 2.8–37 % at 21–60 % RH (≈ 0.003–0.07 m³/m³ at bulk density
# 1.4), and the same authors, Resurreccion et al. (2011, Water Resour. Res. 47, W06527) and
# Schneider & Goss (2012, Geoderma 170:64–69) treat air-dry water at a given RH as nearly
# proportional to clay (abstracts). The value enters the skin's volumetric water only (the
# state's `moisture` on S2 rows); the optics darken by the degree of saturation above it.
AIR_DRY_RH = 0.50
AIR_TEMPERATURE_K = 293.15
OVEN_DRY_MPA, WILTING_MPA = 1000.0, 1.5
CAMPBELL_B_INTERCEPT, CAMPBELL_B_CLAY, CAMPBELL_B_SAND = 3.10, 0.157, -0.003
# Wilting point (θ at 1 500 kPa), the dry end of the few-cm layer: Saxton & Rawls (2006), Soil
# Sci. Soc. Am. J. 70(5):1569–1578, θ1500 regression of sand, clay and organic matter (doi:10.2136/
# sssaj2005.0117; the regression as reproduced in public code, github HydroComplexity/MLCan2.0
# PEDO_TRANSFER_FUNCTIONS.m): θ1500t = −0.024S + 0.487C + 0.006OM + 0.005S·OM − 0.013C·OM +
# 0.068S·C + 0.031, θ1500 = θ1500t + 0.14θ1500t − 0.02. This line is its linear fit in clay at
# 1.75 % OM over the world's sand shares, within 0.01 of it from 5 to 60 % clay (0.045, 0.130,
# 0.215, 0.300, 0.357 at 5, 20, 35, 50, 60 %). Until session 9 it was 0.03 + 0.0045·clay, 0.035–
# 0.05 m³/m³ low from 40 % clay on (docs/world.md: what the change does to the science).
WILTING_BASE, WILTING_PER_CLAY = 0.017, 0.00567

# ---- two-layer drydown after rain ------------------------------------------------------------
# Texture index f ∈ [0, 1] (0 sand … 1 clay) that sets the drydown time: finer soils hold water
# longer (larger capillary length: Lehmann, Assouline & Or 2008, Phys. Rev. E 77(5):056309).
# The weights and offsets are a modelling choice. Checked: reference (doi:10.1103/PhysRevE.77.
# 056309, cited with these details in public code that ships the paper's Fig. 8 data); the
# abstract was not retrieved, so the texture dependence is not verified against its numbers.
TEXTURE_CLAY_WEIGHT, TEXTURE_SILT_WEIGHT, TEXTURE_OFFSET, TEXTURE_SPAN = 1.0, 0.5, 10.0, 50.0
# Optical skin (top millimetres): dries within hours to ~1–2 days after rain, decoupled from
# the layer below (Capehart & Carlson 1997, Water Resour. Res. 33(6):1383–1395; stage-1
# evaporation of hours for sands to ~1–2 days for fine soils, Lehmann et al. 2008). e-folding
# time (days) at reference evaporative demand (summer), sandy and clayey end. Checked: Capehart
# & Carlson abstract (onlinelibrary.wiley.com/doi/10.1029/97WR00617): surface drying rates vary
# widely with soil hydraulic properties and form a sharp vertical water gradient at the surface
# ("decoupling"); it gives no drying time in hours or days, and pages 1383–1395 were not seen.
# Not verifiable here: the "hours … 1–2 days" stage-1 times (Lehmann et al. abstract not
# retrieved), so TAU_SKIN_DAYS is a modelling choice consistent with, not taken from, them.
TAU_SKIN_DAYS = (0.25, 1.2)
# The few-cm layer C-band senses: SMAP drydowns of the ~5 cm layer have e-folding times of
# mostly 2–10 days (McColl, Wang, Peng, Akbar, Short Gianotti, Lu, Pan & Entekhabi 2017,
# Geophys. Res. Lett. 44(8):3682–3690; checked: reference, doi:10.1002/2017GL072819, as cited in
# public code and in the authors' data repository github kaighin/tau; the 2–10 d range not
# verifiable, abstract and Fig. 2 not retrieved). Texture plays a minor role in these drying
# rates (Shellito, Small & Livneh 2018, HESS 22:1649, abstract checked), so the layer's τ
# depends on texture by ×1.3 only (3.9 → 5.1 d; the skin layer keeps the strong texture
# dependence of stage-1 evaporation). Until session 9 it was ×3.2 (2.5 → 8 d), which gave S1
# about 0.11 R² of clay information more (docs/world.md).
TAU_DEEP_DAYS = (3.9, 5.1)
# Water (mm) that takes each layer from air-dry to saturated: ~1 cm and ~5 cm of soil at
# porosity ≈ 0.45 hold ≈ 4.5 and ≈ 22 mm (arithmetic, no source needed).
SKIN_CAPACITY_MM, DEEP_CAPACITY_MM = 4.0, 20.0
# Capillary rise keeps the skin at a small fraction of the wetness below: the skin decouples
# from the layer below within hours of drying (Capehart & Carlson 1997; checked as above for
# the decoupling, not for "within hours" or the fraction, which is a modelling choice).
# Within-field scatter of the wetness (relative sd, per pixel and date; logistic noise): a
# modelling choice, no source.
WETNESS_REL_SD = 0.15
SKIN_FROM_DEEP = 0.10
# Rain falls mostly under the cloudy synoptic systems: on a clear day it is this much as likely
# as on an average day (a modelling choice; clear skies and dry days go together).
RAIN_ON_CLEAR_DAYS = 0.15
# Evaporative demand relative to a mid-latitude summer day: drying is ~2–3× slower in winter
# (reference ET over Europe, e.g. FAO-56 Allen et al. 1998 climatologies), faster in the south.
# Not verifiable here: no European reference-ET climatology was looked up; the ratios are a
# modelling choice.
DEMAND_WINTER, DEMAND_SUMMER, DEMAND_SOUTH = 0.40, 1.0, 0.30

# ---- optical darkening by moisture (Lobell & Asner 2002, SSSAJ 66(3):722–727) ----------------
# R = R_sat + (R_dry − R_sat)·exp(−c·S), S = degree of saturation above air-dry. Lobell & Asner
# found the curves of four soils collapse when moisture is expressed as degree of saturation,
# and that VNIR saturates at much lower moisture than SWIR (their abstract and Fig. 3). The c
# and floor values reproduce those shapes (VNIR: ~95 % of its darkening by S ≈ 0.3; SWIR:
# still darkening at S ≈ 1, with the larger total darkening); they are read from the paper's
# curves, not copied from its table. Band order: bands.S2_BANDS. Checked: reference (doi:
# 10.2136/sssaj2002.7220; SSSAJ 66(3):722–727 as cited in public code) and abstract
# (discovery.researcher.life, "Moisture effects on soil reflectance"): four soils, 400–2500 nm,
# exponential dependence on moisture, similar across soils when moisture is expressed as degree
# of saturation, reflectance saturating at much lower moisture in VNIR than SWIR (SWIR better
# above ~20 % volumetric). Not verifiable here: Fig. 3 and the fitted c values, so WET_C and
# WET_FLOOR reproduce the abstract's shape only; "larger total darkening in SWIR" is not stated
# in the abstract.
WET_C = np.array([10.0, 10.0, 10.0, 10.0, 9.0, 8.0, 7.5, 7.5, 3.2, 3.0])
WET_FLOOR = np.array([0.52, 0.52, 0.52, 0.52, 0.52, 0.52, 0.52, 0.52, 0.25, 0.22])

# ---- rain-driven roughness decay and crusting -------------------------------------------------
# Random roughness of a tilled surface decays exponentially with cumulative rainfall since
# tillage (Zobeck & Onstad 1987, Soil Tillage Res. 9:1–20; Potter 1990, Trans. ASAE
# 33(6):1889–1892): RR = RR_settled + (RR_0 − RR_settled)·exp(−P/P0), with P0 of tens of mm,
# smallest for silty, low-organic soils that slake (Le Bissonnais 1996, Eur. J. Soil Sci.
# 47:425–437). P0 (mm) for the most and the least stable surface; a slow time-only settling
# stays. Checked: Potter 1990 abstract (elibrary.asabe.org, doi:10.13031/
# 2013.31554): a modified exponential function of rainfall amount fits normalised RR after
# 5–80 mm (five soils), 35–300 mm (one) and 7–350 mm natural rain; surface stability grows with
# organic carbon and with clay up to ≈ 31 % clay, then falls. So P0 is largest (most stable
# surface) at ROUGH_STABLE_CLAY and falls linearly to the unstable value at 0 and at twice that
# clay, times the organic-carbon factor of the crust susceptibility (soil.hydraulics; until
# session 9 instability grew with silt + 0.5·clay, making sands the stable end, against Potter).
# P0 values themselves not given in the abstract (modelling choice). Not verifiable here:
# Zobeck & Onstad 1987 (no stored copy found; details as commonly cited). Le Bissonnais: see the
# crust comment below (crust brightening still follows silt + clay).
ROUGH_P0_MM = (110.0, 45.0)            # (most stable, least stable)
ROUGH_STABLE_CLAY = 31.0               # % clay of the most stable surface (Potter 1990)
ROUGH_TIME_DAYS = 240.0
# Structural crusts (seals) form after ~20–60 mm of rain on silty and clayey, low-SOC soils
# (Le Bissonnais 1996); they brighten the surface by up to ~10–15 % across VNIR–SWIR (as first
# cited: Goldshleger et al. 2010, Soil Sci. Soc. Am. J. 74:1433; de Jong et al. 2011, Geoderma
# 160:324 — see below).
# Checked: Le Bissonnais, "Aggregate stability and assessment of soil crustability and
# erodibility: I. Theory and methodology" (abstract of its EJSS 67(1):11–21 reprint, 2016,
# bib-bvb.de catalogue): a review of four aggregate-breakdown mechanisms (slaking, differential
# swelling, raindrop impact, physico-chemical dispersion) and a unified stability test; it gives
# no rain amount for crust formation, so "20–60 mm" is not from its abstract (original 1996
# pages not seen). Goldshleger, Ben-Dor, Lugassi & Eshel (2010), "Soil degradation monitoring
# by remote sensing: examples with three degradation processes" (review; cris.ariel.ac.il):
# structural crust is one of the three processes and infiltration can be assessed from spectra;
# no brightening % in the abstract; journal, volume and pages not seen. A checked primary
# source on crust spectra: Ben-Dor, Goldshleger, Benyamini, Agassi & Blumberg (2003), SSSAJ
# 67(1):289–299 (journal page): significant crust-vs-bulk differences at 1.2–2.5 µm, size not
# in the abstract. Not verifiable here: de Jong et al. 2011 "Geoderma 160:324" (not found in
# any stored copy; possibly the de Jong, Addink, van Beek & Duijsings Mediterranean crust paper
# in Catena 86, 2011 — unconfirmed either way). CRUST_RAIN_MM and CRUST_BRIGHTENING are
# therefore modelling choices without a checked number.
# Session 14: CRUST_BRIGHTENING's source found: de Jong (1992), "The analysis of spectroscopical
# data to map soil types and soil crusts of Mediterranean eroded soils", Soil Technology
# 5(3):199–211 (abstract, research-portal.uu.nl): lab spectra after artificial rain on five soils
# of southern France, "crusts caused an increase of albedo of approximately 12%", measured in the
# NIR and SWIR only — the visible bands' brightening here has no source. CRUST_RAIN_MM still has
# none; the checked abstracts bracket it: a silt-loam seal still developing between ≈ 29 and
# ≈ 41 mm of simulated rain (Augeard, Bresson, Assouline, Kao & Vauclin 2008, SSSAJ 72:412–423;
# totals from its stated intensities and durations), seals growing with cumulative rain energy
# (Baumhardt, Römkens, Whisler & Parlange 1990, Water Resour. Res. 26:2497–2505).
# Session 15: kept broadband — Potter, Horton & Cruse (1987, SSSAJ 51:855) put the rise down to a
# smoother surface, not a band-specific cause, and no visible-band figure was found either way.
CRUST_RAIN_MM = 35.0
CRUST_BRIGHTENING = 0.12

# ---- Sentinel-1 acquisition geometry ----------------------------------------------------------
# Over Europe a site is seen from 2–4 relative orbits, ascending (~18 h local) and descending
# (~06 h), at 29–46° incidence across the IW swath; each relative orbit repeats every 12 days
# per satellite, every 6 days with S1A + S1B (2017–2021). ESA Sentinel-1 User Guide, "Revisit
# and Coverage" and "Interferometric Wide Swath" (incidence 29.1°–46.0°). Checked: ESA "Revisit
# and Coverage" page (sentinel.esa.int/web/sentinel/user-guides/sentinel-1-sar/revisit-and-
# coverage): 12-day repeat cycle per satellite (175 orbits), S1A and S1B 180° apart, 6-day
# exact repeat with both, revisit more frequent at higher latitudes. ESA IW page (…/acquisition-
# modes/interferometric-wide-swath): 250 km swath, 3 sub-swaths; its table was cut off in the
# stored copy, the 29.1°–46.0° range is as quoted from the ESA site in several public code
# bases (and ESA's EW page, same layout, gives 18.9°–47.0° for EW). Local pass times ~06 h
# descending / ~18 h ascending: INTA Copernicus blog "Revisita de Sentinel-1" (Iberia).
# S1_INCIDENCE_DEG (30.5–45.5°) lies inside 29.1–46.0°. Not verifiable here: "2–4 relative
# orbits" per European site (not stated on the ESA pages seen) and the S1B end date (December
# 2021, from memory).
S1_ORBITS_MIN, S1_ORBITS_MAX = 2, 4
S1_ORBIT_REVISIT_DAYS = 6
S1_INCIDENCE_DEG = (30.5, 45.5)
# Bare-soil σ° falls with incidence by ≈0.1–0.3 dB/° at C band (Mladenova, Jackson, Bindlish &
# Hensley 2013, IEEE TGRS 51(3):1791–1804, incidence-angle normalisation); the Dubois (1995)
# model gives that slope by itself (tested), so no extra term is added. Checked: reference
# (doi:10.1109/TGRS.2012.2205264, OpenAlex record; volume/issue/pages as cited in public code).
# Not verifiable here: the 0.1–0.3 dB/° range (abstract not retrieved).
S1_ANGLE_SLOPE_DB_PER_DEG = (-0.35, -0.05)

# ---- Sen2Cor-like scene classification errors --------------------------------------------------
# How much of a scene's cloud and cloud shadow Sen2Cor's SCL flags, from CloudSEN12 (Aybar et al.
# 2022, Sci. Data 9:782): 509 × 509 px Sentinel-2 patches with expert masks (thick + thin cloud,
# shadow) and the SCL of the same L2A scene (GEE COPERNICUS/S2_SR), scored per patch by the
# authors' code (github cloudsen12/figures, figure10/utils.R, figure11/data_creator.R): cloud =
# SCL 8|9|10 against reference thick|thin, shadow = SCL 3 against reference shadow, producer's
# accuracy (recall) per patch, patches with ≥ 5 % reference cloud (as their Table 6). The
# deciles below are of those per-patch recalls (figure11/cloudsen12_metrics.csv, commit 585229f,
# all 975 patches, 738 with ≥ 5 % cloud; our arithmetic: benchmarks/cloudsen12_scl_rates.py), by
# the patch's cloud cover: Sen2Cor misses small, scattered cloud more (median recall 0.38 below
# 30 % cover, n 218; 0.63 at 30–60 %, n 232; 0.85 above, n 288; pooled 0.69). Shadow (n 639):
# median recall 0.016, 64 % of patches below 0.1, mean 0.14. Within a scene the thinnest cloud
# goes undetected first (`clouds.clouds_and_scl`). Earlier figures read (session 14): Sen2Cor
# 2.3.0 missed 12–88 % of the cloud per scene (CESBIO, against dilated hand masks); Baetens,
# Desjardins & Hagolle (2019, Remote Sens. 11(4):433): overall accuracy 84 % (as quoted by
# others); Zekoll et al. (2021, Remote Sens. 13:137, abstract): overall accuracy 92 %, user's and
# producer's accuracies "strongly class- and scene-dependent, typically varying between 30% and
# 90%". Until session 15 the rates were modelling choices (9 % cloud, 43 % cirrus, 40 % shadow
# omission): CloudSEN12 shows the real SCL misses far more.
SCL_EDGE_SHARE = 0.12          # outer, optically thin share of each cloud's area (its edge)
SCL_COVER_EDGES = (0.3, 0.6)   # cloud-cover classes of SCL_CLOUD_PA_DECILES' rows
SCL_PATCH_PX = 509             # one detection draw per 509 × 509 px (a CloudSEN12 patch) and acquisition
SCL_CLOUD_PA_DECILES = np.array([
    [0.0, 0.02, 0.091, 0.197, 0.305, 0.381, 0.443, 0.525, 0.621, 0.816, 1.0],    # cover < 0.3
    [0.0, 0.082, 0.308, 0.459, 0.532, 0.631, 0.691, 0.785, 0.862, 0.989, 1.0],   # 0.3–0.6
    [0.0, 0.267, 0.575, 0.706, 0.783, 0.854, 0.907, 0.977, 1.0, 1.0, 1.0]])      # ≥ 0.6
SCL_SHADOW_PA_DECILES = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 0.016, 0.058, 0.156, 0.309, 0.506, 0.919])
# Shadowed ground is lit by diffuse sky light only, which is bluer than direct sun: the ratio of
# diffuse to global irradiance falls from ~0.3 in the blue to ~0.05 in the SWIR under a clear
# sky (Iqbal 1983, An Introduction to Solar Radiation, ch. 7). Band order: bands.S2_BANDS.
# Checked: the book (M. Iqbal, Academic Press 1983, 12 chapters; publisher summary copy at
# hipdesign.pl) has a chapter on solar spectral radiation under cloudless skies after the
# chapter on cloudless-sky optics, consistent with "ch. 7". Not verifiable here: the spectral
# diffuse/global ratios (book text not stored). CIRRUS_ADD (additive thin-cirrus reflectance)
# has no source: a modelling choice.
SHADOW_DIFFUSE = np.array([0.34, 0.27, 0.22, 0.20, 0.18, 0.16, 0.14, 0.13, 0.08, 0.07])
CIRRUS_ADD = np.array([0.035, 0.033, 0.031, 0.030, 0.030, 0.029, 0.028, 0.028, 0.022, 0.018])

# ---- laboratory spectra ------------------------------------------------------------------------
# Clay explains only part of the SWIR signal in real data: clay models from laboratory spectra
# (a regional library and the LUCAS 2009 topsoil library) resampled to Sentinel-2 bands
# (Castaldi, Palombo, Santini, Pascucci, Pignatti & Casa 2016, Remote Sens. Environ.
# 179:54–65) and from Sentinel-2A images of bare fields (Vaudour, Gomez, Fouad & Lagacherie
# 2019, Remote Sens. Environ. 223:21–33) reach R² of roughly 0.3–0.6, i.e. |r| ≈ 0.55–0.8 for
# the best combination of bands, lower for one ratio. Other SWIR-active minerals (carbonates,
# micas, kaolinite vs smectite) blur the Al-OH depth of the soil itself (field and laboratory
# alike, SWIR_MINERAL_RATIO); sample preparation and instruments add laboratory scatter
# (LAB_*). Checked: Vaudour et al. abstract (IRD record documentation.ird.fr/hor/fdi:010075284):
# S2A image spectra, PLSR, 72 sites (Versailles Plain) and 143 (Peyne), eight properties incl.
# clay; "intermediate" performance (R²cv ≥ 0.5, RPD ≥ 1.4) for SOC, pH, CaCO3 and CEC at
# Versailles — the clay figures were cut off in the stored copy. Correction: the earlier
# comment said both papers used LUCAS spectra resampled to S2; Vaudour et al. used S2 images,
# not LUCAS. Castaldi et al.: only a secondary summary was found (authorea review): laboratory
# spectra resampled to current and forthcoming sensors incl. S2, a 160-sample regional library
# and LUCAS; SOC R² 0.36 (S2, regional) and 0.06–0.26 (LUCAS) — its clay R² not seen. Not
# verifiable here: the clay R² 0.3–0.6 range. The tested range of r(clay, ln B12/B11) in the
# lab spectra:
LAB_CLAY_RATIO_R = (-0.75, -0.45)
SWIR_MINERAL_RATIO = 0.016     # B12/B11 change per standard score of non-clay SWIR minerals
CLAY_RATIO_SLOPE = 0.0012      # B12/B11 change per % clay (Al-OH absorption near 2.2 µm)
LAB_RATIO_SD = 0.010           # laboratory scatter of ln(B12/B11)
LAB_BAND_SD = 0.010            # per-band, per-sample multiplicative laboratory scatter
