"""Clouds, cloud shadows and thin cirrus over a scene, and a Sen2Cor-like scene classification
of them that misses what Sen2Cor misses (thin edges, faint cirrus, many shadows)."""
from __future__ import annotations

import numpy as np

from s2mos_transforms.world import optics
from s2mos_transforms.world import physics_params as P


def scl_detection(cover: np.ndarray, u_cloud: np.ndarray, u_shadow: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The share of a scene's cloud and of its cloud shadow that Sen2Cor flags: the u-quantiles
    of Sen2Cor's per-patch producer's accuracy in CloudSEN12 (physics_params.SCL_*_PA_DECILES),
    the cloud's in the class of the local cloud cover (small clouds are missed more often)."""
    probs = np.linspace(0.0, 1.0, P.SCL_CLOUD_PA_DECILES.shape[1])
    cls = np.searchsorted(np.asarray(P.SCL_COVER_EDGES), cover, side="right")
    cloud = np.choose(cls, [np.interp(u_cloud, probs, row) for row in P.SCL_CLOUD_PA_DECILES])
    return cloud, np.interp(u_shadow, probs, P.SCL_SHADOW_PA_DECILES)


def clouds_and_scl(r: np.ndarray, cover: np.ndarray, tex: np.ndarray, tex2: np.ndarray,
                   u: np.ndarray, detect: np.ndarray, detect_shadow: np.ndarray) -> dict:
    """Clouds, their shadows and thin cirrus over reflectance r (n, m, 10), changed in place,
    and what a Sen2Cor-like scene classification flags of them.

    A pixel is cloudy where its texture tex < regional cover; the outer SCL_EDGE_SHARE of a
    cloud is its thin edge. Shadows lie beside clouds and are lit by diffuse sky light only
    (bluer); cirrus is a thin additive veil. The scene classification flags the share `detect`
    (n, m) of the cloud and the cirrus, the thickest first (texture below detect·cover), and the
    share `detect_shadow` of the shadow (`scl_detection`). Misses are spatially coherent (they
    follow the smooth textures), as a classifier's errors are."""
    cloud = tex < cover
    core = tex < (1.0 - P.SCL_EDGE_SHARE) * cover
    missed_edge = cloud & (tex >= detect * cover)
    rim = np.clip((cover - tex) / np.maximum(P.SCL_EDGE_SHARE * cover, 1e-9), 0.0, 1.0)
    op = np.where(core, 0.75 + 0.25 * u, 0.15 + 0.45 * rim)[..., None]
    clouded = (1 - op) * r
    clouded += op * optics.CLOUD
    np.copyto(r, clouded, where=cloud[..., None])
    del clouded
    shadow = ~cloud & (tex < 1.2 * cover) & (cover > 0.02)
    depth = np.clip((1.2 * cover - tex) / np.maximum(0.2 * cover, 1e-9), 0.0, 1.0)
    shade = 1.0 - (0.6 + 0.4 * depth)[..., None] * (1.0 - P.SHADOW_DIFFUSE)
    np.multiply(r, shade, out=r, where=shadow[..., None])
    cirrus = ~cloud & ~shadow & (tex2 < 0.25 * cover)
    np.add(r, P.CIRRUS_ADD, out=r, where=cirrus[..., None])
    missed_shadow = shadow & ((5.0 * tex2) % 1.0 >= detect_shadow)
    missed_cirrus = cirrus & (tex2 >= detect * 0.25 * cover)
    flagged = cloud & ~missed_edge
    return {"cloud": cloud, "shadow": shadow, "cirrus": cirrus,
            "flag_high": flagged & (tex < 0.6 * cover), "flag_medium": flagged,
            "flag_shadow": shadow & ~missed_shadow, "flag_cirrus": cirrus & ~missed_cirrus}
