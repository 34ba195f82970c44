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
import io
import math
import time

import numpy as np

from s2mos_transforms import bands, metrics
from s2mos_transforms import fileio
from trainer import bagging
from trainer.specs import ModelSpec, paper_result

FIG_DIR = "figures"


# ---------------------------------------------------------------- predictions

def spec_from_record(rec: dict) -> ModelSpec:
    return ModelSpec(rec["name"], rec["family"], rec["input"], rec["channels"], rec["use_coords"],
                     rec.get("description", rec["name"]))


def keras_predictions(spec: ModelSpec, rec: dict, model_dir: str, test, stats) -> np.ndarray:
    """(n_bags, N) % clay from the saved bag models, on the test split read now."""
    from trainer import data, train

    prep = train.prepare(spec, test, stats)
    out = []
    for k, bag in enumerate(rec["bags"]):
        model = fileio.load_keras(train.keras_bag_path(model_dir, spec, k))
        rows = train.predict_keras(model, prep.x)
        fill = float(bag.get("fill", 0.0))
        z = train.per_point(np.asarray(rows, np.float64), prep, len(test), fill)
        out.append(data.clay_from_target(z, stats))
    return np.stack(out)


def rf_predictions(spec: ModelSpec, rec: dict, model_dir: str, test, stats) -> tuple[np.ndarray | None, str]:
    """RF bag predictions: re-predicted from saved forests, else the train-time predictions."""
    from trainer import data, train

    joblibs = [fileio.join(model_dir, "models", spec.name, f"bag_{k}.joblib") for k in range(len(rec["bags"]))]
    if all(fileio.exists(p) for p in joblibs):
        import joblib
        prep = train.prepare(spec, test, stats)
        out = []
        for p, bag in zip(joblibs, rec["bags"]):
            rf = joblib.load(io.BytesIO(fileio.read_bytes(p)))
            rows = rf.predict(prep.x["features"]) if len(prep.x["features"]) else np.zeros(0)
            z = train.per_point(rows, prep, len(test), float(bag.get("fill", 0.0)))
            out.append(data.clay_from_target(z, stats))
        return np.stack(out), "re-predicted from saved forests"
    path = fileio.join(model_dir, "predictions", f"{spec.name}.npz")
    if not fileio.exists(path):
        return None, "no saved forests or predictions"
    saved = fileio.load_npz(path)
    if saved["point_id"].shape != test.point_id.shape or not np.array_equal(saved["point_id"].astype(str),
                                                                            test.point_id.astype(str)):
        return None, "train-time predictions are for another test split (train with --save-rf)"
    return saved["bags"].astype(np.float64), "train-time test predictions"


def raw_test_inputs(test, feature: str, n_channels: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw sequences padded to the longest (no thinning: the ensemble thins > 150 itself)."""
    from trainer import data

    seqs = test.sequences[feature]
    longest = max([len(s) for s in seqs] + [1])
    return data.pad_sequences(seqs, n_channels, max_dates=longest)


# ---------------------------------------------------------------- interpretability (Figs 10–11)

RECEPTIVE_DATES = 4   # a conv3 column sees 4 consecutive dates (two 1×2 poolings before it)


def top_patterns(conv: np.ndarray, lengths: np.ndarray, top_fraction: float = 0.05
                 ) -> list[dict]:
    """Per filter of the last conv layer: the training points it responds to most.

    conv: (N, H, W, F) ReLU outputs; a point's activation for a filter is its maximum over
    spectral positions and over date columns holding at least one valid date (padding never
    counts); the top ceil(top_fraction · N) points are kept, with the date column of the maximum.
    """
    n, h, w, f = conv.shape
    valid = RECEPTIVE_DATES * np.arange(w)[None, :] < np.asarray(lengths)[:, None]     # (N, W)
    per_col = np.where(valid[:, :, None], conv.max(axis=1), -np.inf)                   # (N, W, F)
    score = per_col.max(axis=1)                                                        # (N, F)
    column = per_col.argmax(axis=1)                                                    # (N, F)
    k = max(1, int(math.ceil(top_fraction * n)))
    out = []
    for j in range(f):
        order = np.argsort(-score[:, j], kind="stable")[:k]
        out.append({"filter": j, "points": order, "columns": column[order, j],
                    "activation": score[order, j], "max_activation": float(score[:, j].max()) if n else 0.0})
    return out


def pattern_table(patterns: list[dict], raw_seq: np.ndarray, lengths: np.ndarray, coords: np.ndarray,
                  clay: np.ndarray, channels: tuple[str, ...]) -> list[dict]:
    """Unnormalised inputs of each filter's top patterns (the dates under its maximum), sorted by mean clay."""
    rows = []
    for p in patterns:
        obs = []
        for i, c in zip(p["points"], p["columns"]):
            lo, hi = RECEPTIVE_DATES * int(c), min(RECEPTIVE_DATES * int(c) + RECEPTIVE_DATES, int(lengths[i]))
            obs.append(raw_seq[i, lo:hi])
        obs = np.concatenate(obs) if obs else np.zeros((0, len(channels)), np.float32)
        idx = p["points"]
        rows.append({"filter": p["filter"], "n_patterns": int(len(idx)), "dead": p["max_activation"] <= 0.0,
                     "mean_activation": float(np.mean(p["activation"])),
                     "clay": clay[idx], "lat": coords[idx, 0], "lon": coords[idx, 1], "dates": obs,
                     "mean_clay": float(np.mean(clay[idx]))})
    return sorted(rows, key=lambda r: (r["dead"], r["mean_clay"]))


def interpretability(model_dir: str, cal, stats, channels_key: str, top_fraction: float, out_dir: str,
                     log) -> dict | None:
    """Figures 10–11 for bag 0 of the main CNN, on the training points of that bag."""
    import keras
    from trainer import data, models, train

    manifest_bags = fileio.read_json(fileio.join(model_dir, "bags.json"))["bags"]
    ids0 = set(manifest_bags[0])
    train_idx = np.array([i for i, pid in enumerate(cal.point_id) if pid in ids0], np.int64)
    sub = cal.subset(train_idx)
    model = fileio.load_keras(train.keras_bag_path(model_dir, ModelSpec("cnn", "cnn", "sequence", channels_key,
                                                                         True, ""), 0))
    feature, names = data.CHANNEL_SETS[channels_key]
    seq, lengths = data.sequence_input(sub, stats, channels_key)
    x = {"sequence": seq}
    if "coords" in [t.name for t in model.inputs] or len(model.inputs) > 1:
        x["coords"] = data.coords_input(sub, stats)
    conv_model = keras.Model(model.inputs, model.get_layer(models.LAST_CONV).output)
    conv = np.concatenate([keras.ops.convert_to_numpy(conv_model({k: v[s:s + 1024] for k, v in x.items()}, training=False))
                           for s in range(0, len(sub), 1024)])
    raw, _ = data.pad_sequences(sub.sequences[feature], len(names))
    table = pattern_table(top_patterns(conv, lengths, top_fraction), raw, lengths, sub.coords, sub.clay, names)
    fig_path = fileio.join(out_dir, FIG_DIR, "interpretability.png")
    plot_interpretability(table, names, fig_path, top_fraction)
    summary = [{"filter": r["filter"], "n_patterns": r["n_patterns"], "dead": r["dead"],
                "mean_activation": r["mean_activation"], "mean_clay": r["mean_clay"],
                "median_clay": float(np.median(r["clay"])), "mean_lat": float(np.mean(r["lat"])),
                "mean_lon": float(np.mean(r["lon"])),
                "median_inputs": dict(zip(names, np.median(r["dates"], 0).tolist())) if len(r["dates"]) else {}}
               for r in table]
    result = {"bag": 0, "layer": models.LAST_CONV, "top_fraction": top_fraction, "n_training_points": len(sub),
              "figure": f"{FIG_DIR}/interpretability.png", "filters": summary}
    fileio.write_json(fileio.join(out_dir, "interpretability.json"), result)
    log(f"interpretability: {len(table)} filters of {models.LAST_CONV} → {fig_path}")
    return result


# ---------------------------------------------------------------- figures

def _save_fig(fig, path: str) -> None:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    fileio.write_bytes(path, buf.getvalue())


def _scatter(ax, obs, pred, std, title: str, m: dict, lim: tuple[float, float]) -> None:
    ax.errorbar(obs, pred, yerr=std, fmt="o", ms=3, alpha=0.5, elinewidth=0.5, color="tab:blue",
                ecolor="tab:gray")
    ax.plot(lim, lim, "k--", lw=1, label="1:1")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_aspect("equal")
    ax.set_xlabel("observed clay (%)")
    ax.set_ylabel("predicted clay (%)")
    ax.set_title(title, fontsize=9)
    ax.text(0.03, 0.97, f"R² = {m['r2']:.2f}\nRMSE = {m['rmse']:.2f}\nRPIQ = {m['rpiq']:.2f}\nn = {m['n']}",
            transform=ax.transAxes, va="top", fontsize=8)


def plot_scatters(results: dict, preds: dict, observed: np.ndarray, out_dir: str) -> list[str]:
    """One PNG per model and the Figure 9 grid; error bars are the bag standard deviation."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    allv = np.concatenate([observed] + [p[0] for p in preds.values()])
    lim = (float(min(0.0, allv.min()) ), float(math.ceil(allv.max() / 10.0) * 10.0))
    paths = []
    for name, (mean, std) in preds.items():
        fig, ax = plt.subplots(figsize=(4, 4))
        _scatter(ax, observed, mean, std, f"{name}\n{results[name]['description']}", results[name], lim)
        path = fileio.join(out_dir, FIG_DIR, f"scatter_{name}.png")
        _save_fig(fig, path)
        paths.append(path)
    n = len(preds)
    cols = min(3, n)
    rows = int(math.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
    for ax, (name, (mean, std)) in zip(axes.ravel(), preds.items()):
        _scatter(ax, observed, mean, std, f"{name}\n{results[name]['description']}", results[name], lim)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Observed vs predicted clay on the test set (cf. paper Figure 9)")
    fig.tight_layout()
    _save_fig(fig, fileio.join(out_dir, FIG_DIR, "scatter_all.png"))
    return paths


def plot_interpretability(table: list[dict], channels: tuple[str, ...], path: str, top_fraction: float) -> None:
    """Figures 10–11: per filter, box plots of the unnormalised inputs of its top patterns."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s2_idx = [i for i, c in enumerate(channels) if c in bands.S2_BANDS]
    s1_idx = [i for i, c in enumerate(channels) if c in bands.S1_BANDS]
    ncols = 4 if s1_idx else 3
    nrows = max(1, len(table))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.3 * nrows), squeeze=False,
                             gridspec_kw={"width_ratios": [3, 1, 1, 1][:ncols]})
    for r, row in enumerate(table):
        ax = axes[r, 0]
        d = row["dates"]
        if len(d):
            ax.boxplot([d[:, i] for i in s2_idx], tick_labels=[channels[i] for i in s2_idx], showfliers=False)
        state = " (inactive)" if row["dead"] else ""
        ax.set_ylabel(f"filter {row['filter']}{state}\nreflectance", fontsize=8)
        ax.tick_params(labelsize=7)
        c = 1
        if s1_idx:
            ax = axes[r, c]
            if len(d):
                ax.boxplot([d[:, i] for i in s1_idx], tick_labels=[channels[i] for i in s1_idx], showfliers=False)
            ax.set_ylabel("dB", fontsize=8)
            ax.tick_params(labelsize=7)
            c += 1
        ax = axes[r, c]
        ax.boxplot([row["lat"], row["lon"]], tick_labels=["lat", "lon"], showfliers=False)
        ax.set_ylabel("deg", fontsize=8)
        ax.tick_params(labelsize=7)
        ax = axes[r, c + 1]
        ax.boxplot([row["clay"]], tick_labels=["clay"], showfliers=False)
        ax.set_title(f"x̄ = {row['mean_clay']:.1f} %, n = {row['n_patterns']}", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"Top {top_fraction:.0%} most activating training patterns per filter of the last convolution, "
                 "filters ordered by mean clay (cf. paper Figures 10–11)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    _save_fig(fig, path)


# ---------------------------------------------------------------- report

def _fmt(v, nd: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float) and not math.isfinite(v):
        return "n/a"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


COMPARED = ("rf", "ann")   # the paper's claim: the CNN beats RF and ANN on the median composite


def comparisons(observed: np.ndarray, preds: dict) -> dict:
    """CNN against each median-composite baseline: ΔR² with a paired-bootstrap 95 % interval."""
    if "cnn" not in preds:
        return {}
    return {o: metrics.paired_bootstrap_r2(observed, preds["cnn"][0], preds[o][0])
            for o in COMPARED if o in preds and len(observed) > 1}


def comparison_lines(results: dict, compared: dict | None = None) -> list[str]:
    """Does the CNN beat RF and ANN on the median composite, and by how much (the paper's claim)?"""
    lines = []
    cnn = results.get("cnn")
    if not cnn:
        return lines
    for other in COMPARED:
        o = results.get(other)
        if not o:
            continue
        better = cnn["r2"] > o["r2"] and cnn["rmse"] < o["rmse"]
        rel = 100.0 * (o["rmse"] - cnn["rmse"]) / o["rmse"]
        boot = (compared or {}).get(other)
        ci, sure = "", True
        if boot:
            sure = boot["ci95_low"] > 0 or boot["ci95_high"] < 0
            ci = (f" (paired bootstrap 95 % interval [{boot['ci95_low']:+.3f}, {boot['ci95_high']:+.3f}]"
                  f"{'' if sure else ', includes 0'})")
        verdict = "the CNN is better" if better else "the CNN is NOT better"
        if not sure:
            verdict = f"{'the CNN scores higher' if better else 'the CNN scores lower'}, within this test set's noise"
        lines.append(f"- CNN vs {other.upper()} (median composite + coords): ΔR² = {cnn['r2'] - o['r2']:+.3f}{ci}, "
                     f"RMSE {rel:+.1f} % relative reduction, ΔRPIQ = {cnn['rpiq'] - o['rpiq']:+.2f} → "
                     f"{verdict} "
                     f"(paper: {'+0.05 R², 4.5 %' if other == 'rf' else '+0.16 R², 6.5 %'} RMSE reduction).")
    return lines


def report_markdown(report: dict) -> str:
    res = report["models"]
    lines = [
        "# S2MoS evaluation report", "",
        f"- data: `{report['data']}` (test split, n = {report['n_test']}); models: `{report['model_dir']}`",
        f"- bags per model: {report['bags']}; generated {report['generated']}", "",
        "## Test-set metrics", "",
        "R² = 1 − SSE/SST; RPIQ = (Q3 − Q1 of observed)/RMSE; CCC = Lin's concordance; "
        "bias = mean(predicted − observed). Paper columns: Tziolas et al. 2020 on the LUCAS test set.", "",
        "| model | description | n | R² | RMSE | RPIQ | CCC | bias | mean bag sd | paper R² | paper RPIQ |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in res.items():
        lines.append(f"| {name} | {m['description']} | {m['n']} | {_fmt(m['r2'])} | {_fmt(m['rmse'])} | "
                     f"{_fmt(m['rpiq'])} | {_fmt(m['ccc'])} | {_fmt(m['bias'])} | {_fmt(m['mean_bag_std'])} | "
                     f"{_fmt(m.get('paper_r2'))} | {_fmt(m.get('paper_rpiq'))} |")
    if report.get("not_scored"):
        lines += ["", "Not scored: " + "; ".join(f"{k} ({v})" for k, v in report["not_scored"].items())]
    comp = comparison_lines(res, report.get("comparisons"))
    if comp:
        lines += ["", "## CNN against the median-composite baselines", ""] + comp
    abl = [n for n in ("cnn", "cnn_nocoords", "cnn_nosar", "cnn_nosar_nocoords") if n in res]
    if len(abl) > 1:
        lines += ["", "## Ablations (paper Section 3.3, Appendix B)", "",
                  "| model | description | R² | RMSE | RPIQ |", "|---|---|---:|---:|---:|"]
        lines += [f"| {n} | {res[n]['description']} | {_fmt(res[n]['r2'])} | {_fmt(res[n]['rmse'])} | "
                  f"{_fmt(res[n]['rpiq'])} |" for n in abl]
    rf = {n: m["rf_params"] for n, m in res.items() if m.get("rf_params")}
    if rf:
        lines += ["", "RF hyper-parameters selected by CV on calibration: "
                  + "; ".join(f"{n}: mtry {p['mtry']}, min node {p['min_node_size']}, {p['trees']} trees"
                              for n, p in rf.items())]
    lines += ["", "## Observed vs predicted (Figure 9)", "", f"![all models]({FIG_DIR}/scatter_all.png)", ""]
    lines += [f"- [{n}]({FIG_DIR}/scatter_{n}.png)" for n in res]
    if report.get("interpretability"):
        it = report["interpretability"]
        lines += ["", "## Interpretability (Figures 10–11)", "",
                  f"Top {it['top_fraction']:.0%} most activating training patterns of each filter of `{it['layer']}` "
                  f"(bag {it['bag']}, {it['n_training_points']} training points); inputs unnormalised, the dates "
                  "under the filter's maximum; filters ordered by the mean clay of their patterns.", "",
                  f"![filters]({it['figure']})", "",
                  "| filter | patterns | mean clay | mean lat | mean lon |", "|---:|---:|---:|---:|---:|"]
        lines += [f"| {f['filter']}{' (inactive)' if f['dead'] else ''} | {f['n_patterns']} | {f['mean_clay']:.1f} | "
                  f"{f['mean_lat']:.2f} | {f['mean_lon']:.2f} |" for f in it["filters"]]
    chk = report.get("ensemble_check")
    if chk:
        lines += ["", "## Serving ensemble check", "",
                  f"The exported `ensemble/` SavedModel, fed raw test sequences, agrees with the mean of the "
                  f"bag models to {chk['max_abs_diff_mean']:.2e} % clay (std: {chk['max_abs_diff_std']:.2e})."]
    return "\n".join(lines) + "\n"


def print_table(report: dict, log) -> None:
    log(f"{'model':<20s} {'n':>5s} {'R2':>6s} {'RMSE':>6s} {'RPIQ':>6s} {'CCC':>6s} {'bias':>6s}  paper R2/RPIQ")
    for name, m in report["models"].items():
        paper = f"{m['paper_r2']:.2f}/{m['paper_rpiq']:.2f}" if m.get("paper_r2") is not None else "–"
        log(f"{name:<20s} {m['n']:>5d} {m['r2']:>6.3f} {m['rmse']:>6.2f} {m['rpiq']:>6.2f} {m['ccc']:>6.3f} "
            f"{m['bias']:>6.2f}  {paper}")


def evaluate(model_dir: str, data_dir: str, out_dir: str | None = None, top_fraction: float = 0.05,
             log=print) -> dict:
    """Score every model of the run on the test split of `data_dir`; write the report."""
    from s2mos_transforms.errors import UserError
    from s2mos_transforms.normalize import NormStats
    from trainer import data, ensemble

    t0 = time.perf_counter()
    out_dir = out_dir or fileio.join(model_dir, "evaluation")
    manifest_path = fileio.join(model_dir, "manifest.json")
    if not fileio.exists(manifest_path):
        raise UserError(f"{model_dir}: no manifest.json (run `s2mos train` first)")
    manifest = fileio.read_json(manifest_path)
    stats = NormStats.load(model_dir)
    test = data.read_split(data_dir, "test")
    observed = test.clay.astype(np.float64)
    results, preds, not_scored, ens_check = {}, {}, {}, None
    csv_cols = {"point_id": test.point_id.astype(str), "observed": observed}
    for rec in manifest["models"]:
        spec = spec_from_record(rec)
        if spec.keras:
            bag_preds, source = keras_predictions(spec, rec, model_dir, test, stats), "saved Keras bags"
        else:
            bag_preds, source = rf_predictions(spec, rec, model_dir, test, stats)
            if bag_preds is None:
                not_scored[spec.name] = source
                log(f"[{spec.name}] not scored: {source}")
                continue
        mean, std = bagging.combine(bag_preds)
        if spec.name == "cnn" and manifest.get("ensemble"):
            feature, names = data.CHANNEL_SETS[spec.channels]
            raw, lengths = raw_test_inputs(test, feature, len(names))
            loaded = ensemble.load(fileio.join(model_dir, manifest["ensemble"]))
            e_mean, e_std = loaded.predict(raw, lengths, test.coords)
            ens_check = {"max_abs_diff_mean": float(np.max(np.abs(e_mean - mean))) if len(mean) else 0.0,
                         "max_abs_diff_std": float(np.max(np.abs(e_std - std))) if len(std) else 0.0}
            mean, std, source = e_mean.astype(np.float64), e_std.astype(np.float64), "serving ensemble (raw inputs)"
        m = metrics.summary(observed, mean)
        paper = paper_result(spec)
        m.update(description=spec.description, family=spec.family, input=spec.input, channels=spec.channels,
                 use_coords=spec.use_coords, mean_bag_std=float(np.mean(std)) if len(std) else 0.0,
                 bag_r2=[metrics.r2(observed, b) for b in bag_preds], source=source,
                 paper_r2=paper[0] if paper else None, paper_rpiq=paper[1] if paper else None)
        if rec.get("rf_params"):
            m["rf_params"] = rec["rf_params"]
        results[spec.name] = m
        preds[spec.name] = (mean, std)
        csv_cols[f"{spec.name}_mean"] = mean
        csv_cols[f"{spec.name}_std"] = std
    if not results:
        raise UserError("no model could be scored")
    plot_scatters(results, preds, observed, out_dir)
    interp = None
    cnn_rec = next((r for r in manifest["models"] if r["name"] == "cnn"), None)
    if cnn_rec is not None:
        cal = data.read_split(data_dir, "calibration")
        interp = interpretability(model_dir, cal, stats, cnn_rec["channels"], top_fraction, out_dir, log)
    report = {"data": data_dir, "model_dir": model_dir, "n_test": len(test), "bags": manifest["bags"],
              "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "models": results, "comparisons": comparisons(observed, preds),
              "not_scored": not_scored, "ensemble_check": ens_check,
              "interpretability": interp, "seconds": round(time.perf_counter() - t0, 2)}
    fileio.write_json(fileio.join(out_dir, "report.json"), report)
    fileio.write_text(fileio.join(out_dir, "report.md"), report_markdown(report))
    header = ",".join(csv_cols)
    body = "\n".join(",".join(str(v) if isinstance(v, str) else f"{v:.4f}" for v in row)
                     for row in zip(*csv_cols.values()))
    fileio.write_text(fileio.join(out_dir, "predictions.csv"), header + "\n" + body + "\n")
    print_table(report, log)
    log(f"report: {fileio.join(out_dir, 'report.md')}")
    return report


# ---------------------------------------------------------------- CLI (s2mos evaluate)

def configure(parser) -> None:
    from trainer import cli
    cli.add_evaluate_flags(parser)


def run(args, extra) -> int:
    from trainer import train
    evaluate(args.model_dir, args.data, args.out, args.top_fraction, train.printer(args.verbose))
    return 0
