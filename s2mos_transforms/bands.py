"""The one definition of band lists, SCL classes and method thresholds (the paper's method: Tziolas et al. 2020, Sections 2.1–2.2).

Every other module imports these names; no band list or threshold is written twice.
"""
from __future__ import annotations

# Sentinel-2 L2A bands used by the paper (B1, B9, B10 unused), in channel order.
S2_BANDS: tuple[str, ...] = ("B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B11", "B12")
# Sentinel-1 GRD IW polarisations (dB), appended after the S2 bands.
S1_BANDS: tuple[str, ...] = ("VV", "VH")
# The CNN's 12 input channels (Table 3), and the S2-only ablation.
CHANNELS_S2S1: tuple[str, ...] = S2_BANDS + S1_BANDS
CHANNELS_S2: tuple[str, ...] = S2_BANDS
# The whole-series model's raw channels per bare S2 date: reflectance, VV, VH (dB; NaN where the
# date has no S1 pair) and the acquisition day (days since 1970-01-01 UTC).
CHANNELS_SERIES: tuple[str, ...] = S2_BANDS + S1_BANDS + ("day",)

# Central wavelengths (nm) of the S2 bands, for plots and the simulator.
S2_WAVELENGTH_NM: dict[str, float] = {
    "B2": 490.0, "B3": 560.0, "B4": 665.0, "B5": 705.0, "B6": 740.0, "B7": 783.0,
    "B8": 842.0, "B8A": 865.0, "B11": 1610.0, "B12": 2190.0,
}

# L2A integers are reflectance scaled by this factor.
S2_SCALE: float = 10_000.0

# Scene Classification Layer (Sen2Cor) classes.
SCL_NO_DATA = 0
SCL_SATURATED = 1
SCL_DARK = 2
SCL_CLOUD_SHADOW = 3
SCL_VEGETATION = 4
SCL_NOT_VEGETATED = 5
SCL_WATER = 6
SCL_UNCLASSIFIED = 7
SCL_CLOUD_MEDIUM = 8
SCL_CLOUD_HIGH = 9
SCL_CIRRUS = 10
SCL_SNOW = 11
# Classes masked out before any spectral test: no data, saturated, shadow, cloud, cirrus, snow.
SCL_MASKED: tuple[int, ...] = (SCL_NO_DATA, SCL_SATURATED, SCL_CLOUD_SHADOW, SCL_CLOUD_MEDIUM,
                               SCL_CLOUD_HIGH, SCL_CIRRUS, SCL_SNOW)

# Method thresholds (paper defaults; the CLI exposes them as flags).
SCENE_CLOUD_MAX_PCT: float = 10.0   # S2 scenes with < 10 % cloud
NDVI_MAX: float = 0.25              # bare soil: NDVI < 0.25
NBR2_MAX: float = 0.075             # bare soil: NBR2 < 0.075
OUTLIER_SIGMA: float = 3.0          # observations > 3 sd from the band mean are dropped
S1_PAIR_MAX_DAYS: float = 1.0       # S1 acquisition at most 1 day from the S2 date
MAX_DATES: int = 150                # sequence length of the CNN input

# Threshold grid of the paper's tuning (Section 2.2).
NDVI_GRID: tuple[float, ...] = (0.20, 0.25, 0.30)
NBR2_GRID: tuple[float, ...] = tuple(round(0.015 + 0.03 * i, 3) for i in range(10))  # 0.015 … 0.285

# Observation table contract (docs/architecture.md, "Contracts"), long format, both sensors.
OBS_KEY_COLUMNS: tuple[str, ...] = ("point_id", "sensor", "datetime")
OBS_S2_COLUMNS: tuple[str, ...] = ("scene_cloud_pct",) + S2_BANDS + ("SCL",)
OBS_S1_COLUMNS: tuple[str, ...] = S1_BANDS + ("angle",)
OBS_COLUMNS: tuple[str, ...] = OBS_KEY_COLUMNS + OBS_S2_COLUMNS + OBS_S1_COLUMNS
SENSOR_S2 = "S2"
SENSOR_S1 = "S1"

# Sample table contract, and the LUCAS 2009 aliases accepted for it.
SAMPLE_COLUMNS: tuple[str, ...] = ("point_id", "lat", "lon", "clay")
SAMPLE_ALIASES: dict[str, str] = {"POINT_ID": "point_id", "GPS_LAT": "lat", "GPS_LONG": "lon"}
