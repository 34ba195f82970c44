"""A small, realistic dataset in the exact on-disk layout of `s2mos build-dataset`.

Written with `schema.encode_example` and `NormStats` so the trainer's tests exercise the same
reader as production, without depending on the dataset pipeline. The physics is a cartoon of
the embedded world: clay lowers B12 relative to B11 (Al-OH absorption) and the albedo,
moisture darkens every band and raises VV/VH (so S1 carries information about the moisture
confound), and clay has a latitude trend (so coordinates help), enough for models to learn.
"""
from __future__ import annotations

import json
import os

import numpy as np

from s2mos_transforms import bands

from s2mos_transforms.dataset import schema
from s2mos_transforms.normalize import MinMax, NormStats

_DRY = np.array([0.08, 0.11, 0.15, 0.18, 0.21, 0.23, 0.25, 0.26, 0.36, 0.30], np.float64)
_T0 = 1483228800  # 2017-01-01T00:00:00Z


def make_point(rng: np.random.Generator, i: int, n_dates: int, with_radar: bool = True) -> dict:
    """One point's record; `n_dates` bare S2 dates, about 70 % of them paired with S1 (none when
    not `with_radar`: a point of S2-only data, or one whose bare dates found no S1 pair)."""
    lat = float(rng.uniform(36.0, 60.0))
    lon = float(rng.uniform(-9.0, 28.0))
    clay = float(np.clip(rng.gamma(3.5, 7.0) + 0.4 * (48.0 - lat), 1.0, 79.0))
    days = np.sort(rng.choice(3 * 365, size=n_dates, replace=False))
    dates = (_T0 + days.astype(np.int64) * 86400 + 37800).astype(np.int64)
    theta = rng.uniform(0.02, 0.40, n_dates)                          # surface moisture
    rough = rng.uniform(0.5, 1.5, n_dates)
    dry = _DRY * (1.25 - 0.006 * clay)                                 # albedo falls with clay
    dry = dry.copy()
    dry_dates = np.repeat(dry[None, :], n_dates, 0)
    dry_dates[:, 9] *= 1.0 - 0.004 * clay                             # Al-OH: B12 drops with clay
    wet = 0.45 * dry_dates
    refl = wet + (dry_dates - wet) * np.exp(-6.0 * theta)[:, None]
    refl *= (1.0 - 0.05 * (rough - 1.0))[:, None]
    refl += rng.normal(0.0, 0.004, refl.shape)
    refl = np.clip(refl, 0.005, 0.9).astype(np.float32)
    vv = -14.0 + 14.0 * theta + 0.05 * clay + 1.5 * (rough - 1.0) + rng.normal(0, 0.8, n_dates)
    vh = vv - 7.5 + rng.normal(0, 0.8, n_dates)
    paired = rng.random(n_dates) < (0.7 if with_radar else 0.0)
    if with_radar and not paired.any():
        paired[rng.integers(n_dates)] = True
    s2s1 = np.concatenate([refl, np.stack([vv, vh], 1).astype(np.float32)], 1)[paired]
    return {
        "point_id": f"P{i:05d}", "lat": lat, "lon": lon, "clay": clay,
        "s2s1_length": int(paired.sum()), "s2s1_dates": dates[paired], "s2s1": s2s1,
        "s2_length": n_dates, "s2_dates": dates, "s2": refl,
    }


def make_records(n: int, seed: int = 0, max_dates: int = 60, with_radar: bool = True,
                 unpaired_fraction: float = 0.0) -> list[dict]:
    """`unpaired_fraction` of the points (every k-th) have no S1-paired date at all."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.geometric(1.0 / 18.0, n), 2, max_dates)
    every = int(round(1.0 / unpaired_fraction)) if unpaired_fraction > 0 else 0
    return [make_point(rng, i, int(lengths[i]), with_radar and not (every and i % every == every - 1))
            for i in range(n)]


def fit_stats(calibration: list[dict]) -> NormStats:
    """Stats from calibration records only (as the dataset pipeline does)."""
    def seq(name: str, c: int) -> MinMax:
        rows = np.concatenate([np.asarray(r[name], np.float64).reshape(-1, c) for r in calibration])
        return MinMax.fit(rows) if rows.size else MinMax(np.zeros(c), np.zeros(c))
    return NormStats({
        "s2s1": seq("s2s1", len(bands.CHANNELS_S2S1)),
        "s2": seq("s2", len(bands.S2_BANDS)),
        "coords": MinMax.fit(np.array([[r["lat"], r["lon"]] for r in calibration])),
        "clay": MinMax.fit(np.array([[r["clay"]] for r in calibration])),
    })


def write_records(path: str, records: list[dict]) -> None:
    import tensorflow as tf
    with tf.io.TFRecordWriter(path, options=tf.io.TFRecordOptions(compression_type="GZIP")) as w:
        for r in records:
            w.write(schema.encode_example(r))


def write_dataset(out: str, n_calibration: int = 48, n_test: int = 16, seed: int = 0,
                  max_dates: int = 60, with_radar: bool = True, shards: int = 2,
                  test_records: list[dict] | None = None, thresholds: dict | None = None,
                  summary: bool = True, unpaired_fraction: float = 0.0) -> dict:
    """Write DIR/{calibration,test}-*.tfrecord.gz, schema.pbtxt, stats.json, summary.json.

    `test_records` replaces the generated test split (the honesty test perturbs it).
    `thresholds`: the extraction settings to record in summary.json, as `s2mos build-dataset`
    does (by default none are recorded, like a dataset from before they were); `summary=False`
    writes no summary.json at all.
    Returns {"calibration": records, "test": records}.
    """
    os.makedirs(out, exist_ok=True)
    records = make_records(n_calibration + n_test, seed, max_dates, with_radar, unpaired_fraction)
    cal, test = records[:n_calibration], records[n_calibration:]
    if test_records is not None:
        test = test_records
    for split, recs in (("calibration", cal), ("test", test)):
        for k in range(shards):
            write_records(os.path.join(out, f"{split}-{k:05d}-of-{shards:05d}.tfrecord.gz"), recs[k::shards])
    schema.write_schema(out)
    fit_stats(cal).save(out)
    if summary:
        doc = {"calibration": len(cal), "test": len(test), "fixture": True}
        if thresholds is not None:
            doc["thresholds"] = thresholds
        with open(os.path.join(out, "summary.json"), "w") as fh:
            json.dump(doc, fh)
    return {"calibration": cal, "test": test}


def kill_fits_in_epoch(monkeypatch, epoch: int) -> None:
    """Every Keras fit of the trainer raises KeyboardInterrupt (what Ctrl-C or a lost VM does) at
    the end of its `epoch`-th epoch (1-based), before that epoch's backup: the last backup is then
    epoch − 1. Undo with ``monkeypatch.undo()``."""
    import keras

    from trainer import fit_bags

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, index, logs=None):
            if index == epoch - 1:
                raise KeyboardInterrupt(f"killed in epoch {epoch}")

    real = fit_bags.bag_callbacks
    monkeypatch.setattr(fit_bags, "bag_callbacks", lambda *a: [*real(*a), Kill()])
