"""`s2mos evaluate`: test-set metrics, the paper-style report, Figure 9 and Figures 10–11.

Predictions
  * Keras models (CNNs, ANNs) are reloaded from the model directory and re-run on the test
    split read from --data; the main ``cnn`` is scored through the exported serving ensemble
    fed RAW inputs (the path map inference uses), and checked against the average of its bag
    models (``ensemble_check`` in report.json).
  * RF bags are not kept by default (size), so their test predictions come from
    predictions/<name>.npz written by `train`; they are used only when their point ids are
    exactly the test split's, otherwise the model is reported as not scored (or re-predicted
    from models/<name>/bag_K.joblib when `train --save-rf` kept them).

Outputs (OUT, default MODEL_DIR/evaluation): report.json ({"models": {name: {r2, rmse, rpiq,
ccc, bias, n, …}}, …}), report.md, predictions.csv, figures/scatter_<name>.png,
figures/scatter_all.png (Figure 9), figures/interpretability.png + interpretability.json
(Figures 10–11).
"""
from __future__ import annotations

import datetime as _dt
import time

import numpy as np

from s2mos_transforms import fileio, metrics
from trainer import bagging, intervals
from trainer.figures import plot_scatters
from trainer.interpret import interpretability
from trainer.model_dir import MAIN_MODEL
from trainer.predictions import keras_predictions, raw_test_inputs, rf_predictions, spec_from_record
from trainer.report import comparisons, print_table, report_markdown
from trainer.specs import paper_result


def served_name(manifest: dict) -> str | None:
    """The model whose bags are the serving ensemble (manifests before --serve: the CNN)."""
    if not manifest.get("ensemble"):
        return None
    return manifest.get("served") or MAIN_MODEL


def served_raw(spec, split) -> tuple[np.ndarray, np.ndarray]:
    """Raw padded inputs of the serving ensemble for `split` (the path map inference takes)."""
    from trainer import data

    feature, names = data.CHANNEL_SETS[spec.channels]
    if spec.family == "series":
        from trainer import series
        seqs = series.raw_sequences(split)
    else:
        seqs = split.sequences[feature]
    longest = max([len(s) for s in seqs] + [1])
    return data.pad_sequences(seqs, len(names), max_dates=longest)


def common_subset(point_sets: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Test indices every scored model predicted (like-for-like comparisons)."""
    mask = np.ones(n, bool)
    for idx in point_sets.values():
        own = np.zeros(n, bool)
        own[idx] = True
        mask &= own
    return np.flatnonzero(mask)


def native_interval(model_dir: str, name: str, point_id: np.ndarray, observed: np.ndarray) -> dict | None:
    """PICP of a quantile model's own 5–95 % quantiles (QRF), when train saved them for these test points."""
    from trainer.model_dir import predictions_path

    saved = fileio.load_npz(predictions_path(model_dir, name))
    if "q05" not in saved or "q95" not in saved:
        return None
    if not np.array_equal(saved["point_id"].astype(str), np.asarray(point_id).astype(str)):
        return None                 # train-time quantiles of another test split
    lo, hi = np.mean(saved["q05"], axis=0), np.mean(saved["q95"], axis=0)
    return {**intervals.coverage(observed, lo, hi), "level": 0.90,
            "method": "quantile forest, mean over bags of the 5 % and 95 % conditional quantiles"}


def evaluate(model_dir: str, data_dir: str, out_dir: str | None = None, top_fraction: float = 0.05,
             log=print) -> dict:
    """Score every model of the run on the test split of `data_dir`; write the report.

    Each model is scored on the test points it can use (`train.usable_points`: the models of
    S1-paired dates on the points with such dates) and, for like-for-like comparisons, on the
    common subset every scored model predicted (``common`` in each model's entry)."""
    from s2mos_transforms.errors import UserError
    from s2mos_transforms.normalize import NormStats
    from trainer import data, ensemble
    from trainer.train import usable_points

    t0 = time.perf_counter()
    out_dir = out_dir or fileio.join(model_dir, "evaluation")
    manifest_path = fileio.join(model_dir, "manifest.json")
    if not fileio.exists(manifest_path):
        raise UserError(f"{model_dir}: no manifest.json (run `s2mos train` first)")
    manifest = fileio.read_json(manifest_path)
    served = served_name(manifest)
    stats = NormStats.load(model_dir)
    test = data.read_split(data_dir, "test")
    observed = test.clay.astype(np.float64)
    results, preds, not_scored, ens_check, own = {}, {}, {}, None, {}
    csv_cols = {"point_id": test.point_id.astype(str), "observed": observed}
    for rec in manifest["models"]:
        spec = spec_from_record(rec)
        idx = usable_points(spec, test)
        test_sub = test if idx.size == len(test) else test.subset(idx)
        if not len(test_sub):
            not_scored[spec.name] = "no test point it can use"
            continue
        if spec.keras:
            bag_preds, source = keras_predictions(spec, rec, model_dir, test_sub, stats), "saved Keras bags"
        else:
            bag_preds, source = rf_predictions(spec, rec, model_dir, test_sub, stats)
            if bag_preds is None:
                not_scored[spec.name] = source
                log(f"[{spec.name}] not scored: {source}")
                continue
        mean, std = bagging.combine(bag_preds)
        if spec.name == served:
            raw, lengths = served_raw(spec, test_sub)
            loaded = ensemble.load(fileio.join(model_dir, manifest["ensemble"]))
            e_mean, e_std = loaded.predict(raw, lengths, test_sub.coords)
            ens_check = {"model": spec.name,
                         "max_abs_diff_mean": float(np.max(np.abs(e_mean - mean))) if len(mean) else 0.0,
                         "max_abs_diff_std": float(np.max(np.abs(e_std - std))) if len(std) else 0.0}
            mean, std, source = e_mean.astype(np.float64), e_std.astype(np.float64), "serving ensemble (raw inputs)"
        obs = observed[idx]
        m = metrics.summary(obs, mean)
        if rec.get("intervals"):
            lo, hi = intervals.bounds(mean, std, rec["intervals"])
            m["interval"] = {**intervals.coverage(obs, lo, hi), "level": rec["intervals"]["level"]}
        native = native_interval(model_dir, spec.name, test_sub.point_id, obs) if spec.family == "qrf" else None
        if native:
            m["native_interval"] = native
        paper = paper_result(spec)
        m.update(description=spec.description, family=spec.family, input=spec.input, channels=spec.channels,
                 use_coords=spec.use_coords, mean_bag_std=float(np.mean(std)) if len(std) else 0.0,
                 bag_r2=[metrics.r2(obs, b) for b in bag_preds], source=source,
                 points=rec.get("points", "all"), n_calibration=rec.get("n_calibration"),
                 paper_r2=paper[0] if paper else None, paper_rpiq=paper[1] if paper else None)
        if rec.get("rf_params"):
            m["rf_params"] = rec["rf_params"]
        results[spec.name] = m
        own[spec.name] = idx
        full_mean = np.full(len(test), np.nan)
        full_std = np.full(len(test), np.nan)
        full_mean[idx], full_std[idx] = mean, std
        preds[spec.name] = (full_mean, full_std)
        csv_cols[f"{spec.name}_mean"] = full_mean
        csv_cols[f"{spec.name}_std"] = full_std
    if not results:
        raise UserError("no model could be scored")
    common = common_subset(own, len(test))
    for name, m in results.items():
        m["common"] = metrics.summary(observed[common], preds[name][0][common]) if common.size > 1 else None
    common_preds = {n: (mean[common], std[common]) for n, (mean, std) in preds.items()}
    plot_scatters(results, common_preds, observed[common], out_dir)
    interp = None
    cnn_rec = next((r for r in manifest["models"] if r["name"] == MAIN_MODEL), None)
    if cnn_rec is not None:
        cal = data.read_split(data_dir, "calibration")
        cal = cal.subset(usable_points(spec_from_record(cnn_rec), cal))
        interp = interpretability(model_dir, cal, stats, cnn_rec["channels"], top_fraction, out_dir, log)
    aoa_scores = None
    if served in preds:
        own_idx = own[served]
        aoa_scores = test_aoa(model_dir, test.subset(own_idx), preds[served][0][own_idx], observed[own_idx])
    report = {"data": data_dir, "model_dir": model_dir, "n_test": len(test), "n_common": int(common.size),
              "bags": manifest["bags"], "served": served,
              "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "extraction": manifest.get("extraction"), "extraction_source": manifest.get("extraction_source"),
              "models": results, "comparisons": comparisons(observed[common], common_preds),
              "not_scored": not_scored, "ensemble_check": ens_check,
              "interpretability": interp, "aoa": aoa_scores, "seconds": round(time.perf_counter() - t0, 2)}
    fileio.write_json(fileio.join(out_dir, "report.json"), report)
    fileio.write_text(fileio.join(out_dir, "report.md"), report_markdown(report))
    header = ",".join(csv_cols)
    body = "\n".join(",".join(str(v) if isinstance(v, str) else ("" if not np.isfinite(v) else f"{v:.4f}")
                              for v in row)
                     for row in zip(*csv_cols.values()))
    fileio.write_text(fileio.join(out_dir, "predictions.csv"), header + "\n" + body + "\n")
    print_table(report, log)
    log(f"report: {fileio.join(out_dir, 'report.md')}")
    return report


def test_aoa(model_dir: str, test, pred: np.ndarray, observed: np.ndarray) -> dict | None:
    """The serving ensemble's test points inside vs outside its area of applicability."""
    from trainer import aoa as aoa_mod
    from trainer import model_dir as md, trust

    meta = md.read_meta(model_dir)
    if not meta.aoa:
        return None
    t = trust.Trust.load(model_dir, meta)
    feature = meta.sequence_feature or "s2s1"
    if feature == "series":
        from trainer import series
        seqs = series.raw_sequences(test)
    else:
        seqs = test.sequences[feature]
    values, lengths = aoa_mod.ragged(seqs, len(meta.channels))
    di = t.aoa.di(trust.aoa_features(values, lengths, test.coords, meta.use_coords, meta.channels,
                                     t.aoa.meta.get("space", "medians")))
    return aoa_mod.split_errors(observed, pred, di, t.aoa.threshold)


# ---------------------------------------------------------------- CLI (s2mos evaluate)

def configure(parser) -> None:
    from trainer import cli
    cli.add_evaluate_flags(parser)


def run(args, extra) -> int:
    from trainer.config import printer
    evaluate(args.model_dir, args.data, args.out, args.top_fraction, printer(args.verbose))
    return 0
