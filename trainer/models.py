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
    inputs = {"sequence": seq_in}
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


def compile_model(model, jit_compile: bool | str = False, steps_per_execution: int = 32,
                  learning_rate: float = LEARNING_RATE):
    """Adam + MSE on the normalised target; several steps per compiled call (speed only, same maths)."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse",
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse")],
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def layer_shapes(model) -> dict[str, tuple]:
    """Output shape (without batch) of every named layer: what the Table 3 test compares."""
    return {layer.name: tuple(layer.output.shape[1:]) for layer in model.layers
            if not layer.name in ("sequence", "coords", "features")}
