"""Test-set predictions of every trained model, for `s2mos evaluate`.

Keras models (CNNs, ANNs) are reloaded from the model directory and re-run on the test split
read now. RF bags are not kept by default (size), so their test predictions come from
predictions/<name>.npz written by `train`; they are used only when their point ids are
exactly the test split's (or re-predicted from models/<name>/bag_K.joblib when
`train --save-rf` kept them).
"""
from __future__ import annotations

import io

import numpy as np

from s2mos_transforms import fileio
from trainer.model_dir import keras_bag_path, predictions_path, rf_bag_path
from trainer.specs import ModelSpec


def spec_from_record(rec: dict) -> ModelSpec:
    return ModelSpec(rec["name"], rec["family"], rec["input"], rec["channels"], rec["use_coords"],
                     rec.get("description", rec["name"]))


def keras_predictions(spec: ModelSpec, rec: dict, model_dir: str, test, stats) -> np.ndarray:
    """(n_bags, N) % clay from the saved bag models, on the test split read now."""
    from trainer import data
    from trainer.fit import predict_keras
    from trainer.inputs import per_point, prepare

    prep = prepare(spec, test, stats)
    out = []
    for k, bag in enumerate(rec["bags"]):
        model = fileio.load_keras(keras_bag_path(model_dir, spec.name, k))
        rows = predict_keras(model, prep.x)
        fill = float(bag.get("fill", 0.0))
        z = per_point(np.asarray(rows, np.float64), prep, len(test), fill)
        out.append(data.clay_from_target(z, stats))
    return np.stack(out)


def rf_predictions(spec: ModelSpec, rec: dict, model_dir: str, test, stats) -> tuple[np.ndarray | None, str]:
    """RF bag predictions: re-predicted from saved forests, else the train-time predictions."""
    from trainer import data
    from trainer.inputs import per_point, prepare

    joblibs = [rf_bag_path(model_dir, spec.name, k) for k in range(len(rec["bags"]))]
    if all(fileio.exists(p) for p in joblibs):
        import joblib
        prep = prepare(spec, test, stats)
        out = []
        for p, bag in zip(joblibs, rec["bags"]):
            rf = joblib.load(io.BytesIO(fileio.read_bytes(p)))
            rows = rf.predict(prep.x["features"]) if len(prep.x["features"]) else np.zeros(0)
            z = per_point(rows, prep, len(test), float(bag.get("fill", 0.0)))
            out.append(data.clay_from_target(z, stats))
        return np.stack(out), "re-predicted from saved forests"
    path = predictions_path(model_dir, spec.name)
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
