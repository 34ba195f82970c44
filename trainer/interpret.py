"""Interpretability (paper Figures 10–11): the training patterns each filter of the main CNN's
last convolution responds to most, with their unnormalised inputs, for `s2mos evaluate`."""
from __future__ import annotations

import math

import numpy as np

from s2mos_transforms import fileio
from trainer.figures import FIG_DIR, plot_interpretability
from trainer.model_dir import MAIN_MODEL, keras_bag_path

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
    from trainer import data, models

    manifest_bags = fileio.read_json(fileio.join(model_dir, "bags.json"))["bags"]
    ids0 = set(manifest_bags[0])
    train_idx = np.array([i for i, pid in enumerate(cal.point_id) if pid in ids0], np.int64)
    sub = cal.subset(train_idx)
    model = fileio.load_keras(keras_bag_path(model_dir, MAIN_MODEL, 0))
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
