"""Figures of `s2mos evaluate`: observed vs predicted scatters (paper Figure 9) and the
per-filter box plots of the interpretability figure (Figures 10–11)."""
from __future__ import annotations

import io
import math

import numpy as np

from s2mos_transforms import bands, fileio

FIG_DIR = "figures"


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
