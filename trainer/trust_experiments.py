"""Measurements behind docs/trainer.md "How far to trust a map" (not used by the product).

    python -m trainer.trust_experiments aoa-cv --data DATASET --out DIR [--epochs 30 --bags 2] [--model series]
    python -m trainer.trust_experiments aoa-space --data DATASET --cv-dir DIR --space medians|composites|latent
        [--site-data SITE_DATASET [--model-dir M]]
    python -m trainer.trust_experiments recal-curve --model-dir M --samples site.csv --preset P --out DIR
    python -m trainer.trust_experiments recal-plot 'CNN=DIR1/recal_curve.json' 'series=DIR2/recal_curve.json' --png F

``aoa-cv``: spatial-block cross-validation of a served model, the CNN or (``--model series``)
the whole-series model (`aoa.spatial_folds` on every point of the dataset, both splits): for
each fold, the bagged model is trained on the other folds (`train.fit_spec`, the trainer's own
path), its AOA is fitted on them (`aoa.fit`), and the held-out fold is predicted; the fold's
errors are split by DI ≤ threshold, pooled with a block-bootstrap interval of the ratio. Also
the conformal coverage of the held-out fold (intervals calibrated on the training folds' bags).

``aoa-space``: the held-out errors of an ``aoa-cv`` run split by a DI in another feature space
(the fold models are not retrained): per-channel medians, temporal composites, or the model's
own last hidden layer (`latent_features`).

``recal-curve``: the site's samples through `s2mos recalibrate`'s own extraction and the
model's SavedModel, then `recalibrate.curve`: RMSE and bias on the samples left out after
recalibrating on n = 1, 3, 5, 10, 20 random ones (repeated draws).
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def aoa_cv(data_dir: str, out: str, epochs: int, bags: int, folds: int = 5, seed: int = 0,
           batch_size: int = 8, parallel: bool = True, model: str = "cnn", n_boot: int = 2000,
           blocks_per_side: int | None = None) -> dict:
    """Spatial-block CV of one served model (`cnn` or `series`): is the error larger outside the AOA?

    Each fold trains through `train.fit_spec` (the product's path: the model fits and predicts
    only the points it can use), so a point the model cannot use (the CNN's points without an
    S1-paired date) is neither inside nor outside, only counted. A fold whose predictions exist
    in OUT is not trained again (resume). The pooled ratio gets a 95 % interval from a bootstrap
    over the spatial blocks (errors are correlated within a block, so blocks are the unit)."""
    from s2mos_transforms import fileio
    from trainer import aoa, bagging, data, intervals, trust
    from trainer.config import TrainConfig
    from trainer.specs import all_specs
    from trainer.train import fit_spec, usable_points

    every = data.Split.concat([data.read_split(data_dir, "calibration"), data.read_split(data_dir, "test")])
    spec = all_specs()[model]
    feature, names = data.CHANNEL_SETS[spec.channels]
    fold = aoa.spatial_folds(every.coords, folds, seed, blocks_per_side)
    block = aoa.spatial_blocks(every.coords, folds, blocks_per_side)
    parts, rows = [], []
    for f in range(folds):
        t0 = time.time()
        tr, te = every.subset(np.flatnonzero(fold != f)), every.subset(np.flatnonzero(fold == f))
        stats = data.fit_stats(tr)
        cfg = TrainConfig(data=data_dir, model_dir=os.path.join(out, f"fold_{f}"), epochs=epochs, bags=bags,
                          batch_size=batch_size, models=model, seed=seed, verbose=0, parallel_bags=parallel)
        path = os.path.join(cfg.model_dir, "predictions", f"{model}.npz")
        if os.path.exists(path):
            tr_used, te_idx = tr.subset(usable_points(spec, tr)), usable_points(spec, te)
            bag_idx = bagging.draw_bags(len(tr_used), bags, bagging.BAG_FRACTION, seed)
        else:
            _, tr_used, _, bag_idx = fit_spec(spec, tr, te, stats, cfg, lambda *_: None)
            te_idx = usable_points(spec, te)
        te_used = te.subset(te_idx)
        saved = fileio.load_npz(path)
        mean, sd = bagging.combine(saved["bags"])
        iv = intervals.fit(tr_used.clay, saved["cal_bags"], bag_idx)
        lo, hi = intervals.bounds(mean, sd, iv)
        v_tr, l_tr = aoa.ragged(trust.raw_sequences(tr_used, feature), len(names))
        space = trust.aoa_space(names)        # the product's space for this model
        meta, train = aoa.fit(trust.aoa_features(v_tr, l_tr, tr_used.coords, spec.use_coords, names, space),
                              tr_used.clay, tr_used.coords, trust.feature_names(names, spec.use_coords, space), seed)
        area = aoa.AOA(meta, train)
        v_te, l_te = aoa.ragged(trust.raw_sequences(te_used, feature), len(names))
        di = area.di(trust.aoa_features(v_te, l_te, te_used.coords, spec.use_coords, names, space))
        split = aoa.split_errors(te_used.clay, mean, di, area.threshold)
        cov = intervals.coverage(te_used.clay, lo, hi)
        rows.append({"fold": f, "n_train": len(tr_used), "n_test": len(te_used), "n_unusable": len(te) - len(te_used),
                     **split, "picp": cov["picp"], "mean_width": cov["mean_width"],
                     "seconds": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
        parts.append({"err": np.abs(mean - te_used.clay), "di": di, "inside": area.inside(di),
                      "covered": (te_used.clay >= lo) & (te_used.clay <= hi),
                      "block": block[np.flatnonzero(fold == f)[te_idx]], "fold": np.full(len(te_used), f)})
    pooled = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    np.savez_compressed(os.path.join(out, "aoa_cv_points.npz"), **pooled)
    result = {"model": model, "aoa_space": trust.aoa_space(names), "folds": rows, "epochs": epochs, "bags": bags,
              "n_points": len(every), "blocks_per_side": blocks_per_side, "blocks": int(len(np.unique(block))),
              "n_unusable": int(sum(r["n_unusable"] for r in rows)),
              **ratio_with_interval(pooled["err"], pooled["di"], pooled["inside"], pooled["block"], n_boot, seed),
              "picp": float(pooled["covered"].mean())}
    fileio.write_json(os.path.join(out, "aoa_cv.json"), result)
    return result


def latent_features(root: str, spec, splits: list, stats) -> tuple[list[np.ndarray], np.ndarray]:
    """Per split of SPLITS, the (P, 16·bags) activations of the last hidden layer (`dense16`) of
    every Keras bag in model directory ROOT, each bag loaded once; and the |output kernel| of each
    unit (how far a unit moves the prediction: the importance of a unit, as Meyer & Pebesma weight
    a predictor by its importance)."""
    import keras
    from s2mos_transforms import fileio
    from trainer import series  # noqa: F401  (registers the whole-series model's layers)
    from trainer.fit_bags import keras_bag_path
    from trainer.inputs import prepare

    xs = [prepare(spec, split, stats).x for split in splits]
    hs, ws, k = [[] for _ in splits], [], 0
    while os.path.exists(keras_bag_path(root, spec, k)):
        m = fileio.load_keras(keras_bag_path(root, spec, k))
        hidden = keras.Model(m.inputs, m.get_layer("dense16").output)
        for h, x in zip(hs, xs):
            h.append(hidden.predict(x, batch_size=256, verbose=0))
        ws.append(np.abs(m.get_layer("clay").kernel.numpy()).ravel())
        k += 1
    if not k:
        raise FileNotFoundError(f"no Keras bag of {spec.name} in {root}")
    keras.backend.clear_session(free_memory=False)
    return [np.concatenate(h, axis=1).astype(np.float64) for h in hs], np.concatenate(ws)


def unit_weights(x: np.ndarray, w_out: np.ndarray) -> np.ndarray:
    """`aoa.fit` weights that make the AOA's distance that of w_out ⊙ h (`aoa.fit` divides by the sd)."""
    sd = x.std(axis=0)
    return np.abs(w_out) * np.where(sd > 0, sd, 1.0)


def aoa_space(data_dir: str, cv_dir: str, space: str = "composites", folds: int = 5, seed: int = 0,
              n_boot: int = 2000, site_dir: str | None = None, model_dir: str | None = None) -> dict:
    """The errors of an `aoa-cv` run (CV_DIR, its folds and predictions), split by a DI computed in
    another feature space: does another space mark the larger errors better than the product's
    medians? Models are not retrained; only the AOA's feature space changes.

    ``composites``: the temporal composites of `trainer.composites` (per-band quantiles, index
    medians and IQRs, number of bare dates, season, + lat/lon) — a summary of the whole bare
    series; with S1 statistics for the CNN (its points all have paired dates), without them for
    the whole-series model (NaN on its points without an S1 pair). ``medians``: the product's
    space (`trust.aoa_features`), to check that this reproduces `aoa-cv`. ``latent``: the model's own
    learnt space, the last hidden layer of each fold's bags (`latent_features`), each unit weighted
    by its |output weight| (no RF importance: the head itself says what a unit is worth). With
    SITE_DIR (a dataset of a shifted site), also the share of the site's points outside the AOA of
    every point of DATA; for ``latent`` the AOA of MODEL_DIR's calibration points in MODEL_DIR's
    space (a trained model of DATA: the fold models never saw every point)."""
    from s2mos_transforms import fileio
    from trainer import aoa, bagging, composites, data, trust
    from trainer.specs import all_specs
    from trainer.train import usable_points

    cv = fileio.read_json(os.path.join(cv_dir, "aoa_cv.json"))
    model, per_side = cv["model"], cv.get("blocks_per_side")     # the folds the CV run trained on
    every = data.Split.concat([data.read_split(data_dir, "calibration"), data.read_split(data_dir, "test")])
    spec = all_specs()[model]
    feature, names = data.CHANNEL_SETS[spec.channels]
    fold = aoa.spatial_folds(every.coords, folds, seed, per_side)
    block = aoa.spatial_blocks(every.coords, folds, per_side)
    all_names = composites.feature_names(True)
    wanted = all_names if model == "cnn" else composites.series_composite_names(True)
    keep = [all_names.index(n) for n in wanted]

    def features(split):
        if space == "medians":
            v, l = aoa.ragged(trust.raw_sequences(split, feature), len(names))
            return trust.aoa_features(v, l, split.coords, spec.use_coords, names)
        return composites.strong_features(split, None, True)[:, keep]

    errs, dis, ins, blks = [], [], [], []
    for f in range(folds):
        tr, te = every.subset(np.flatnonzero(fold != f)), every.subset(np.flatnonzero(fold == f))
        tr_used, te_idx = tr.subset(usable_points(spec, tr)), usable_points(spec, te)
        te_used = te.subset(te_idx)
        mean, _ = bagging.combine(fileio.load_npz(os.path.join(cv_dir, f"fold_{f}", "predictions", f"{model}.npz"))["bags"])
        if space == "latent":
            stats = data.fit_stats(tr)          # the fold's own normalisation (as `aoa_cv` trained it)
            (x_tr, x_te), w = latent_features(os.path.join(cv_dir, f"fold_{f}"), spec, [tr_used, te_used], stats)
            meta, train = aoa.fit(x_tr, tr_used.clay, tr_used.coords, [], seed, weights=unit_weights(x_tr, w))
        else:
            x_tr, x_te = features(tr_used), features(te_used)
            meta, train = aoa.fit(x_tr, tr_used.clay, tr_used.coords, [], seed)
        area = aoa.AOA(meta, train)
        di = area.di(x_te)
        errs.append(np.abs(mean - te_used.clay))
        dis.append(di)
        ins.append(area.inside(di))
        blks.append(block[np.flatnonzero(fold == f)[te_idx]])
    err, di, inside, blk = (np.concatenate(x) for x in (errs, dis, ins, blks))
    n_features = {"composites": len(keep), "latent": x_tr.shape[1]}.get(space, 0)
    result = {"model": model, "space": space, "n_features": int(n_features),
              "n_without_di": int((~np.isfinite(di)).sum()),
              **ratio_with_interval(err, di, inside, blk, n_boot, seed)}
    if site_dir:        # a shifted site: which share of its points does the AOA of every point flag?
        site = data.Split.concat([data.read_split(site_dir, "calibration"), data.read_split(site_dir, "test")])
        site = site.subset(usable_points(spec, site))
        if space == "latent":
            if not model_dir:
                raise ValueError("--site-data with --space latent needs --model-dir (a trained model of DATA)")
            from s2mos_transforms.normalize import NormStats
            cal = data.read_split(data_dir, "calibration")
            used, stats = cal.subset(usable_points(spec, cal)), NormStats.load(model_dir)
            (x_used, site_x), w = latent_features(model_dir, spec, [used, site], stats)
            meta, train = aoa.fit(x_used, used.clay, used.coords, [], seed, weights=unit_weights(x_used, w))
        else:
            used = every.subset(usable_points(spec, every))
            meta, train = aoa.fit(features(used), used.clay, used.coords, [], seed)
            site_x = features(site)
        area = aoa.AOA(meta, train)
        site_di = area.di(site_x)
        ok = np.isfinite(site_di)
        result["site"] = {"data": site_dir, "n": int(len(site)), "n_with_di": int(ok.sum()),
                          "share_outside": float(np.mean(~area.inside(site_di[ok]))) if ok.any() else None,
                          "median_di": float(np.median(site_di[ok])) if ok.any() else None,
                          "threshold": float(area.threshold)}
    fileio.write_json(os.path.join(cv_dir, f"aoa_space_{space}.json"), result)
    return result


def ratio_with_interval(err: np.ndarray, di: np.ndarray, inside: np.ndarray, block: np.ndarray,
                        n_boot: int = 2000, seed: int = 0) -> dict:
    """MAE inside and outside the AOA (points with a DI), their ratio, its 95 % block-bootstrap
    interval, and Spearman's ρ of DI and absolute error (does the error grow with the DI?)."""
    from scipy.stats import spearmanr

    ok = np.isfinite(di)
    err, di, inside, block = err[ok], di[ok], inside[ok], block[ok]
    blocks, where = np.unique(block, return_inverse=True)
    # per block: sums and counts inside / outside, so a replicate is a weighted sum over blocks
    s_in = np.bincount(where, err * inside, len(blocks))
    n_in = np.bincount(where, inside.astype(float), len(blocks))
    s_out = np.bincount(where, err * ~inside, len(blocks))
    n_out = np.bincount(where, (~inside).astype(float), len(blocks))
    w = np.random.default_rng(seed).multinomial(len(blocks), np.full(len(blocks), 1.0 / len(blocks)), n_boot)
    with np.errstate(invalid="ignore", divide="ignore"):
        reps = (w @ s_out / (w @ n_out)) / (w @ s_in / (w @ n_in))
    reps = reps[np.isfinite(reps)]
    mae_in, mae_out = err[inside].mean(), err[~inside].mean() if (~inside).any() else np.nan
    return {"n_inside": int(inside.sum()), "n_outside": int((~inside).sum()), "n_blocks": int(len(blocks)),
            "mae_inside": float(mae_in), "mae_outside": float(mae_out), "ratio": float(mae_out / mae_in),
            "ratio_ci95": [float(np.percentile(reps, 2.5)), float(np.percentile(reps, 97.5))] if reps.size else None,
            "spearman_di_abs_error": float(spearmanr(di, err).statistic)}


def recal_curve(model_dir: str, samples: str, preset: str, out: str, repeats: int = 500) -> dict:
    from pipelines.recalibrate import local_sequences
    from s2mos_transforms import fileio, sources
    from s2mos_transforms.dataset.samples import read_samples
    from s2mos_transforms.maps.engines import PaddedEnsemble
    from trainer import aoa, model_dir as md, recalibrate

    meta = md.read_meta(model_dir)
    points = read_samples(samples).points.to_dict("records")
    source = sources.create("synthetic", {"preset": preset})
    kept, seqs, rejected = local_sequences(points, source, meta.extract_config(), meta.sequence_feature or "s2s1")
    values, lengths = aoa.ragged(seqs, len(meta.channels))
    coords = np.array([[p["lat"], p["lon"]] for p in kept], np.float32)
    pred, _ = PaddedEnsemble(model_dir).predict(values, lengths.astype(np.int32), coords)
    y = np.array([p["clay"] for p in kept])
    rows = recalibrate.curve(y, pred, repeats=repeats, coords=coords)
    result = {"model_dir": model_dir, "samples": samples, "n_site": len(kept), "rejected": len(rejected),
              "curve": rows}
    fileio.write_json(os.path.join(out, "recal_curve.json"), result)
    for r in rows:
        line = f"  (line alone {r['rmse_line']:.2f})" if r.get("kriged") else ""
        print(f"n={r['n']:>2d}  RMSE {r['rmse']:.2f}  bias {r['bias']:+.2f}{line}", flush=True)
    return result


def recal_score(model_dirs: list[str], samples: str, used: str, preset: str) -> list[dict]:
    """Each model directory (as trained, recalibrated, fine-tuned …) scored on the site's samples
    that were NOT used to recalibrate (`used`: the local samples' table): RMSE, bias, 90 %
    interval coverage and width, through `Trust.apply` (so a recorded correction is applied)."""
    import pandas as pd
    from pipelines.recalibrate import local_sequences
    from s2mos_transforms import sources
    from s2mos_transforms.dataset.samples import read_samples
    from s2mos_transforms.maps.engines import PaddedEnsemble
    from trainer import aoa, model_dir as md, trust

    taken = set(pd.read_csv(used)["point_id"].astype(str))
    points = [p for p in read_samples(samples).points.to_dict("records") if str(p["point_id"]) not in taken]
    source = sources.create("synthetic", {"preset": preset})
    rows = []
    for root in model_dirs:
        meta = md.read_meta(root)
        kept, seqs, _ = local_sequences(points, source, meta.extract_config(), meta.sequence_feature or "s2s1")
        values, lengths = aoa.ragged(seqs, len(meta.channels))
        coords = np.array([[p["lat"], p["lon"]] for p in kept], np.float32)
        mean, sd = PaddedEnsemble(root).predict(values, lengths.astype(np.int32), coords)
        out = trust.Trust.load(root, meta).apply(mean, sd, values, lengths, coords)
        y = np.array([p["clay"] for p in kept], np.float64)
        err = out["clay_mean"].astype(np.float64) - y
        inside = (y >= out["clay_p05"]) & (y <= out["clay_p95"])
        rows.append({"model_dir": root, "n": int(len(y)), "rmse": float(np.sqrt(np.mean(err ** 2))),
                     "bias": float(err.mean()), "picp": float(inside.mean()),
                     "width": float(np.mean(out["clay_p95"] - out["clay_p05"])),
                     "recalibration": (meta.recalibration or {}).get("kind", "none")})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def recal_plot(curves: dict[str, str], out_png: str, target_rmse: float = 12.0) -> None:
    """RMSE and mean |bias| of the site against the number of local samples, one line per
    `recal-curve` JSON (label → path), with the 10th–90th percentile band of the RMSE over draws."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from s2mos_transforms import fileio
    from trainer import recalibrate

    fig, (ax_r, ax_b) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for label, path in curves.items():
        rows = fileio.read_json(path)["curve"]
        n = np.array([r["n"] for r in rows])
        rmse = np.array([r["rmse"] for r in rows])
        (line,) = ax_r.plot(n, rmse, "o-", label=label)
        if any(r.get("kriged") for r in rows):      # the same draws corrected by the line alone
            ax_r.plot(n, [r.get("rmse_line", r["rmse"]) for r in rows], "--", color=line.get_color(),
                      label=f"{label}, line only (no kriging)")
        band = [r for r in rows if r.get("rmse_p10") is not None]
        ax_r.fill_between([r["n"] for r in band], [r["rmse_p10"] for r in band], [r["rmse_p90"] for r in band],
                          color=line.get_color(), alpha=0.15)
        ax_b.plot(n, [r.get("abs_bias", abs(r["bias"])) for r in rows], "o-",       # n = 0: no draws
                  color=line.get_color(), label=f"{label}: |bias| of one draw")
        ax_b.plot(n, [abs(r["bias"]) for r in rows], "s--", color=line.get_color(), alpha=0.6,
                  label=f"{label}: |mean bias| over draws")
        stated = [(r["n"], r["stated_abs_bias"]) for r in rows if r.get("stated_abs_bias") is not None]
        if stated:                                  # what `recalibrate` tells each draw it is left with
            ax_b.plot(*zip(*stated), "x:", color=line.get_color(),
                      label=f"{label}: |bias| recalibrate expects (σ·√(2/πn))")
    ax_r.axhline(target_rmse, color="grey", ls=":", label=f"target {target_rmse:g} %")
    ax_b.axhline(recalibrate.BIAS_TARGET, color="grey", ls=":", label=f"target {recalibrate.BIAS_TARGET:g} %")
    for ax, what in ((ax_r, "site RMSE (% clay)"), (ax_b, "site |bias| (% clay)")):
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks([0, 1, 3, 5, 10, 20])
        ax.set_xticklabels(["0", "1", "3", "5", "10", "20"])
        ax.set_xlabel("local samples used to recalibrate")
        ax.set_ylabel(what)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ax_r.set_title("RMSE on the site's other samples (band: 10–90 % of draws)", fontsize=9)
    ax_b.set_title("bias on the site's other samples", fontsize=9)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.trust_experiments")
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("aoa-cv")
    a.add_argument("--data", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--epochs", type=int, default=30)
    a.add_argument("--bags", type=int, default=2)
    a.add_argument("--batch-size", type=int, default=8)
    a.add_argument("--model", choices=("cnn", "series"), default="cnn", help="the served model to cross-validate")
    a.add_argument("--blocks-per-side", type=int, help="m × m lat/lon quantile blocks dealt to the 5 folds "
                   "(default ⌈√20⌉ = 5: about four blocks a fold); fewer, larger blocks hold out farther")
    sp = sub.add_parser("aoa-space")
    sp.add_argument("--data", required=True)
    sp.add_argument("--cv-dir", required=True, help="OUT of an aoa-cv run (its folds' predictions)")
    sp.add_argument("--space", choices=("composites", "medians", "latent"), default="composites")
    sp.add_argument("--site-data", help="dataset of a shifted site: the share of its points outside the AOA")
    sp.add_argument("--model-dir", help="with --space latent and --site-data: a model trained on DATA (its space)")
    rs = sub.add_parser("recal-score", help="model dirs scored on the site samples not used to recalibrate")
    rs.add_argument("model_dirs", nargs="+")
    rs.add_argument("--samples", required=True)
    rs.add_argument("--used", required=True, help="the local samples' table given to recalibrate")
    rs.add_argument("--preset", required=True)
    rp = sub.add_parser("recal-plot", help="plot recal-curve JSONs: LABEL=PATH …")
    rp.add_argument("curves", nargs="+")
    rp.add_argument("--png", required=True)
    r = sub.add_parser("recal-curve")
    r.add_argument("--model-dir", required=True)
    r.add_argument("--samples", required=True)
    r.add_argument("--preset", required=True)
    r.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.what == "recal-score":
        recal_score(args.model_dirs, args.samples, args.used, args.preset)
        return 0
    if args.what == "recal-plot":
        recal_plot(dict(c.split("=", 1) for c in args.curves), args.png)
        return 0
    if args.what == "aoa-space":
        print(json.dumps(aoa_space(args.data, args.cv_dir, args.space, site_dir=args.site_data,
                                          model_dir=args.model_dir), indent=1))
        return 0
    os.makedirs(args.out, exist_ok=True)
    if args.what == "aoa-cv":
        print(json.dumps(aoa_cv(args.data, args.out, args.epochs, args.bags, batch_size=args.batch_size,
                                model=args.model, blocks_per_side=args.blocks_per_side), indent=1))
    else:
        recal_curve(args.model_dir, args.samples, args.preset, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
