"""Sen2Cor's cloud and shadow detection in CloudSEN12: the numbers behind the world's SCL errors.

The embedded world's Sen2Cor-like scene classification (`world/clouds.py`) draws, per 509 px
patch and acquisition, the share of cloud and of cloud shadow it flags from the deciles in
`world/physics_params.py` (`SCL_CLOUD_PA_DECILES` by cloud cover, `SCL_SHADOW_PA_DECILES`).
This script recomputes them from the per-patch metrics the CloudSEN12 authors published
(Aybar et al. 2022, Sci. Data 9:782): `figure11/cloudsen12_metrics.csv` of
github.com/cloudsen12/figures (commit 585229f; not shipped here: download it). Their code
(`figure10/utils.R`, `figure11/data_creator.R`) scores each 509 × 509 px patch: Sen2Cor cloud
= SCL 8|9|10 against the expert mask's thick|thin cloud (`sen2cor_exp01_*`), shadow = SCL 3
against its shadow (`sen2cor_exp02_*`); RECALL is the producer's accuracy, PRECISION the user's,
CCOVER the patch's reference cloud fraction. As their Table 6, patches with < 5 % cloud are left
out (a few cloud pixels make a recall of noise).

Usage: python benchmarks/cloudsen12_scl_rates.py cloudsen12_metrics.csv
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from s2mos_transforms.world.physics_params import SCL_COVER_EDGES

MIN_COVER = 0.05
_EDGES = (MIN_COVER, *SCL_COVER_EDGES, 1.01)                # the rows of SCL_CLOUD_PA_DECILES
COVER_CLASSES = tuple(zip(_EDGES[:-1], _EDGES[1:]))
PROBS = np.linspace(0.0, 1.0, 11)


def rates(metrics: pd.DataFrame) -> dict:
    """Deciles of Sen2Cor's per-patch recall by cloud-cover class and for shadow, pooled figures."""
    d = metrics[metrics["CCOVER"] >= MIN_COVER]
    out = {"n_patches": int(len(d)), "cloud_deciles": [], "cloud_n": []}
    for lo, hi in COVER_CLASSES:
        r = d.loc[(d["CCOVER"] >= lo) & (d["CCOVER"] < hi), "sen2cor_exp01_RECALL"].dropna().to_numpy()
        out["cloud_deciles"].append(np.round(np.quantile(r, PROBS), 3).tolist())
        out["cloud_n"].append(int(r.size))
    cloud = d[["CCOVER", "sen2cor_exp01_RECALL", "sen2cor_exp01_PRECISION"]].dropna()
    hits = cloud["CCOVER"] * cloud["sen2cor_exp01_RECALL"]           # recalled cloud, share of the patch
    out["cloud_pooled_recall"] = float(hits.sum() / cloud["CCOVER"].sum())
    flagged = cloud["sen2cor_exp01_PRECISION"] > 0
    out["cloud_pooled_precision"] = float(hits[flagged].sum()
                                          / (hits[flagged] / cloud.loc[flagged, "sen2cor_exp01_PRECISION"]).sum())
    shadow = d["sen2cor_exp02_RECALL"].dropna().to_numpy()
    out["shadow_deciles"] = np.round(np.quantile(shadow, PROBS), 3).tolist()
    out["shadow_n"] = int(shadow.size)
    out["shadow_mean_recall"] = float(shadow.mean())
    out["shadow_share_below_0_1"] = float((shadow < 0.1).mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("metrics_csv")
    r = rates(pd.read_csv(parser.parse_args().metrics_csv))
    print(f"patches with ≥ {MIN_COVER:.0%} cloud: {r['n_patches']}")
    for (lo, hi), n, dec in zip(COVER_CLASSES, r["cloud_n"], r["cloud_deciles"]):
        print(f"cloud recall deciles, cover {lo:.2f}–{min(hi, 1):.2f} (n {n}): {dec}")
    print(f"cloud recall pooled over patches: {r['cloud_pooled_recall']:.3f}; "
          f"precision pooled: {r['cloud_pooled_precision']:.3f}")
    print(f"shadow recall deciles (n {r['shadow_n']}): {r['shadow_deciles']}; mean {r['shadow_mean_recall']:.3f}; "
          f"below 0.1 in {r['shadow_share_below_0_1']:.0%} of patches")


if __name__ == "__main__":
    main()
