"""`s2mos compare`'s outputs: compare.json, compare.md, runs.csv and compare.png."""
from __future__ import annotations

import io
import math

from s2mos_transforms import fileio

SCOPE_ORDER = ("overall", "ks", "random", "spatial")


def _f(v, nd: int = 3, sign: bool = False) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{v:+.{nd}f}" if sign else f"{v:.{nd}f}"


def _ms(d: dict, nd: int = 3) -> str:
    return "–" if not d or not d.get("n_runs") else f"{_f(d['mean'], nd)} ± {_f(d['sd'], nd)}"


def _interval(c: dict, nd: int = 3) -> str:
    return f"{_f(c['delta'], nd, True)} [{_f(c['low'], nd, True)}, {_f(c['high'], nd, True)}]"


def verdict_lines(result: dict) -> list[str]:
    """One line per model vs the reference (overall), as printed at the end of the run."""
    ref = result["reference"]
    lines = []
    for name, scopes in result["comparisons"].items():
        c = scopes.get("overall")
        if c:
            lines.append(f"{name} vs {ref}: ΔR² {_interval(c['r2'])}, ΔRMSE {_interval(c['rmse'], 2)} "
                         f"over {c['r2']['n_runs']} runs → {c['verdict']}")
    if result.get("comparisons_note"):
        lines.append(result["comparisons_note"])
    return lines


def runs_csv(result: dict) -> str:
    cols = ["partition", "scheme", "repeat", "seed", "model", "status", "r2", "rmse", "n", "r2_common",
            "rmse_common", "n_common", "seconds"]
    rows = [",".join(cols)]
    for r in result["runs"]:
        for name, m in r["models"].items():
            vals = [r["partition"], r["scheme"], r["repeat"], r["seed"], name, m["status"]]
            vals += [m.get(k) for k in cols[6:]]
            rows.append(",".join("" if v is None else (f"{v:.5f}" if isinstance(v, float) else str(v)) for v in vals))
    return "\n".join(rows) + "\n"


def _time_line(result: dict) -> str:
    """Training time of the finished models, summed over their sessions (this command's own wall
    time says little when it resumed or only reported); models whose time is unknown are counted."""
    secs = [m.get("seconds") for r in result["runs"] for m in r["models"].values() if m.get("status") == "ok"]
    known = [x for x in secs if x is not None]
    line = f"training time of the {len(secs)} finished model fits: {sum(known) / 3600:.1f} h"
    if len(known) < len(secs):
        line += f" ({len(secs) - len(known)} resumed fit(s) of unknown time left out)"
    return line + f"; this command: {result['seconds'] / 60:.1f} min"


def markdown(result: dict) -> str:
    s = result["settings"]
    ref = result["reference"]
    scopes = [x for x in SCOPE_ORDER if x == "overall" or x in s["schemes"]]
    planned = result.get("runs_planned", len(result["runs"]))
    lines = ["# Model comparison over seeds and splits (`s2mos compare`)", "",
             f"- data: `{s['data']}`; {len(s['partitions'])} partitions ({', '.join(s['partitions'])}) × "
             f"{s['seeds']} seeds = {planned} runs; "
             f"test fraction {s['test_fraction']:g}"
             + (f"; spatial blocks {s['block_km']:g} km" if "spatial" in s["schemes"] else ""),
             f"- training: {s['epochs']} epochs, {s['bags']} bags, batch {s['batch_size']}, "
             f"{'quick' if s['quick_grid'] else 'paper'} RF grid, {s['cv_folds']}-fold CV; reference: **{ref}**",
             f"- {_time_line(result)}", ""]
    if len(result["runs"]) < planned:
        lines[-1:-1] = [f"- **partial report** (`--report-only`): {len(result['runs'])} of the {planned} planned "
                        "runs finished; every table below covers those only"]
    if result["incomplete"]:
        lines += ["**Models without predictions in every run** (not compared):", ""]
        lines += [f"- {n}: {'; '.join(v[:3])}{' …' if len(v) > 3 else ''}" for n, v in result["incomplete"].items()]
        lines.append("")
    lines += ["## Verdicts vs the reference (all runs)", "",
              "Δ = model − reference on the common test points (ΔR² > 0, ΔRMSE < 0 favour the model); "
              "95 % interval of a nested paired bootstrap over partitions, seeds and test points. "
              "\"X beats Y\" only when the interval excludes 0.", "",
              "| model | scope | runs | common n | ΔR² [95 %] | ΔRMSE % clay [95 %] | verdict (R²) | verdict (RMSE) |",
              "|---|---|---:|---|---|---|---|---|"]
    for name, by_scope in result["comparisons"].items():
        for scope in scopes:
            c = by_scope.get(scope)
            if not c:
                continue
            n = c["n_common"]
            common = f"{min(n)}–{max(n)}" if min(n) != max(n) else str(n[0])
            lines.append(f"| {name} | {scope} | {c['r2']['n_runs']} | {common} | {_interval(c['r2'])} | "
                         f"{_interval(c['rmse'], 2)} | {c['verdict']} | {c['verdict_rmse']} |")
    if result.get("comparisons_note"):
        lines += ["", result["comparisons_note"]]
    lines += ["", "## R² over runs (mean ± sd)", "",
              "Own: each model on the test points it can use (the paper's CNN only on points with S1-paired "
              "dates); common: the points every compared model could use.", "",
              "| model | " + " | ".join(f"{x} own | {x} common" for x in scopes) + " |",
              "|---|" + "---:|---:|" * len(scopes)]
    for name, entry in result["summary"].items():
        cells = [f"{_ms(entry.get(x, {}).get('r2'))} | {_ms(entry.get(x, {}).get('r2_common'))}" for x in scopes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## RMSE (% clay) on the common test points over runs (mean ± sd)", "",
              "| model | " + " | ".join(scopes) + " |", "|---|" + "---:|" * len(scopes)]
    for name, entry in result["summary"].items():
        lines.append(f"| {name} | " + " | ".join(_ms(entry.get(x, {}).get("rmse_common"), 2) for x in scopes) + " |")
    lines += ["", "## Runs", "", "| partition | seed | cal | test | common | "
              + " | ".join(f"{n} R² (own n)" for n in result["models"]) + " |",
              "|---|---:|---:|---:|---:|" + "---|" * len(result["models"])]
    for r in result["runs"]:
        cells = []
        for n in result["models"]:
            m = r["models"][n]
            cells.append(f"{_f(m.get('r2'))} ({m.get('n')})" if m["status"] == "ok" else m["status"])
        lines.append(f"| {r['partition']} | {r['seed']} | {r['n_calibration']} | {r['n_test']} | "
                     f"{r.get('n_common', '–')} | " + " | ".join(cells) + " |")
    lines += ["", "## Method", "", result["method"] + ". See docs/compare.md.", ""]
    return "\n".join(lines)


def figure(result: dict) -> bytes:
    """Left: common-subset R² per model and scheme, one dot per run, a bar at the mean. Right: the
    forest plot of ΔR² vs the reference (overall and per scheme)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = result["models"]
    schemes = [x for x in SCOPE_ORDER[1:] if x in result["settings"]["schemes"]]
    colours = dict(zip(SCOPE_ORDER[1:], ("tab:blue", "tab:orange", "tab:green")))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.5 * max(len(names), 4) + 2.5))
    width = 0.8 / max(len(schemes), 1)
    for j, scheme in enumerate(schemes):
        for i, name in enumerate(names):
            vals = [r["models"][name].get("r2_common", r["models"][name].get("r2")) for r in result["runs"]
                    if r["scheme"] == scheme and r["models"][name]["status"] == "ok"]
            vals = [v for v in vals if v is not None and np.isfinite(v)]
            x = i - 0.4 + width * (j + 0.5)
            if vals:
                ax1.scatter(np.full(len(vals), x), vals, s=14, color=colours[scheme], alpha=0.8,
                            label=scheme if i == 0 else None, zorder=3)
                ax1.hlines(np.mean(vals), x - width / 2.5, x + width / 2.5, color="k", lw=1.5, zorder=4)
    ax1.set_xticks(range(len(names)))
    ax1.set_xticklabels(names, rotation=30, ha="right")
    ax1.set_ylabel("R² on the common test points")
    ax1.set_title("R² per run (dots) and mean (bar), by split scheme")
    ax1.grid(axis="y", alpha=0.3)
    if schemes:
        ax1.legend(fontsize=8)
    rows = [(n, scope) for n in result["comparisons"] for scope in ("overall",) + tuple(schemes)
            if scope in result["comparisons"][n]]
    for k, (name, scope) in enumerate(rows):
        c = result["comparisons"][name][scope]["r2"]
        y = len(rows) - 1 - k
        colour = "k" if scope == "overall" else colours[scope]
        ax2.errorbar(c["delta"], y, xerr=[[c["delta"] - c["low"]], [c["high"] - c["delta"]]], fmt="o",
                     color=colour, capsize=3, ms=6 if scope == "overall" else 4)
    ax2.axvline(0.0, color="grey", lw=1, ls="--")
    ax2.set_yticks(range(len(rows)))
    ax2.set_yticklabels([f"{n} ({s})" for n, s in reversed(rows)], fontsize=8)
    ax2.set_xlabel(f"ΔR² vs {result['reference']} (95 % nested bootstrap)")
    ax2.set_title(f"Model − {result['reference']}: right of 0 favours the model")
    if not rows:
        ax2.text(0.5, 0.5, result.get("comparisons_note") or "no comparisons", ha="center", transform=ax2.transAxes)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def finite(obj):
    """NaN/inf → None, so compare.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite(v) for v in obj]
    return obj


def write_outputs(out: str, result: dict) -> None:
    fileio.write_json(fileio.join(out, "compare.json"), finite(result))
    fileio.write_text(fileio.join(out, "compare.md"), markdown(result))
    fileio.write_text(fileio.join(out, "runs.csv"), runs_csv(result))
    fileio.write_bytes(fileio.join(out, "compare.png"), figure(result))
