"""Measurements behind docs/trainer.md "How far to trust a map" (not used by the product).

    python -m trainer.trust_experiments aoa-cv --data DATASET --out DIR [--epochs 30 --bags 2]
    python -m trainer.trust_experiments recal-curve --model-dir M --samples site.csv --preset P --out DIR

``aoa-cv``: spatial-block cross-validation of the CNN (`aoa.spatial_folds` on every point of
the dataset, both splits): for each fold, the bagged CNN is trained on the other folds
(`fit_bags.train_model`, the trainer's own code), its AOA is fitted on them (`aoa.fit`), and
the held-out fold is predicted; the fold's errors are split by DI ≤ threshold. Also the
conformal coverage of the held-out fold (intervals calibrated on the training folds' bags).

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
           batch_size: int = 8, parallel: bool = True) -> dict:
    from s2mos_transforms import fileio
    from trainer import aoa, bagging, data, intervals, trust
    from trainer.config import TrainConfig
    from trainer.fit_bags import train_model
    from trainer.specs import all_specs

    cal, test = data.read_split(data_dir, "calibration"), data.read_split(data_dir, "test")
    every = data.Split(np.concatenate([cal.point_id, test.point_id]), np.concatenate([cal.coords, test.coords]),
                       np.concatenate([cal.clay, test.clay]),
                       {k: cal.sequences[k] + test.sequences[k] for k in cal.sequences})
    spec = all_specs()["cnn"]
    feature, names = data.CHANNEL_SETS[spec.channels]
    fold = aoa.spatial_folds(every.coords, folds, seed)
    err_all, di_all, inside_all, cover = [], [], [], []
    rows = []
    for f in range(folds):
        t0 = time.time()
        tr, te = every.subset(np.flatnonzero(fold != f)), every.subset(np.flatnonzero(fold == f))
        stats = data.fit_stats(tr)
        bag_idx = bagging.draw_bags(len(tr), bags, bagging.BAG_FRACTION, seed)
        cfg = TrainConfig(data=data_dir, model_dir=os.path.join(out, f"fold_{f}"), epochs=epochs, bags=bags,
                          batch_size=batch_size, models="cnn", seed=seed, verbose=0, parallel_bags=parallel)
        train_model(spec, tr, te, stats, bag_idx, cfg, lambda *_: None)
        saved = fileio.load_npz(os.path.join(cfg.model_dir, "predictions", "cnn.npz"))
        mean, sd = bagging.combine(saved["bags"])
        iv = intervals.fit(tr.clay, saved["cal_bags"], bag_idx)
        lo, hi = intervals.bounds(mean, sd, iv)
        v_tr, l_tr = aoa.ragged(tr.sequences[feature], len(names))
        meta, train = aoa.fit(trust.aoa_features(v_tr, l_tr, tr.coords, True), tr.clay, tr.coords,
                              trust.feature_names(names, True), seed)
        area = aoa.AOA(meta, train)
        v_te, l_te = aoa.ragged(te.sequences[feature], len(names))
        di = area.di(trust.aoa_features(v_te, l_te, te.coords, True))
        split = aoa.split_errors(te.clay, mean, di, area.threshold)
        cov = intervals.coverage(te.clay, lo, hi)
        rows.append({"fold": f, "n_train": len(tr), "n_test": len(te), **split, "picp": cov["picp"],
                     "mean_width": cov["mean_width"], "seconds": round(time.time() - t0, 1)})
        print(json.dumps(rows[-1]), flush=True)
        err_all.append(np.abs(mean - te.clay))
        di_all.append(di)
        inside_all.append(area.inside(di))
        cover.append((te.clay >= lo) & (te.clay <= hi))
    err, inside = np.concatenate(err_all), np.concatenate(inside_all)
    result = {"folds": rows, "epochs": epochs, "bags": bags, "n_points": len(every),
              "mae_inside": float(err[inside].mean()) if inside.any() else None,
              "mae_outside": float(err[~inside].mean()) if (~inside).any() else None,
              "n_inside": int(inside.sum()), "n_outside": int((~inside).sum()),
              "picp": float(np.concatenate(cover).mean())}
    if result["mae_inside"] and result["mae_outside"] is not None:
        result["ratio"] = result["mae_outside"] / result["mae_inside"]
    fileio.write_json(os.path.join(out, "aoa_cv.json"), result)
    return result


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
    rows = recalibrate.curve(y, pred, repeats=repeats)
    result = {"model_dir": model_dir, "samples": samples, "n_site": len(kept), "rejected": len(rejected),
              "curve": rows}
    fileio.write_json(os.path.join(out, "recal_curve.json"), result)
    for r in rows:
        print(f"n={r['n']:>2d}  RMSE {r['rmse']:.2f}  bias {r['bias']:+.2f}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer.trust_experiments")
    sub = p.add_subparsers(dest="what", required=True)
    a = sub.add_parser("aoa-cv")
    a.add_argument("--data", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--epochs", type=int, default=30)
    a.add_argument("--bags", type=int, default=2)
    a.add_argument("--batch-size", type=int, default=8)
    r = sub.add_parser("recal-curve")
    r.add_argument("--model-dir", required=True)
    r.add_argument("--samples", required=True)
    r.add_argument("--preset", required=True)
    r.add_argument("--out", required=True)
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if args.what == "aoa-cv":
        print(json.dumps(aoa_cv(args.data, args.out, args.epochs, args.bags, batch_size=args.batch_size), indent=1))
    else:
        recal_curve(args.model_dir, args.samples, args.preset, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
