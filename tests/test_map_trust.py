"""The map's trust bands (clay_p05, clay_p95, di, aoa) and a recorded recalibration, through the
RunInference handler: the `fast` and `padded` paths give the same numbers in every band."""
import numpy as np

import test_map_fixtures as fx
from s2mos_transforms.maps import model_handler, pixels
from trainer import intervals, model_dir


def _run(d: str, mode: str):
    stack = fx.quick_stack(32)
    seqs = pixels.pixel_sequences(stack)
    seqs = seqs.subset(seqs.lengths >= 1)
    handler = model_handler.ClayEnsembleHandler(d, batch_size=128, mode=mode)
    engine = handler.load_model()
    assert engine.name == mode
    n_obs = np.zeros((32, 32), np.int16)
    batch = [model_handler.TileInputs(None, seqs, pixels.coords_of(stack.tile, seqs.pixels), n_obs)]
    (out,) = handler.run_inference(batch, engine)
    return out


def test_fast_and_padded_agree_in_every_band():
    d = fx.trusted_dir()
    fast, padded = _run(d, "fast"), _run(d, "padded")
    assert set(fast.bands) == {"clay_mean", "clay_std", "clay_p05", "clay_p95", "di", "aoa"}
    for name in ("clay_mean", "clay_std", "clay_p05", "clay_p95"):
        np.testing.assert_allclose(fast.bands[name], padded.bands[name], atol=2e-3)
    np.testing.assert_array_equal(fast.bands["di"], padded.bands["di"])       # from the sequences alone
    np.testing.assert_array_equal(fast.bands["aoa"], padded.bands["aoa"])
    b = fast.bands
    assert (b["clay_p05"] < b["clay_mean"]).all() and (b["clay_mean"] < b["clay_p95"]).all()
    meta = model_dir.read_meta(d)
    lo, hi = intervals.bounds(b["clay_mean"], b["clay_std"], meta.intervals)
    np.testing.assert_allclose(b["clay_p05"], lo, atol=1e-5)
    assert set(np.unique(b["aoa"])) <= {0.0, 1.0} and b["aoa"].mean() > 0.5   # its own calibration pixels' tile
    np.testing.assert_array_equal(b["aoa"] == 1, b["di"] <= meta.aoa["threshold"])


def test_recalibration_is_applied_to_mean_spread_and_bounds():
    plain, recal = _run(fx.trusted_dir(), "padded"), _run(fx.trusted_dir(recalibration=True), "padded")
    for name in ("clay_mean", "clay_p05", "clay_p95"):
        np.testing.assert_allclose(recal.bands[name], 2.0 + 1.1 * plain.bands[name], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(recal.bands["clay_std"], 1.1 * plain.bands["clay_std"], rtol=1e-5)
    np.testing.assert_array_equal(recal.bands["di"], plain.bands["di"])


def test_a_model_without_trust_layer_gives_nan_bands():
    out = _run(fx.ensemble_dir(), "padded")
    for name in ("clay_p05", "clay_p95", "di", "aoa"):
        assert np.isnan(out.bands[name]).all()
