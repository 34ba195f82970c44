"""Clouds, cloud shadows and thin cirrus over a scene, and a Sen2Cor-like scene classification
of them that misses what Sen2Cor misses (thin edges, faint cirrus, many shadows)."""
from __future__ import annotations

import numpy as np

from s2mos_transforms.world import optics
from s2mos_transforms.world import physics_params as P


def clouds_and_scl(r: np.ndarray, cover: np.ndarray, tex: np.ndarray, tex2: np.ndarray,
                   u: np.ndarray) -> dict:
    """Clouds, their shadows and thin cirrus over reflectance r (n, m, 10), changed in place,
    and what a Sen2Cor-like scene classification flags of them (physics_params.SCL_*).

    A pixel is cloudy where its texture tex < regional cover; the outer SCL_EDGE_SHARE of a
    cloud is its thin edge, whose outer part Sen2Cor misses. Shadows lie beside clouds and
    are lit by diffuse sky light only (bluer); cirrus is a thin additive veil. Misses are
    spatially coherent (they follow the smooth textures), as a classifier's errors are."""
    cloud = tex < cover
    core = tex < (1.0 - P.SCL_EDGE_SHARE) * cover
    missed_edge = cloud & (tex >= (1.0 - P.SCL_EDGE_SHARE * P.SCL_EDGE_MISS) * cover)
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
    missed_shadow = shadow & ((5.0 * tex2) % 1.0 < P.SCL_SHADOW_MISS)
    missed_cirrus = cirrus & (tex2 >= (1.0 - P.SCL_CIRRUS_MISS) * 0.25 * cover)
    flagged = cloud & ~missed_edge
    return {"cloud": cloud, "shadow": shadow, "cirrus": cirrus,
            "flag_high": flagged & (tex < 0.6 * cover), "flag_medium": flagged,
            "flag_shadow": shadow & ~missed_shadow, "flag_cirrus": cirrus & ~missed_cirrus}
