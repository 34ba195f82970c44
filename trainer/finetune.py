"""`s2mos recalibrate --fine-tune`: the bags' dense head refitted with the local samples
spiked into the calibration set (Guerrero et al. 2016, "spiking"). For the paper's CNN and the
whole-series model (the two families predict-map serves).

Why spiking and not the local samples alone: 5–20 samples would overfit even a dense head;
mixed into the calibration split they pull the model towards the site while the rest keeps
it general. The local samples are repeated so that they make `SPIKE_SHARE` (10 %) of the
spiked set (Guerrero et al. weight the spiking subset up the same way). Only the dense head is
trained — the layers after the CNN's `Flatten` or the whole-series model's `MaskedPool` — with
Adam at a small learning rate for a few epochs; the convolutions, which learnt the spectral and
temporal features from thousands of points, stay frozen. Every bag is refitted this way, the
serving ensemble is re-exported from them (so the SavedModel and the bags agree), and the trust
layer of the model is kept (its intervals and AOA describe the calibration data, which the head
was refitted on too).
"""
from __future__ import annotations

import numpy as np

SPIKE_SHARE = 0.10
LEARNING_RATE = 1e-4


def spiked(cal, local, feature: str):
    """The calibration split with the local samples repeated to make SPIKE_SHARE of it."""
    from trainer import data

    reps = max(1, int(round(SPIKE_SHARE * len(cal) / ((1 - SPIKE_SHARE) * max(len(local), 1)))))
    idx = np.tile(np.arange(len(local)), reps)
    return data.Split(np.concatenate([cal.point_id, local.point_id[idx]]),
                      np.concatenate([cal.coords, local.coords[idx]]).astype(np.float32),
                      np.concatenate([cal.clay, local.clay[idx]]).astype(np.float32),
                      {feature: list(cal.sequences[feature]) + [local.sequences[feature][i] for i in idx]}), reps


def head_only(model) -> list[str]:
    """Freeze the temporal part — every layer up to and including the one that ends it (the CNN's
    Flatten, the whole-series model's MaskedPool) — and train the rest: the dense head and the
    coordinates branch (``aux_*``, `models.coords_and_head`), which Keras may list before the
    Flatten (layers are listed by depth). Returns the trainable layers' names."""
    import keras
    from trainer.series import MaskedPool
    after, names = False, []
    for layer in model.layers:
        layer.trainable = (after or layer.name.startswith("aux_")) and bool(layer.weights)
        if layer.trainable:
            names.append(layer.name)
        if isinstance(layer, (keras.layers.Flatten, MaskedPool)):
            after = True
    if not names:
        raise ValueError("bag model has no dense head after a Flatten or MaskedPool layer")
    return names


def spiked_series_inputs(cal, local, stats, use_coords: bool) -> tuple[dict, object, int]:
    """The whole-series model's inputs of the calibration split with the local samples (series rows
    in ``local.sequences['series']``) repeated to make SPIKE_SHARE of it, the spiked split (for its
    clay) and the repeats."""
    from trainer import data, series

    reps = max(1, int(round(SPIKE_SHARE * len(cal) / ((1 - SPIKE_SHARE) * max(len(local), 1)))))
    idx = np.tile(np.arange(len(local)), reps)
    rows = series.raw_sequences(cal) + [local.sequences["series"][i] for i in idx]
    coords = np.concatenate([cal.coords, local.coords[idx]]).astype(np.float32)
    mix = data.Split(np.concatenate([cal.point_id, local.point_id[idx]]), coords,
                     np.concatenate([cal.clay, local.clay[idx]]).astype(np.float32), {"series": rows})
    return series.rows_inputs(rows, coords, stats, use_coords), mix, reps


def fine_tune(root: str, data_dir: str, local, epochs: int = 10, seed: int = 0, log=print) -> dict:
    """Refit the head of every bag of model directory `root` (a copy: changed in place) and
    re-export its ensemble; returns the record for s2mos_model.json."""
    import keras
    from s2mos_transforms import fileio
    from s2mos_transforms.normalize import STATS_FILE, NormStats
    from trainer import data, ensemble, model_dir
    from trainer.inputs import prepare
    from trainer.specs import ModelSpec

    meta = model_dir.read_meta(root)
    raw = fileio.read_json(f"{model_dir.ensemble_dir(root)}/{model_dir.MODEL_META}")
    feature = meta.sequence_feature or "s2s1"
    family = raw.get("family", "cnn")
    cal = data.read_split(data_dir, "calibration")
    stats = meta.stats
    if family == "series":
        # the ensemble records only the series group; its inputs and its re-export need the
        # training stats of the S2 and S2+S1 groups, which the model directory keeps
        stats = NormStats.from_json(fileio.read_text(f"{root.rstrip('/')}/{STATS_FILE}"))
        x, mix, reps = spiked_series_inputs(cal, local, stats, meta.use_coords)
    else:
        mix, reps = spiked(cal, local, feature)
        spec = ModelSpec("cnn", "cnn", "sequence", feature, meta.use_coords, "fine-tuned CNN")
        x = prepare(spec, mix, meta.stats).x
    y = data.target(mix, stats)
    members, trained = [], []
    for k, path in enumerate(model_dir.bag_paths(root, meta)):
        keras.utils.set_random_seed(seed * 1000 + k)
        model = fileio.load_keras(path)
        trained = head_only(model)
        model.compile(optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="mse")
        model.fit(data.make_tf_dataset(x, y, 32, shuffle=True, seed=seed + k), epochs=epochs, verbose=0)
        fileio.save_keras(model, path)
        members.append(model)
        log(f"[fine-tune] bag {k + 1}/{meta.bags}: head refitted ({epochs} epochs, local samples ×{reps})")
    ensemble.export(model_dir.ensemble_dir(root), members, stats, meta.channels, feature, meta.use_coords,
                    meta.max_dates, extraction=meta.extraction, extraction_source=raw.get("extraction_source"),
                    family=family, bag_models=raw.get("bag_models"))
    keep = {k: raw[k] for k in ("intervals", "aoa", "calibration_clay_mean") if k in raw}
    model_dir.update_meta(root, **keep)
    return {"kind": "fine-tune", "a": 0.0, "b": 1.0, "n": int(len(local)), "epochs": int(epochs),
            "spike_repeats": int(reps), "spike_share": SPIKE_SHARE, "learning_rate": LEARNING_RATE,
            "trained_layers": trained, "calibration_points": int(len(cal)), "data": data_dir}
