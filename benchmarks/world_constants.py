"""How much did the world constants corrected in sessions 9 and 15 move the science?

Until session 9, three values of `world/physics_params.py` disagreed with the source they cite
(docs/world.md, "Sources checked"). This script measures each old and new value's effect:
  * wilting point: old 0.03 + 0.0045·clay (0.035–0.05 m³/m³ low from 40 % clay on); new
    0.017 + 0.00567·clay, the linear fit of the Saxton & Rawls (2006) θ1500 regression at 1.75 %
    organic matter (within 0.01 of it from 5 to 60 % clay).
  * deep (C-band) layer drydown time vs texture: old ×3.2 (2.5 → 8 d); new ×1.3 (3.9 → 5.1 d,
    the same geometric mean), as Shellito et al. (2018) find texture plays a minor role.
  * roughness stability vs texture: old, instability grows with silt + 0.5·clay (sands the
    stable end); new, P0 110 mm at 31 % clay falling to 45 mm at 0 and 62 % (Potter 1990).
Variants: `before` (all three old: the world until session 9), `wilting`, `deep_tau`, `roughness`
(that one new, the others old), `session14` (all three new: the world of sessions 9–14) and
`current` (the world now: also Sen2Cor's SCL errors at CloudSEN12's rates since session 15; the
other variants keep the SCL of the sessions before).

For each variant (a fresh process that sets the constants before the world is imported), the
`paper` preset's samples go through the real `s2mos build-dataset` (embedded world, default
settings), and the clay information of the kept points is measured as the 5-fold CV R² of a
random forest (300 trees, min leaf 5, a third of the features per split, seed 0) on the
temporal-composite features of `rf_strong` (`trainer.composites.strong_features`) without
coordinates: S1 columns alone (statistics of the S1-paired dates), S2 columns alone, and all.
The ± is the sd over the 5 folds / √5.

Usage: python benchmarks/world_constants.py --out DIR [--variants before,wilting,deep_tau,roughness,current]
                                             [--n-points N]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

# variant → which of (wilting, deep_tau, roughness) take their new (session-9) value
VARIANTS = {"before": (), "wilting": ("wilting",), "deep_tau": ("deep_tau",), "roughness": ("roughness",),
            "session14": ("wilting", "deep_tau", "roughness"),
            "current": ("wilting", "deep_tau", "roughness", "scl")}
# Sen2Cor's SCL errors until session 15 (modelling choices): the outer 70 % of a cloud's thin edge,
# 45 % of thin cirrus and 40 % of shadows missed, the same share in every scene.
SCL_SESSION14 = {"edge_miss": 0.70, "cirrus_miss": 0.45, "shadow_miss": 0.40}


def apply_variant(name: str) -> None:
    """Set the variant's constants (before any world module but physics_params is imported):
    the values not in VARIANTS[name] go back to what they were until session 9."""
    import numpy as np

    from s2mos_transforms.world import physics_params as P
    new = VARIANTS[name]
    if "wilting" not in new:
        P.WILTING_BASE, P.WILTING_PER_CLAY = 0.03, 0.0045
    if "deep_tau" not in new:
        P.TAU_DEEP_DAYS = (2.5, 8.0)
    if "roughness" not in new:
        from s2mos_transforms.world import simulator, soil
        current = soil.hydraulics

        def sand_stable_hydraulics(props):          # the rate of the world until session 9
            out = current(props)
            p0_stable, p0_unstable = P.ROUGH_P0_MM
            out["rough_rate"] = 1.0 / (p0_stable + (p0_unstable - p0_stable) * out["crust_sus"])
            return out
        soil.hydraulics = simulator.hydraulics = sand_stable_hydraulics     # imported by name there
    if "scl" not in new:
        from s2mos_transforms.world import clouds, simulator

        def fixed_rates(cover, u_cloud, u_shadow):            # one share for every scene
            flagged = 1.0 - P.SCL_EDGE_SHARE * SCL_SESSION14["edge_miss"]
            return np.full(np.shape(cover), flagged), np.full(np.shape(cover), 1.0 - SCL_SESSION14["shadow_miss"])

        def clouds_and_scl(r, cover, tex, tex2, u, detect, detect_shadow):
            out = current_scl(r, cover, tex, tex2, u, detect, detect_shadow)
            cirrus = out["cirrus"]                            # the outer 45 % of the cirrus missed
            out["flag_cirrus"] = cirrus & (tex2 < (1.0 - SCL_SESSION14["cirrus_miss"]) * 0.25 * cover)
            return out
        current_scl = clouds.clouds_and_scl
        simulator.scl_detection, simulator.clouds_and_scl = fixed_rates, clouds_and_scl
    from s2mos_transforms.world import weather              # its layer times are read at import
    weather.LAYER_TAU = np.array([*P.TAU_SKIN_DAYS, *P.TAU_DEEP_DAYS])


def cv_r2(x, y, seed: int = 0) -> tuple[float, float]:
    import numpy as np
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.model_selection import KFold

    ok = np.all(np.isfinite(x), axis=1)
    x, y = np.nan_to_num(x[ok], nan=0.0), y[ok]
    scores = []
    for tr, te in KFold(5, shuffle=True, random_state=seed).split(x):
        rf = RandomForestRegressor(300, min_samples_leaf=5, max_features=1 / 3, random_state=seed, n_jobs=1)
        pred = rf.fit(x[tr], y[tr]).predict(x[te])
        scores.append(1.0 - np.sum((pred - y[te]) ** 2) / np.sum((y[te] - y[te].mean()) ** 2))
    return float(np.mean(scores)), float(np.std(scores) / np.sqrt(len(scores)))


def child(variant: str, out: str, n_points: int | None) -> dict:
    apply_variant(variant)
    import numpy as np

    from pipelines.cli import main
    from s2mos_transforms.sources.synthetic import SyntheticSource
    from trainer import composites, data

    os.makedirs(out, exist_ok=True)
    samples = os.path.join(out, "samples.csv")
    SyntheticSource("paper").sample_points(n_points).to_csv(samples, index=False)
    ds = os.path.join(out, "dataset")
    t0 = time.perf_counter()
    if main(["build-dataset", "--samples", samples, "--out", ds, "--preset", "paper", "--quiet"]) != 0:
        raise SystemExit(f"{variant}: build-dataset failed")
    seconds = time.perf_counter() - t0
    split = data.Split.concat([data.read_split(ds, "calibration"), data.read_split(ds, "test")])
    x = composites.strong_features(split, use_coords=False).astype(np.float64)
    names = composites.feature_names(False)
    s1 = np.array([n.startswith(("VV", "VH")) or n == "n_s1_paired" for n in names])
    y = np.asarray(split.clay, np.float64)
    summary = json.load(open(os.path.join(ds, "summary.json")))
    paired = np.array([len(s) > 0 for s in split.sequences["s2s1"]])
    r = {"variant": variant, "kept": int(len(y)), "paired": int(paired.sum()), "build_seconds": round(seconds, 1),
         "summary_counts": {k: summary[k] for k in ("calibration", "test", "rejected")}}
    r["s1_only"] = cv_r2(x[paired][:, s1], y[paired])
    r["s2_only"] = cv_r2(x[:, ~s1], y)
    r["all_paired"] = cv_r2(x[paired], y[paired])
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--n-points", type=int, default=None, help="samples of the paper preset (default all)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, os.path.join(args.out, args.child), args.n_points)))
        return
    rows = []
    for v in [v for v in args.variants.split(",") if v]:
        if v not in VARIANTS:
            parser.error(f"unknown variant {v} ({', '.join(VARIANTS)})")
        cmd = [sys.executable, __file__, "--out", args.out, "--child", v]
        if args.n_points:
            cmd += ["--n-points", str(args.n_points)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"{v}: failed\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(r)
        print(f"{v:>10}: kept {r['kept']} (S1-paired {r['paired']}), build {r['build_seconds']} s; CV R² "
              f"S1 only {r['s1_only'][0]:.3f} ± {r['s1_only'][1]:.3f}, S2 only {r['s2_only'][0]:.3f} ± "
              f"{r['s2_only'][1]:.3f}, all {r['all_paired'][0]:.3f} ± {r['all_paired'][1]:.3f}", flush=True)
    with open(os.path.join(args.out, "world_constants.json"), "w") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
