"""Which models a run trains: the paper's CNN, its ablations, and the RF/ANN baselines.

Names are stable keys of report.json. ``cnn`` is the main model, configured by --channels and
--no-coords, and the one exported as the serving ensemble; the ablations have fixed
configurations (and are skipped when they coincide with the main model).
"""
from __future__ import annotations

import dataclasses

from s2mos_transforms.errors import UserError


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str            # "cnn" | "ann" | "rf" | "qrf" | "series"
    input: str             # "sequence" | "composite" | "per_date" | "strong" | "series"
    channels: str          # "s2s1" | "s2" (sequence / per_date); "s2" for composite/strong; "series"
    use_coords: bool
    description: str

    @property
    def config_key(self) -> tuple:
        return (self.family, self.input, self.channels, self.use_coords)

    @property
    def keras(self) -> bool:
        return self.family in ("cnn", "ann", "series")

    @property
    def needs_s1_pairs(self) -> bool:
        """Models that read only the S1-paired dates (the paper's CNN, Appendix A): they train and
        are scored on the points that have at least one paired date; every other model uses every point."""
        return self.channels == "s2s1" and self.input in ("sequence", "per_date")


# Paper results on the LUCAS test set (Section 3.3): (R², RPIQ), keyed by configuration.
PAPER_RESULTS: dict[tuple, tuple[float, float]] = {
    ("cnn", "sequence", "s2s1", True): (0.60, 2.02),
    ("cnn", "sequence", "s2s1", False): (0.53, 1.87),
    ("rf", "composite", "s2", True): (0.55, 1.91),
    ("rf", "composite", "s2", False): (0.38, 1.63),
    ("ann", "composite", "s2", True): (0.44, 1.71),
    ("ann", "composite", "s2", False): (0.41, 1.68),
}

GROUPS: dict[str, tuple[str, ...]] = {
    "ablations": ("cnn_nocoords", "cnn_nosar", "cnn_nosar_nocoords"),
    "baselines": ("rf", "rf_nocoords", "ann", "ann_nocoords"),
    "appendix": ("rf_ts", "ann_ts"),
    "beyond": ("series", "rf_strong", "qrf_strong"),
}
PAPER_MODELS: tuple[str, ...] = ("cnn",) + GROUPS["ablations"] + GROUPS["baselines"] + GROUPS["appendix"]
ALL_MODELS: tuple[str, ...] = PAPER_MODELS + GROUPS["beyond"]
GROUPS["all"] = ALL_MODELS
GROUPS["paper"] = PAPER_MODELS


def _cnn_desc(channels: str, use_coords: bool) -> str:
    sar = "S2+S1 time series" if channels == "s2s1" else "S2 time series (no SAR)"
    return f"CNN, {sar}" + (" + coords" if use_coords else ", no coords")


def all_specs(channels: str = "s2s1", use_coords: bool = True) -> dict[str, ModelSpec]:
    specs = [
        ModelSpec("cnn", "cnn", "sequence", channels, use_coords, _cnn_desc(channels, use_coords)),
        ModelSpec("cnn_nocoords", "cnn", "sequence", "s2s1", False, _cnn_desc("s2s1", False)),
        ModelSpec("cnn_nosar", "cnn", "sequence", "s2", True, _cnn_desc("s2", True)),
        ModelSpec("cnn_nosar_nocoords", "cnn", "sequence", "s2", False, _cnn_desc("s2", False)),
        ModelSpec("rf", "rf", "composite", "s2", True, "RF, median S2 composite + coords"),
        ModelSpec("rf_nocoords", "rf", "composite", "s2", False, "RF, median S2 composite"),
        ModelSpec("ann", "ann", "composite", "s2", True, "ANN, median S2 composite + coords"),
        ModelSpec("ann_nocoords", "ann", "composite", "s2", False, "ANN, median S2 composite"),
        ModelSpec("rf_ts", "rf", "per_date", "s2s1", True, "RF, every S2+S1 date + coords (App. A)"),
        ModelSpec("ann_ts", "ann", "per_date", "s2s1", True, "ANN, every S2+S1 date + coords (App. A)"),
        ModelSpec("series", "series", "series", "series", True,
                  "whole-series model: every bare S2 date, S1 where paired, day of year, gaps, indices + coords"),
        ModelSpec("rf_strong", "rf", "strong", "s2", True,
                  "RF, temporal composites (band quantiles, index composites, bare-date count, S1 stats) + coords"),
        ModelSpec("qrf_strong", "qrf", "strong", "s2", True,
                  "quantile RF, temporal composites + coords (median prediction, native 5-95 % quantiles)"),
    ]
    return {s.name: s for s in specs}


def select(models: str, channels: str = "s2s1", use_coords: bool = True, log=print) -> list[ModelSpec]:
    """Parse --models (names and groups: all, ablations, baselines, appendix), dedupe configs."""
    specs = all_specs(channels, use_coords)
    wanted: list[str] = []
    for token in [t.strip() for t in models.split(",") if t.strip()]:
        names = GROUPS.get(token, (token,))
        for name in names:
            if name not in specs:
                raise UserError(f"--models: unknown model '{name}' (choose from {', '.join(ALL_MODELS)} "
                                f"or groups {', '.join(sorted(GROUPS))})")
            if name not in wanted:
                wanted.append(name)
    if not wanted:
        raise UserError("--models: nothing to train")
    out, seen = [], {}
    for name in sorted(wanted, key=ALL_MODELS.index):
        spec = specs[name]
        if spec.config_key in seen:
            log(f"{name}: same configuration as {seen[spec.config_key]}, not trained twice")
            continue
        seen[spec.config_key] = name
        out.append(spec)
    return out


def paper_result(spec: ModelSpec) -> tuple[float, float] | None:
    return PAPER_RESULTS.get(spec.config_key)
