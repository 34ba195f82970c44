"""Keras builders: the paper's multi-input CNN (Table 3) and the ANN baseline (Section 2.3.3).

CNN layout. The input `sequence` is date-major, (150 dates, C channels), as stored and as
served; the first layer (`to_image`) turns it into an image of C rows (spectral axis, height)
× 150 columns (dates, width) × 1, so that
  * Conv2D kernels (3, 1) run along the spectral axis only: dates are never mixed by a
    convolution ("the convolution occurs across the spectral dimension and not the temporal
    one"), and
  * MaxPooling2D (1, 2) halves the date axis only.
With C = 12 and 150 dates this reproduces Table 3 exactly: conv1 10×150×16 → pool1 10×75 →
conv2 8×75×64 → pool2 8×37 → conv3 6×37×16 → pool3 6×18 → flatten 1728 → Dense 8 (ELU,
L2 0.002) → Dropout 0.5; coords (lat, lon) → Dense 8 → Dense 4; concat → Dense 64 (ELU,
L2 0.002) → Dropout 0.2 → Dense 16 (ELU, L2 0.002) → Dropout 0.2 → Dense 1 tanh.
The paper gives no activation for the auxiliary Dense 8 → Dense 4 nor for the ANN's first
Dense 8 (Keras' default: linear), and we keep them linear.
"""
from __future__ import annotations

import functools

from s2mos_transforms import bands

L2 = 0.002
LEARNING_RATE = 1e-3       # Adam's default; the paper names Adam without a rate
CONV_FILTERS: tuple[int, ...] = (16, 64, 16)
LAST_CONV = "conv3"        # the layer the interpretability figure reads


def build_cnn(n_channels: int = len(bands.CHANNELS_S2S1), max_dates: int = bands.MAX_DATES,
              use_coords: bool = True, name: str = "cnn"):
    """The multi-input CNN; inputs {'sequence': (T, C), 'coords': (2,)}, output clay in [−1, 1]."""
    import keras
    from keras import layers, regularizers

    if n_channels < 7:
        raise ValueError(f"the CNN needs ≥ 7 channels (three valid 3×1 convolutions), got {n_channels}")
    seq_in = keras.Input((max_dates, n_channels), name="sequence")
    x = layers.Permute((2, 1), name="to_channels_by_dates")(seq_in)          # (C, T)
    x = layers.Reshape((n_channels, max_dates, 1), name="to_image")(x)       # (C, T, 1)
    for k, filters in enumerate(CONV_FILTERS, start=1):
        x = layers.Conv2D(filters, (3, 1), padding="valid", activation="relu", name=f"conv{k}")(x)
        x = layers.MaxPooling2D((1, 2), name=f"pool{k}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(8, activation="elu", kernel_regularizer=regularizers.L2(L2), name="spectral_dense")(x)
    x = layers.Dropout(0.5, name="spectral_dropout")(x)
    return coords_and_head(x, {"sequence": seq_in}, use_coords, name)


def coords_and_head(x, inputs: dict, use_coords: bool, name: str):
    """Table 3's coordinates branch and dense head on the sequence features `x` (shared by the
    CNN and the whole-series model): [coords → Dense 8 → Dense 4, concatenated] → Dense 64 (ELU,
    L2) → Dropout 0.2 → Dense 16 (ELU, L2) → Dropout 0.2 → Dense 1 tanh."""
    import keras
    from keras import layers, regularizers

    inputs = dict(inputs)
    if use_coords:
        coords_in = keras.Input((2,), name="coords")
        a = layers.Dense(8, name="aux_dense8")(coords_in)
        a = layers.Dense(4, name="aux_dense4")(a)
        x = layers.Concatenate(name="concat")([x, a])
        inputs["coords"] = coords_in
    x = layers.Dense(64, activation="elu", kernel_regularizer=regularizers.L2(L2), name="dense64")(x)
    x = layers.Dropout(0.2, name="dropout64")(x)
    x = layers.Dense(16, activation="elu", kernel_regularizer=regularizers.L2(L2), name="dense16")(x)
    x = layers.Dropout(0.2, name="dropout16")(x)
    out = layers.Dense(1, activation="tanh", name="clay")(x)
    return keras.Model(inputs, out, name=name)


def build_ann(n_features: int, name: str = "ann"):
    """ANN baseline: Dense 8 → Dense 32 (ELU, L2) → Dropout 0.2 → Dense 8 (ELU, L2) → Dropout 0.2 → tanh."""
    import keras
    from keras import layers, regularizers

    x_in = keras.Input((n_features,), name="features")
    x = layers.Dense(8, name="dense8_in")(x_in)
    x = layers.Dense(32, activation="elu", kernel_regularizer=regularizers.L2(L2), name="dense32")(x)
    x = layers.Dropout(0.2, name="dropout32")(x)
    x = layers.Dense(8, activation="elu", kernel_regularizer=regularizers.L2(L2), name="dense8")(x)
    x = layers.Dropout(0.2, name="dropout8")(x)
    out = layers.Dense(1, activation="tanh", name="clay")(x)
    return keras.Model({"features": x_in}, out, name=name)


def make_optimizer(learning_rate: float = LEARNING_RATE):
    """The optimiser of every Keras model: Adam (element-wise; no gradient clipping).

    Named explicitly so every saved bag records the same name whether bags are built one at a
    time (a fresh Keras session each) or side by side (--parallel-bags).
    """
    import keras
    return keras.optimizers.Adam(learning_rate, name="adam")


def compile_model(model, jit_compile: bool | str = False, steps_per_execution: int = 32,
                  learning_rate: float = LEARNING_RATE):
    """Adam + MSE on the normalised target; several steps per compiled call (speed only, same maths)."""
    import keras

    model.compile(optimizer=make_optimizer(learning_rate), loss="mse",
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def layer_shapes(model) -> dict[str, tuple]:
    """Output shape (without batch) of every named layer: what the Table 3 test compares."""
    return {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers
            if not layer.name in ("sequence", "coords", "features")}


# ---------------------------------------------------------------- K bags side by side (--parallel-bags)

def bag_key(k: int, name: str) -> str:
    """Log key of bag k's metric in the stacked model (Keras prefixes validation keys with val_)."""
    return f"bag{k}/{name}"


def check_separable(optimizer) -> None:
    """Refuse an optimiser whose update of one variable depends on another variable's gradient.

    Stacked training gives every bag exactly the update it would get alone only when the
    optimiser acts variable by variable: Adam's moments are element-wise, `clipnorm` and
    `clipvalue` act per variable, but `global_clipnorm` (one norm over every gradient) and
    dynamic loss scaling (one finiteness check over every gradient) would couple the bags.
    """
    import keras

    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        raise ValueError("--parallel-bags: loss-scale optimisers couple the bags (one scale for all)")
    if getattr(optimizer, "global_clipnorm", None) is not None:
        raise ValueError("--parallel-bags: global_clipnorm couples the bags' gradients; "
                         "use per-variable clipnorm or train the bags one after another")


@functools.lru_cache(maxsize=None)
def _parallel_bags_class():
    import keras
    import tensorflow as tf

    class ParallelBags(keras.Model):
        """K compiled bag models trained in one step: inputs/targets are K-tuples, one batch per bag.

        The step sums the bags' losses, each computed by its own model exactly as its own
        `train_step` would (its compiled MSE on its batch + its own L2 terms), so the gradient
        of every bag's weights is that bag's gradient alone, and the (element-wise) optimiser
        update of each variable is the one it would get alone. Each bag keeps its own loss
        tracker and RMSE; logs are keyed `bag{k}/loss`, `bag{k}/rmse` (`val_bag{k}/…`).
        """

        def __init__(self, members, **kwargs):
            super().__init__(**kwargs)
            self.members = list(members)
            self.built = True            # every member is a built functional model

        def call(self, inputs, training=False):
            return tuple(m(x, training=training) for m, x in zip(self.members, inputs))

        @property
        def metrics(self):
            return [metric for m in self.members for metric in m.metrics]

        def get_metrics_result(self):
            out = {}
            for k, m in enumerate(self.members):
                out.update({bag_key(k, name): value for name, value in m.get_metrics_result().items()})
            return out

        def _bag_loss(self, m, x, y, training):
            y_pred = m(x, training=training)
            loss = m.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=None, training=training)
            batch = tf.shape(next(v for v in tf.nest.flatten(x) if v is not None))[0]
            m._loss_tracker.update_state(loss, sample_weight=batch)   # as Keras' own train/test_step
            return loss, y_pred

        def train_step(self, data):
            xs, ys = data
            with tf.GradientTape() as tape:
                out = [self._bag_loss(m, x, y, True) for m, x, y in zip(self.members, xs, ys)]
                total = tf.add_n([loss for loss, _ in out])
            weights = self.trainable_weights
            self.optimizer.apply_gradients(zip(tape.gradient(total, weights), weights))
            for m, x, y, (_, y_pred) in zip(self.members, xs, ys, out):
                m.compute_metrics(x, y, y_pred)
            return self.get_metrics_result()

        def test_step(self, data):
            xs, ys = data
            for m, x, y in zip(self.members, xs, ys):
                _, y_pred = self._bag_loss(m, x, y, False)
                m.compute_metrics(x, y, y_pred)
            return self.get_metrics_result()

    return ParallelBags


def stack_bags(members: list, jit_compile: bool | str = False, steps_per_execution: int = 32):
    """One trainable Keras model holding the compiled `members` side by side (separate weights).

    Its optimiser is a fresh copy of the members' (all must share one configuration); fit it
    on `data.zip_bags` datasets. The members are the trained bag models afterwards (shared
    variables); `unstack_optimizer_state` copies the optimiser state back into each one.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        raise ValueError("--parallel-bags needs the TensorFlow backend")
    if not members:
        raise ValueError("no bag models to stack")
    configs = [m.optimizer.get_config() for m in members]
    for m in members:
        if not m.compiled:
            raise ValueError(f"bag model {m.name} is not compiled")
        check_separable(m.optimizer)
        if type(m.optimizer) is not type(members[0].optimizer):
            raise ValueError("the bag models use different optimisers")
    strip = [{k: v for k, v in c.items() if k != "name"} for c in configs]
    if any(c != strip[0] for c in strip):
        raise ValueError("the bag models' optimisers are configured differently")
    optimizer = type(members[0].optimizer).from_config(configs[0])
    check_separable(optimizer)
    model = _parallel_bags_class()(members, name="parallel_bags")
    model.compile(optimizer=optimizer, jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def unstack_optimizer_state(stacked) -> None:
    """Give each member's own optimiser the state the stacked one holds for its variables.

    So a saved bag carries the optimiser state (step count, Adam moments) it would have after
    training alone, exactly as the sequential path saves it.
    """
    opt = stacked.optimizer
    for m in stacked.members:
        own = m.optimizer
        if not own.built:
            own.build(m.trainable_variables)
        own.iterations.assign(opt.iterations)
        for var in m.trainable_variables:
            for src, dst in zip(_slots(opt, var), _slots(own, var), strict=True):
                dst.assign(src)


_SLOT_LISTS = ("_momentums", "_velocities", "_velocity_hats", "_accumulated_gradients",
               "_model_variables_moving_average")


def _slots(optimizer, variable) -> list:
    """Per-variable state of an optimiser for `variable` (Adam: moments; AMSGrad maxima, EMA, …)."""
    index = optimizer._get_variable_index(variable)
    return [getattr(optimizer, attr)[index] for attr in _SLOT_LISTS if getattr(optimizer, attr, None)]
