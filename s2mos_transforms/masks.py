"""Observation masks of the paper (Sections 2.1.2 and 2.2), as small vectorised NumPy functions.

One implementation serves the dataset build (one sample point: arrays shaped ``(T, bands)``)
and map inference (every pixel of a tile: ``(T, bands, H, W)`` or ``(T, bands, P)``), so
training and serving cannot drift apart.

Shape conventions (shared by every function here):

* time is axis 0, the band axis (when there is one) is axis 1, anything after it is the
  spatial part ``*S`` (empty for a point, ``(H, W)`` or ``(P,)`` for pixels);
* S2 values are either L2A integers (reflectance × 10 000) or reflectance: the spectral
  tests are ratios and sign tests, so both give the same mask;
* a mask is a boolean array ``(T, *S)``; True means "keep".
"""
from __future__ import annotations

import dataclasses

import numpy as np

from s2mos_transforms import bands

_B = {name: i for i, name in enumerate(bands.S2_BANDS)}


@dataclasses.dataclass(frozen=True)
class MaskThresholds:
    """The thresholds of the observation filter (paper defaults from `bands`)."""

    scene_cloud_max: float = bands.SCENE_CLOUD_MAX_PCT
    ndvi_max: float = bands.NDVI_MAX
    nbr2_max: float = bands.NBR2_MAX
    outlier_sigma: float = bands.OUTLIER_SIGMA
    band_order: bool = True            # also require B3 > B2 and B4 > B3 (the paper's rule)

    def as_dict(self) -> dict[str, float | bool]:
        return dataclasses.asdict(self)


def to_reflectance(dn: np.ndarray) -> np.ndarray:
    """L2A integers (reflectance × 10 000, possibly NaN / nullable) → float32 reflectance."""
    return (np.asarray(dn, np.float32) / np.float32(bands.S2_SCALE)).astype(np.float32)


def _band(s2: np.ndarray, name: str) -> np.ndarray:
    return np.asarray(s2[:, _B[name]], np.float64)


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a − b) / (a + b); NaN where a + b == 0 or an input is missing, so NaN fails every test."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    total = a + b
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total != 0, (a - b) / total, np.nan)


def ndvi(s2: np.ndarray) -> np.ndarray:
    """NDVI = (B8 − B4) / (B8 + B4) of a ``(T, 10, *S)`` S2 array → ``(T, *S)``."""
    return normalized_difference(_band(s2, "B8"), _band(s2, "B4"))


def nbr2(s2: np.ndarray) -> np.ndarray:
    """NBR2 = (B11 − B12) / (B11 + B12): dry vegetation / residue raise it (paper Section 2.2)."""
    return normalized_difference(_band(s2, "B11"), _band(s2, "B12"))


def _expand_time(values: np.ndarray, like_ndim: int) -> np.ndarray:
    """Give a per-date ``(T,)`` vector trailing unit axes so it broadcasts against ``(T, *S)``."""
    values = np.asarray(values)
    return values.reshape(values.shape + (1,) * (like_ndim - values.ndim))


def scene_mask(scene_cloud_pct: np.ndarray | None, max_pct: float = bands.SCENE_CLOUD_MAX_PCT) -> np.ndarray | None:
    """Per-date scene filter: keep granules with cloud % strictly below ``max_pct``.

    An unknown percentage (NaN) is kept: the pixel SCL mask and the spectral tests still
    apply. ``None`` (no such column at all) returns None, meaning "filter skipped".
    """
    if scene_cloud_pct is None:
        return None
    pct = np.asarray(scene_cloud_pct, np.float64)
    return np.isnan(pct) | (pct < max_pct)


def scl_mask(scl: np.ndarray | None) -> np.ndarray | None:
    """Per-pixel cloud/shadow/cirrus/snow/no-data mask from the L2A Scene Classification Layer.

    ``scl`` is ``(T, *S)``; a missing class (NaN, or a negative fill value) is kept, since the
    spectral tests still reject most contaminated pixels. ``None`` returns None (skipped).
    """
    if scl is None:
        return None
    scl = np.asarray(scl, np.float64)
    masked = np.isin(scl, np.asarray(bands.SCL_MASKED, np.float64))
    return ~masked


def finite_mask(s2: np.ndarray) -> np.ndarray:
    """Dates where every S2 band is present: ``(T, 10, *S)`` → ``(T, *S)``."""
    return np.isfinite(np.asarray(s2, np.float64)).all(axis=1)


def bare_soil_mask(s2: np.ndarray, ndvi_max: float = bands.NDVI_MAX,
                   nbr2_max: float = bands.NBR2_MAX, band_order: bool = True) -> np.ndarray:
    """The paper's bare-soil test: NDVI < ndvi_max, NBR2 < nbr2_max, B3 > B2 and B4 > B3.

    The two positive differences (the band-order rule, on unless `band_order` is False)
    remove residual haze/shadow/water that pass the indices. Strict inequalities, as in the
    paper; any missing band fails.
    """
    s2 = np.asarray(s2)
    with np.errstate(invalid="ignore"):
        bare = (ndvi(s2) < ndvi_max) & (nbr2(s2) < nbr2_max)
        if band_order:
            b2, b3, b4 = _band(s2, "B2"), _band(s2, "B3"), _band(s2, "B4")
            bare &= (b3 > b2) & (b4 > b3)
        return bare


def outlier_mask(values: np.ndarray, keep: np.ndarray, sigma: float = bands.OUTLIER_SIGMA) -> np.ndarray:
    """3σ rule: among the dates in ``keep``, drop those with any band > sigma·sd from its mean.

    ``values`` is ``(T, C, *S)``, ``keep`` ``(T, *S)``. Mean and (population) standard
    deviation are taken per band and per point/pixel over the kept dates only, in one pass
    (as in the paper, no iteration). With n kept dates no value can exceed sqrt(n − 1)
    standard deviations, so series of ≤ 10 dates are never trimmed at 3σ. Returns the new
    keep mask ``(T, *S)`` (a subset of ``keep``).
    """
    x = np.asarray(values, np.float64)
    keep = np.asarray(keep, bool)
    w = keep[:, None]                                             # (T, 1, *S)
    n = w.sum(axis=0)                                             # (1, *S)
    safe_n = np.maximum(n, 1)
    xz = np.where(w, x, 0.0)
    mean = xz.sum(axis=0) / safe_n                                # (C, *S)
    var = (np.where(w, (x - mean) ** 2, 0.0)).sum(axis=0) / safe_n
    sd = np.sqrt(var)
    with np.errstate(invalid="ignore"):
        # An exactly constant band (sd == 0) has no outliers.
        inlier = (np.abs(x - mean) <= sigma * sd) | (sd == 0)
    return keep & inlier.all(axis=1)


@dataclasses.dataclass
class ObservationMasks:
    """Every stage of the S2 filter, cumulative: each mask is a subset of the previous one.

    ``scene`` is None / ``scl`` is None when that filter was skipped (no data for it).
    """

    acquired: np.ndarray          # (T, *S) the acquisition exists and every band is present
    scene: np.ndarray             # (T, *S) … and the granule is below the cloud threshold
    clear: np.ndarray             # (T, *S) … and the SCL class is not cloud/shadow/snow/no-data
    bare: np.ndarray              # (T, *S) … and the pixel passes the bare-soil test
    kept: np.ndarray              # (T, *S) … and it is not a 3σ outlier
    scene_filter_applied: bool = True
    scl_filter_applied: bool = True

    def counts(self) -> dict[str, int]:
        """Totals per stage (summed over every point/pixel), for summaries."""
        return {name: int(np.count_nonzero(getattr(self, name)))
                for name in ("acquired", "scene", "clear", "bare", "kept")}


def observation_masks(s2: np.ndarray, scl: np.ndarray | None = None,
                      scene_cloud_pct: np.ndarray | None = None,
                      thresholds: MaskThresholds = MaskThresholds()) -> ObservationMasks:
    """Scene filter → SCL mask → bare-soil test → 3σ outliers, on ``(T, 10, *S)`` S2 values.

    ``scl`` is ``(T, *S)`` or None; ``scene_cloud_pct`` is ``(T,)`` or None. The outlier
    statistics are computed on reflectance among the bare dates of each point/pixel.
    """
    s2 = np.asarray(s2)
    if s2.ndim < 2 or s2.shape[1] != len(bands.S2_BANDS):
        raise ValueError(f"S2 values must be shaped (T, {len(bands.S2_BANDS)}, ...), got {s2.shape}")
    refl = to_reflectance(s2)
    acquired = finite_mask(refl)
    spatial_ndim = refl.ndim - 1
    scene = scene_mask(scene_cloud_pct, thresholds.scene_cloud_max)
    scene_ok = acquired if scene is None else acquired & _expand_time(scene, spatial_ndim)
    clear_px = scl_mask(scl)
    clear = scene_ok if clear_px is None else scene_ok & clear_px
    bare = clear & bare_soil_mask(refl, thresholds.ndvi_max, thresholds.nbr2_max, thresholds.band_order)
    kept = outlier_mask(refl, bare, thresholds.outlier_sigma)
    return ObservationMasks(acquired=acquired, scene=np.broadcast_to(scene_ok, acquired.shape).copy(),
                            clear=clear, bare=bare, kept=kept,
                            scene_filter_applied=scene is not None, scl_filter_applied=clear_px is not None)
