"""Figures for people looking at a dataset build (matplotlib, Agg backend, PNG bytes).

* `bare_histogram_png`: bare observations per point (before the 150-date cap) and
  S1-paired ones — how much signal each sample has (points kept without an S1 pair are
  the bar at 0 paired dates; the legend counts them).
* `correlogram_png`: the paper's Figure 3, Pearson correlation between clay, the S2 bands,
  VV, VH, lat and lon over every paired bare observation (a point's clay/lat/lon repeated
  on each of its dates), computed from summed moments so it scales to any number of points.
"""
from __future__ import annotations

import io
from typing import Sequence

import numpy as np

HISTOGRAM_FILE = "bare_observations_per_point.png"
CORRELOGRAM_FILE = "correlogram.png"


def correlation_from_moments(n: int, total: Sequence[float], sumsq: Sequence[Sequence[float]]) -> np.ndarray:
    """Pearson correlation matrix from n, Σx and Σxxᵀ (NaN for constant variables)."""
    total = np.asarray(total, np.float64)
    sumsq = np.asarray(sumsq, np.float64)
    k = total.size
    if n < 2:
        return np.full((k, k), np.nan)
    mean = total / n
    cov = sumsq / n - np.outer(mean, mean)
    sd = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    corr[~np.isfinite(corr)] = np.nan
    return np.clip(corr, -1.0, 1.0)


def _figure_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def bare_histogram_png(n_bare: Sequence[int], n_paired: Sequence[int], max_dates: int) -> bytes:
    """Histogram of bare (and S1-paired bare) observations per written point."""
    plt = _pyplot()
    n_bare = np.asarray(n_bare, np.int64)
    n_paired = np.asarray(n_paired, np.int64)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    top = int(max(n_bare.max(initial=1), max_dates)) + 1
    step = max(1, int(np.ceil(top / 60)))
    bins = np.arange(0, top + step, step) - 0.5              # whole numbers of dates per bin
    ax.hist(n_bare, bins=bins, alpha=0.65, label=f"bare S2 (median {np.median(n_bare) if n_bare.size else 0:g})")
    unpaired = int(np.count_nonzero(n_paired == 0))
    ax.hist(n_paired, bins=bins, alpha=0.65,
            label=f"bare S2 paired with S1 (median {np.median(n_paired) if n_paired.size else 0:g}; "
                  f"{unpaired} point{'s' if unpaired != 1 else ''} with none)")
    ax.axvline(max_dates, color="k", lw=1, ls="--", label=f"sequence cap ({max_dates})")
    ax.set_xlabel("observations per point")
    ax.set_ylabel("points")
    ax.set_title(f"Bare-soil observations per sample point (n = {n_bare.size})")
    ax.legend(fontsize=8, loc="upper right")       # loc="best" warns when slow (a loaded machine)
    fig.tight_layout()
    return _figure_bytes(fig)


def correlogram_png(corr: np.ndarray, names: Sequence[str], n_obs: int) -> bytes:
    """The correlation matrix as a coloured, annotated lower triangle (paper Figure 3)."""
    plt = _pyplot()
    corr = np.asarray(corr, np.float64)
    k = len(names)
    shown = np.where(np.tril(np.ones((k, k), bool)), corr, np.nan)
    fig, ax = plt.subplots(figsize=(8.0, 7.0))
    im = ax.imshow(shown, cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(k):
        for j in range(i + 1):
            if np.isfinite(shown[i, j]):
                ax.text(j, i, f"{shown[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if abs(shown[i, j]) > 0.6 else "black")
    ax.set_xticks(range(k), names, rotation=90, fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_title(f"Pearson correlation over {n_obs} paired bare observations")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    return _figure_bytes(fig)
