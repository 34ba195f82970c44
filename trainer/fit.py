"""Fitting Keras bags: one alone (`fit_keras`) or K side by side in one stacked model
(`fit_keras_parallel`, `--parallel-bags`), with the same seeds and so the same updates."""
from __future__ import annotations

import numpy as np

from s2mos_transforms import bands
from trainer import bagging
from trainer.callbacks import bag_logs, per_bag_callbacks
from trainer.config import TrainConfig
from trainer.specs import ModelSpec


def build_keras(spec: ModelSpec, n_in: int):
    from trainer import models
    if spec.family == "cnn":
        return models.build_cnn(n_in, bands.MAX_DATES, spec.use_coords, name=spec.name)
    if spec.family == "series":
        from trainer import series
        return series.build_series(n_in, spec.use_coords, name=spec.name)
    return models.build_ann(n_in, name=spec.name)


def seeded_bag(spec: ModelSpec, x_tr: dict, y_tr: np.ndarray, x_val: dict | None, y_val: np.ndarray | None,
               cfg: TrainConfig, seed: int, batch_size: int):
    """One bag's compiled model and (train, out-of-bag or None) datasets, built right after
    `set_random_seed(seed)`: the weights, dropout seeds and shuffling of bag `seed`, whether it
    is then fitted alone (`fit_keras`) or beside the others (`fit_keras_parallel`)."""
    import keras
    from trainer import data, models

    keras.utils.set_random_seed(seed)
    key = {"cnn": "sequence", "series": "series"}.get(spec.family, "features")
    n_in = x_tr[key].shape[-1]
    model = models.compile_model(build_keras(spec, n_in), cfg.jit_compile, cfg.steps_per_execution)
    train_ds = data.make_tf_dataset(x_tr, y_tr, batch_size, shuffle=True, seed=seed)
    val_ds = (data.make_tf_dataset(x_val, y_val, 512) if x_val is not None and len(y_val) else None)
    if spec.family == "series":      # each batch only as long as its longest series (`series.trim_batch`)
        from trainer import series
        train_ds = train_ds.map(series.trim_batch)
        val_ds = val_ds.map(series.trim_batch) if val_ds is not None else None
    return model, train_ds, val_ds


def fit_keras(spec: ModelSpec, x_tr: dict, y_tr: np.ndarray, x_val: dict | None, y_val: np.ndarray | None,
              cfg: TrainConfig, seed: int, batch_size: int, callbacks: list):
    """Build (seeded), compile and fit one bag; returns (model, history dict)."""
    model, train_ds, val_ds = seeded_bag(spec, x_tr, y_tr, x_val, y_val, cfg, seed, batch_size)
    hist = model.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, verbose=0, callbacks=callbacks,
                     shuffle=False)   # the tf.data pipeline reshuffles each epoch, seeded
    return model, {k: [float(v) for v in vals] for k, vals in hist.history.items()}


def predict_keras(model, x: dict[str, np.ndarray], batch_size: int = 1024) -> np.ndarray:
    """Inference-mode outputs (normalised clay), shape (N,)."""
    n = len(next(iter(x.values())))
    if n == 0:
        return np.zeros(0, np.float32)
    import keras
    outs = [keras.ops.convert_to_numpy(model({k: v[s:s + batch_size] for k, v in x.items()}, training=False))
            .reshape(-1) for s in range(0, n, batch_size)]
    return np.concatenate(outs)


def fit_keras_parallel(spec: ModelSpec, bag_data: list[tuple], cfg: TrainConfig, seeds: list[int],
                       batch_size: int, bag_callbacks: list[list], callbacks: list = ()):
    """Fit K bags side by side in one stacked Keras model; returns [(model, history dict)] per bag.

    `bag_data[k]` = (x_tr, y_tr, x_val, y_val). Bag k is built, compiled and given its data
    pipeline right after `set_random_seed(seeds[k])`, exactly as `fit_keras` does, so it starts
    from the same weights, dropout seeds and shuffling. Each step takes one batch of every bag
    (`data.zip_bags`) and minimises the sum of the bags' losses (each its MSE + its own L2
    terms): bag k's gradient is its own loss's gradient and Adam acts element-wise, so each
    bag gets exactly the updates it would get alone (`models.check_separable` refuses global
    gradient clipping). The bags must take the same steps (`bagging.parallel_mismatch`).
    `bag_callbacks[k]` see bag k's logs under the usual names; `callbacks` see the stacked model.
    """
    from trainer import data, models

    n_val = [0 if x_val is None else len(y_val) for _, _, x_val, y_val in bag_data]
    why = bagging.parallel_mismatch([len(y) for _, y, _, _ in bag_data], [batch_size] * len(bag_data), n_val)
    if why:
        raise ValueError(f"--parallel-bags: {why}")
    members, train_sets, val_sets = zip(*(seeded_bag(spec, *bag, cfg, seed, batch_size)
                                          for bag, seed in zip(bag_data, seeds)))
    stacked = models.stack_bags(members, cfg.jit_compile, cfg.steps_per_execution)
    hist = stacked.fit(data.zip_bags(train_sets), validation_data=data.zip_bags(val_sets) if n_val[0] else None,
                       epochs=cfg.epochs, verbose=0, shuffle=False,
                       callbacks=[per_bag_callbacks(bag_callbacks), *callbacks])
    models.unstack_optimizer_state(stacked)
    out = []
    for k, model in enumerate(members):
        history = bag_logs(hist.history, k)
        out.append((model, {key: [float(v) for v in vals] for key, vals in history.items()}))
    return out
