"""Map inference: per-pixel sequences (same functions as the dataset), fast path == SavedModel,
the RunInference model handler."""
from __future__ import annotations

import numpy as np
import pytest

import test_map_fixtures as fx
from s2mos_transforms import bands, sequences
from s2mos_transforms.maps import engines
from s2mos_transforms.maps import model_handler
from trainer import model_dir
from s2mos_transforms.maps import pixels


def test_pixel_sequences_equal_the_dataset_chain_per_pixel():
    stack = fx.quick_stack(32)
    seqs = pixels.pixel_sequences(stack, block=300)          # several blocks
    h, w = stack.s2.shape[-2:]
    assert seqs.lengths.size == h * w and seqs.values.shape == (int(seqs.lengths.sum()), 12)
    assert seqs.lengths.max() > 0
    rng = np.random.default_rng(0)
    picks = list(rng.choice(h * w, 12, replace=False)) + [int(np.argmax(seqs.lengths))]
    for p in picks:
        r, c = divmod(int(p), w)
        ex = sequences.extract(stack.s2_times, stack.s2[:, :, r, c], stack.scl[:, r, c],
                               stack.scene_cloud_pct[:, r, c], stack.s1_times, stack.s1[:, :, r, c])
        rec = sequences.point_record("p", 0.0, 0.0, 0.0, ex)
        assert seqs.lengths[p] == rec["s2s1_length"]
        np.testing.assert_allclose(seqs.sequence(int(p)), rec["s2s1"], rtol=0, atol=1e-6)
    s2only = pixels.pixel_sequences(stack, np.asarray(picks), bands.CHANNELS_S2)
    assert s2only.values.shape[1] == 10 and (s2only.lengths >= seqs.lengths[picks]).all()


def test_pad_batch_and_length_batches():
    lengths = np.array([3, 0, 5, 1], np.int64)
    values = np.arange(9 * 2, dtype=np.float32).reshape(9, 2)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    x = engines.pad_batch(values, offsets, lengths, np.array([2, 0]), 4)
    np.testing.assert_array_equal(x[0], values[3:7])           # truncated to 4
    np.testing.assert_array_equal(x[1, :3], values[0:3])
    assert (x[1, 3] == 0).all()
    batches = engines.length_batches(lengths, 3)
    assert [list(b) for b in batches] == [[1, 3, 0], [2]]


@pytest.mark.parametrize("use_coords, s1", [(True, True), (False, False)])
def test_fast_path_equals_padded_savedmodel(use_coords, s1):
    d = fx.ensemble_dir(n_bags=2, use_coords=use_coords, s1=s1)
    padded, fast = engines.PaddedEnsemble(d), engines.FastEnsemble(d)
    assert fast.factor == 8 and fast.aligned_width(1) == 8 and fast.aligned_width(9) == 16
    assert fast.aligned_width(150) == 144                    # dates 144–149 never reach the flatten
    values, lengths, coords = engines.probe_batch(fast.meta, 60, seed=3)
    m0, s0 = padded.predict(values, lengths, coords, batch_size=16)
    m1, s1_ = fast.predict(values, lengths, coords, batch_size=16)
    np.testing.assert_allclose(m1, m0, atol=1e-3)
    np.testing.assert_allclose(s1_, s0, atol=1e-3)
    assert np.std(m0) > 0.1                                  # predictions do vary
    assert engines.load_engine(d).name == "fast"


def test_fast_path_on_real_pixels_and_through_the_handler():
    d = fx.ensemble_dir()
    stack = fx.quick_stack(32)
    seqs = pixels.pixel_sequences(stack)
    seqs = seqs.subset(seqs.lengths >= 1)
    coords = pixels.coords_of(stack.tile, seqs.pixels)
    padded = engines.PaddedEnsemble(d)
    m0, s0 = padded.predict(seqs.values, seqs.lengths, coords)
    handler = model_handler.ClayEnsembleHandler(d, batch_size=256)
    engine = handler.load_model()
    assert engine.name == "fast"
    half = seqs.lengths.size // 2
    parts = [seqs.subset(np.arange(seqs.lengths.size) < half), seqs.subset(np.arange(seqs.lengths.size) >= half)]
    n_obs = np.zeros((32, 32), np.int16)
    batch = [model_handler.TileInputs(None, p, pixels.coords_of(stack.tile, p.pixels), n_obs) for p in parts]
    out = handler.run_inference(batch, engine)
    m1 = np.concatenate([o.clay_mean for o in out])
    s1 = np.concatenate([o.clay_std for o in out])
    np.testing.assert_array_equal(np.concatenate([o.pixels for o in out]), seqs.pixels)
    np.testing.assert_allclose(m1, m0, atol=1e-3)
    np.testing.assert_allclose(s1, s0, atol=1e-3)
    kw = handler.batch_elements_kwargs()
    assert kw["element_size_fn"](batch[0]) == half and kw["max_batch_size"] == handler.max_batch_pixels


def test_missing_ensemble_is_reported(tmp_path):
    assert "ensemble/saved_model.pb" in model_dir.check_model_dir(str(tmp_path))
    assert model_dir.check_model_dir(fx.ensemble_dir()) is None
