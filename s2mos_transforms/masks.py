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

The spectral tests and the 3σ rule themselves run on a flat list of observations
(`element_masks`: rows ``(K, 10)`` with the point/pixel of each row), so map inference only
touches the few observations that pass the scene and SCL filters; `observation_masks` scatters
the same result back into dense masks.
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
    return (np.asarray(dn, np.float32) / np.float32(bands.S2_SCALE)).astype(np.float32, copy=False)


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
    scl = np.asarray(scl)
    if scl.dtype.kind not in "iuf":
        scl = scl.astype(np.float64)
    keep = np.ones(scl.shape, bool)
    for cls in bands.SCL_MASKED:                # exact in any numeric dtype; NaN ≠ every class
        keep &= scl != cls
    return keep


def finite_mask(s2: np.ndarray) -> np.ndarray:
    """Dates where every S2 band is present: ``(T, 10, *S)`` → ``(T, *S)``."""
    s2 = np.asarray(s2)
    if s2.dtype not in (np.float32, np.float64):
        s2 = s2.astype(np.float64)
    return np.isfinite(s2).all(axis=1)


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


def outlier_inliers(values: np.ndarray, group: np.ndarray, n_groups: int,
                    sigma: float = bands.OUTLIER_SIGMA) -> np.ndarray:
    """The 3σ rule on a flat list of observations: ``values`` ``(K, C)``, ``group`` ``(K,)``
    the point/pixel (0 … n_groups − 1) each row belongs to → inlier flags ``(K,)``.

    Mean and population standard deviation per band and group, in one pass (as in the
    paper, no iteration); a row is an outlier when any band is more than sigma·sd from its
    group's mean, and an exactly constant band (sd == 0) has none. Within a group the rows
    must be in date order: the sums are accumulated row after row in float64 (`np.bincount`),
    which is the order, hence the rounding, of a dense sum over the time axis.
    """
    x = np.asarray(values, np.float64)
    group = np.asarray(group, np.int64)
    k, c = x.shape
    if k == 0:
        return np.zeros(0, bool)
    safe_n = np.maximum(np.bincount(group, minlength=n_groups), 1)[:, None]     # (G, 1)
    flat = (group[:, None] * c + np.arange(c)).ravel()
    mean = np.bincount(flat, x.ravel(), minlength=n_groups * c).reshape(n_groups, c) / safe_n
    dev = x - np.take(mean, group, axis=0)
    var = np.bincount(flat, (dev ** 2).ravel(), minlength=n_groups * c).reshape(n_groups, c) / safe_n
    sd = np.sqrt(var)
    with np.errstate(invalid="ignore"):
        inlier = np.abs(dev) <= np.take(sigma * sd, group, axis=0)
    return (inlier | np.take(sd == 0, group, axis=0)).all(axis=1)


def outlier_mask(values: np.ndarray, keep: np.ndarray, sigma: float = bands.OUTLIER_SIGMA) -> np.ndarray:
    """3σ rule: among the dates in ``keep``, drop those with any band > sigma·sd from its mean.

    ``values`` is ``(T, C, *S)``, ``keep`` ``(T, *S)``. Mean and (population) standard
    deviation are taken per band and per point/pixel over the kept dates only
    (`outlier_inliers`, which only ever sees the kept dates). With n kept dates no value can
    exceed sqrt(n − 1) standard deviations, so series of ≤ 10 dates are never trimmed at 3σ.
    Returns the new keep mask ``(T, *S)`` (a subset of ``keep``).
    """
    x = np.asarray(values)
    keep = np.asarray(keep, bool)
    t, p = np.nonzero(keep.reshape(keep.shape[0], -1))             # date order within a pixel
    flat = x.reshape(x.shape[:2] + (-1,))
    inlier = outlier_inliers(flat[t, :, p], p, int(np.prod(keep.shape[1:], dtype=np.int64)), sigma)
    out = np.zeros(keep.shape[:1] + (int(np.prod(keep.shape[1:], dtype=np.int64)),), bool)
    out[t[inlier], p[inlier]] = True
    return out.reshape(keep.shape)


def element_masks(refl: np.ndarray, group: np.ndarray, n_groups: int,
                  thresholds: "MaskThresholds") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The spectral part of the filter on observations that passed the scene and SCL filters.

    ``refl`` ``(K, 10)`` float32 reflectance, one row per (date, point/pixel), rows of a group
    in date order; ``group`` ``(K,)``. Returns (complete: every band present, bare: … and
    the bare-soil test passes, kept: … and not a 3σ outlier among the group's bare rows),
    each ``(K,)``. Working on these rows only, not on every date of every pixel, is what
    keeps map inference cheap: most dates are cloudy or vegetated.
    """
    complete = np.isfinite(refl).all(axis=1)
    bare = complete & bare_soil_mask(refl, thresholds.ndvi_max, thresholds.nbr2_max, thresholds.band_order)
    rows = np.flatnonzero(bare)
    kept = np.zeros(bare.shape, bool)
    kept[rows[outlier_inliers(refl[rows], group[rows], n_groups, thresholds.outlier_sigma)]] = True
    return complete, bare, kept


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

    ``scl`` is ``(T, *S)`` or None; ``scene_cloud_pct`` is ``(T,)`` (per granule) or
    ``(T, *S)`` (per pixel), or None. The bare-soil test and the outlier statistics run on
    reflectance, on the clear observations only (`element_masks`).
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
    t, p = np.nonzero(clear.reshape(clear.shape[0], -1))          # date order within a pixel
    n_px = int(np.prod(clear.shape[1:], dtype=np.int64))
    _, bare_el, kept_el = element_masks(refl.reshape(refl.shape[:2] + (n_px,))[t, :, p], p, n_px, thresholds)
    bare, kept = np.zeros((2, clear.shape[0], n_px), bool)
    bare[t[bare_el], p[bare_el]] = True
    kept[t[kept_el], p[kept_el]] = True
    return ObservationMasks(acquired=acquired, scene=np.broadcast_to(scene_ok, acquired.shape).copy(),
                            clear=clear, bare=bare.reshape(clear.shape), kept=kept.reshape(clear.shape),
                            scene_filter_applied=scene is not None, scl_filter_applied=clear_px is not None)
