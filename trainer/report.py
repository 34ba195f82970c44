"""The evaluation report: the paper-style Markdown, the printed table, and the CNN-vs-baselines
comparison (paired bootstrap) that answers the paper's claim."""
from __future__ import annotations

import math

import numpy as np

from s2mos_transforms import metrics
from trainer.figures import FIG_DIR


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


def extraction_lines(report: dict) -> list[str]:
    """The training dataset's extraction settings (what the map will apply), when the run recorded them."""
    settings = report.get("extraction")
    if not settings:
        return []
    values = ", ".join(f"{k} {v}" for k, v in settings.items())
    return [f"- extraction settings ({report.get('extraction_source') or 'unknown source'}): {values}"]


def interval_lines(report: dict) -> list[str]:
    """PICP and mean width of every model's 90 % interval on the test split; the AOA split."""
    rows = [(n, m["interval"], "conformal") for n, m in report["models"].items() if m.get("interval")]
    rows += [(n, m["native_interval"], "native quantiles") for n, m in report["models"].items()
             if m.get("native_interval")]
    lines = []
    if rows:
        lines += ["", "## 90 % prediction intervals (test split)", "",
                  "Conformal: split-conformal on out-of-bag calibration residuals, scaled by the bag spread "
                  "(`trainer.intervals`); native quantiles: the quantile forest's own 5 % and 95 % conditional "
                  "quantiles. PICP = share of test points inside their interval (target 0.90).", "",
                  "| model | interval | PICP | mean width (% clay) | n |", "|---|---|---:|---:|---:|"]
        lines += [f"| {n} | {kind} | {_fmt(iv['picp'])} | {_fmt(iv['mean_width'])} | {iv['n']} |"
                  for n, iv, kind in rows]
    a = report.get("aoa")
    if a:
        lines += ["", f"## Area of applicability (serving ensemble `{report.get('served') or 'cnn'}`, test split)", "",
                  f"Threshold DI {a['threshold']:.3f}: {a['n_inside']} test points inside, {a['n_outside']} outside; "
                  f"MAE inside {_fmt(a['mae_inside'])}, outside {_fmt(a['mae_outside'])} % clay"
                  + (f" (ratio {a['ratio']:.2f})." if a.get("ratio") else ".")]
    return lines


def report_markdown(report: dict) -> str:
    res = report["models"]
    lines = [
        "# S2MoS evaluation report", "",
        f"- data: `{report['data']}` (test split, n = {report['n_test']}); models: `{report['model_dir']}`",
        f"- bags per model: {report['bags']}; generated {report['generated']}",
        *extraction_lines(report),
        "",
        "## Test-set metrics", "",
        "R² = 1 − SSE/SST; RPIQ = (Q3 − Q1 of observed)/RMSE; CCC = Lin's concordance; "
        "bias = mean(predicted − observed). Paper columns: Tziolas et al. 2020 on the LUCAS test set.", "",
        "Each model is scored on the test points it can use: the models of S1-paired dates (the paper's CNN, "
        "Appendix A) on the points with at least one paired date, the others on every point (column `points`).", "",
        "| model | description | points | n | R² | RMSE | RPIQ | CCC | bias | mean bag sd | paper R² | paper RPIQ |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in res.items():
        lines.append(f"| {name} | {m['description']} | {m.get('points', 'all')} | {m['n']} | {_fmt(m['r2'])} | "
                     f"{_fmt(m['rmse'])} | "
                     f"{_fmt(m['rpiq'])} | {_fmt(m['ccc'])} | {_fmt(m['bias'])} | {_fmt(m['mean_bag_std'])} | "
                     f"{_fmt(m.get('paper_r2'))} | {_fmt(m.get('paper_rpiq'))} |")
    if report.get("not_scored"):
        lines += ["", "Not scored: " + "; ".join(f"{k} ({v})" for k, v in report["not_scored"].items())]
    common = [(n, m["common"]) for n, m in res.items() if m.get("common")]
    if common:
        lines += ["", f"## Like for like: every model on the common test points (n = {report.get('n_common')})", "",
                  "The points every scored model could use; the comparisons below use these.", "",
                  "| model | R² | RMSE | RPIQ | bias |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {n} | {_fmt(c['r2'])} | {_fmt(c['rmse'])} | {_fmt(c['rpiq'])} | {_fmt(c['bias'])} |"
                  for n, c in common]
    comp = comparison_lines(res, report.get("comparisons"))
    if comp:
        lines += ["", "## CNN against the median-composite baselines", ""] + comp
    lines += interval_lines(report)
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
                  f"The exported `ensemble/` SavedModel (`{chk.get('model', 'cnn')}`), fed raw test sequences, "
                  f"agrees with the mean of the "
                  f"bag models to {chk['max_abs_diff_mean']:.2e} % clay (std: {chk['max_abs_diff_std']:.2e})."]
    return "\n".join(lines) + "\n"


def print_table(report: dict, log) -> None:
    if report.get("n_common") is not None and report["n_common"] < report["n_test"]:
        log(f"(each model on the test points it can use; {report['n_common']} of {report['n_test']} are common to all)")
    log(f"{'model':<20s} {'n':>5s} {'R2':>6s} {'RMSE':>6s} {'RPIQ':>6s} {'CCC':>6s} {'bias':>6s} "
        f"{'PICP90':>6s} {'width':>6s}  paper R2/RPIQ")
    for name, m in report["models"].items():
        paper = f"{m['paper_r2']:.2f}/{m['paper_rpiq']:.2f}" if m.get("paper_r2") is not None else "–"
        iv = m.get("interval") or {}
        picp = f"{iv['picp']:>6.3f}" if iv.get("picp") is not None else f"{'–':>6s}"
        width = f"{iv['mean_width']:>6.1f}" if iv.get("mean_width") is not None else f"{'–':>6s}"
        log(f"{name:<20s} {m['n']:>5d} {m['r2']:>6.3f} {m['rmse']:>6.2f} {m['rpiq']:>6.2f} {m['ccc']:>6.3f} "
            f"{m['bias']:>6.2f} {picp} {width}  {paper}")
    a = report.get("aoa")
    if a:
        log(f"AOA ({report.get('served') or 'cnn'}, test): {a['n_inside']} inside / {a['n_outside']} outside (DI ≤ {a['threshold']:.3f}); "
            f"MAE inside {_fmt(a['mae_inside'])}, outside {_fmt(a['mae_outside'])} % clay")
