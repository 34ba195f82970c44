"""The CNN reproduces Table 3 of the paper layer by layer; the ANN baseline's layout."""
import numpy as np
import pytest

from trainer import models


@pytest.fixture(scope="module")
def cnn():
    return models.build_cnn(12, 150, use_coords=True)


def test_cnn_layer_shapes_equal_table_3(cnn):
    s = models.layer_shapes(cnn)
    # Table 3: channels × width × filters
    assert s["to_image"] == (12, 150, 1)
    assert s["conv1"] == (10, 150, 16)
    assert s["pool1"] == (10, 75, 16)
    assert s["conv2"] == (8, 75, 64)
    assert s["pool2"] == (8, 37, 64)
    assert s["conv3"] == (6, 37, 16)
    assert s["pool3"] == (6, 18, 16)
    assert s["flatten"] == (1728,)
    assert s["spectral_dense"] == (8,) and s["spectral_dropout"] == (8,)
    assert s["aux_dense8"] == (8,) and s["aux_dense4"] == (4,)
    assert s["concat"] == (12,)
    assert s["dense64"] == (64,) and s["dense16"] == (16,)
    assert s["clay"] == (1,)


def test_cnn_hyper_parameters(cnn):
    import keras
    for name in ("conv1", "conv2", "conv3"):
        layer = cnn.get_layer(name)
        assert layer.kernel_size == (3, 1) and layer.padding == "valid"
        assert layer.activation.__name__ == "relu"
    for name in ("pool1", "pool2", "pool3"):
        assert cnn.get_layer(name).pool_size == (1, 2)
    for name in ("spectral_dense", "dense64", "dense16"):
        layer = cnn.get_layer(name)
        assert layer.activation.__name__ == "elu"
        assert isinstance(layer.kernel_regularizer, keras.regularizers.L2)
        assert float(layer.kernel_regularizer.l2) == pytest.approx(0.002)
    assert cnn.get_layer("spectral_dropout").rate == 0.5
    assert cnn.get_layer("dropout64").rate == 0.2 and cnn.get_layer("dropout16").rate == 0.2
    assert cnn.get_layer("clay").activation.__name__ == "tanh"


def test_convolutions_never_mix_dates(cnn):
    """Changing one date changes conv3 outputs only in that date's pooled column."""
    import keras
    sub = keras.Model(cnn.inputs, cnn.get_layer("conv3").output)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 150, 12)).astype(np.float32)
    c = np.zeros((1, 2), np.float32)
    base = np.asarray(sub({"sequence": x, "coords": c}))
    x2 = x.copy()
    x2[0, 41] += 0.5                      # date 41 → pooled column 41 // 4 = 10
    diff = np.abs(np.asarray(sub({"sequence": x2, "coords": c})) - base).max(axis=(0, 1, 3))
    assert np.flatnonzero(diff > 0).tolist() == [10]


def test_no_sar_and_no_coords_variants():
    m = models.build_cnn(10, 150, use_coords=False)
    s = models.layer_shapes(m)
    assert s["conv1"] == (8, 150, 16) and s["flatten"] == (4 * 18 * 16,)
    assert [t.name for t in m.inputs] == ["sequence"]
    assert "concat" not in s


def test_ann_layout():
    m = models.build_ann(12)
    s = models.layer_shapes(m)
    assert [s[n] for n in ("dense8_in", "dense32", "dropout32", "dense8", "dropout8", "clay")] == \
        [(8,), (32,), (32,), (8,), (8,), (1,)]
    assert m.get_layer("dense32").activation.__name__ == "elu"
    assert m.get_layer("clay").activation.__name__ == "tanh"
