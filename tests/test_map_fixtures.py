"""Shared, cached builders for the map tests (no tests here).

* `ensemble_dir(...)`: a model directory in the trainer's exact export layout, made with the
  trainer's own code (`trainer.models.build_cnn`, `trainer.ensemble.export`): untrained,
  seeded bag CNNs — the map tests check plumbing and numbers, not skill.
* `small_aoi_bbox(...)`: a lon/lat bbox on the quick world's map AOI that covers exactly
  2 × 2 tiles of `size` pixels, with a margin, so the AOI mask cuts every tile.
"""
from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np

from s2mos_transforms import bands
from s2mos_transforms.normalize import MinMax, NormStats

_TMP = tempfile.mkdtemp(prefix="s2mos-map-tests-")
atexit.register(shutil.rmtree, _TMP, ignore_errors=True)


def stats_for(channels: tuple[str, ...]) -> NormStats:
    s2_lo, s2_hi = np.full(10, 0.0), np.array([0.25, 0.3, 0.35, 0.4, 0.42, 0.45, 0.5, 0.5, 0.6, 0.55])
    s1_lo, s1_hi = np.array([-22.0, -30.0]), np.array([-3.0, -10.0])
    return NormStats({
        "s2s1": MinMax(np.concatenate([s2_lo, s1_lo]), np.concatenate([s2_hi, s1_hi])),
        "s2": MinMax(s2_lo, s2_hi),
        "coords": MinMax(np.array([44.0, 2.0]), np.array([52.0, 14.0])),
        "clay": MinMax(np.array([1.0]), np.array([79.0])),
    })


@functools.lru_cache(maxsize=None)
def ensemble_dir(n_bags: int = 2, use_coords: bool = True, s1: bool = True, seed: int = 7) -> str:
    """MODEL_DIR with ensemble/ (SavedModel + s2mos_model.json) and bags/bag_K.keras."""
    import keras
    from trainer import ensemble, models

    channels = bands.CHANNELS_S2S1 if s1 else bands.CHANNELS_S2
    feature = "s2s1" if s1 else "s2"
    model_dir = os.path.join(_TMP, f"model_{n_bags}_{int(use_coords)}_{int(s1)}_{seed}")
    os.makedirs(os.path.join(model_dir, "bags"), exist_ok=True)
    members = []
    for k in range(n_bags):
        keras.utils.set_random_seed(seed * 100 + k)
        m = models.build_cnn(len(channels), use_coords=use_coords, name=f"bag{k}")
        # Spread the untrained outputs a little so predictions vary across pixels.
        last = m.get_layer("clay")
        w, b = last.get_weights()
        last.set_weights([w * 3.0, b])
        m.save(os.path.join(model_dir, "bags", f"bag_{k}.keras"))
        members.append(m)
    ensemble.export(os.path.join(model_dir, "ensemble"), members, stats_for(channels), channels, feature,
                    use_coords)
    return model_dir


def small_aoi_bbox(size: int = 64, margin_m: float = 60.0) -> tuple[tuple[float, float, float, float], list[str]]:
    """(W, S, E, N) covering exactly the 2 × 2 tiles of `size` px starting at the quick AOI's
    first tile; and the expected tile names."""
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.grid import Tile, xy_to_lonlat
    from s2mos_transforms.world.presets import get_preset

    aoi = tiling.aoi_from_bbox(*get_preset("quick").aoi_bbox)
    first = tiling.tiles_for_aoi(aoi, size)[len(tiling.tiles_for_aoi(aoi, size)) // 2].tile
    epsg, c, r = first.epsg, first.col, first.row
    span = size * first.res
    x0, y0, x1, y1 = c * span + margin_m, r * span + margin_m, (c + 2) * span - margin_m, (r + 2) * span - margin_m
    lon, lat = xy_to_lonlat(epsg, np.array([x0, x1, x0, x1]), np.array([y0, y0, y1, y1]))
    # The inner lon/lat box of the four corners stays inside the projected square.
    w, e = float(max(lon[0], lon[2])), float(min(lon[1], lon[3]))
    s, n = float(max(lat[0], lat[1])), float(min(lat[2], lat[3]))
    bbox = (w, s, e, n)
    names = [Tile(epsg, cc, rr, size).name for cc in (c, c + 1) for rr in (r, r + 1)]
    return bbox, sorted(names)


def tmpdir(name: str) -> str:
    path = tempfile.mkdtemp(prefix=f"{name}-", dir=_TMP)
    return path


@functools.lru_cache(maxsize=None)
def quick_source():
    from s2mos_transforms.sources.synthetic import SyntheticSource
    return SyntheticSource("quick")


@functools.lru_cache(maxsize=None)
def quick_stack(size: int = 32):
    """The stack of the quick AOI's first tile of `size` px (cached: the world is slow)."""
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.world.presets import get_preset

    preset = get_preset("quick")
    task = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*preset.aoi_bbox), size)[0]
    return quick_source().tile_stack(task.tile, preset.start, preset.end)



@functools.lru_cache(maxsize=None)
def trusted_dir(recalibration: bool = False) -> str:
    """`ensemble_dir()` copied, with the trust layer fitted by the trainer's own code
    (`trainer.trust.fit_and_store`): 90 % conformal intervals and the AOA, calibrated on 240
    pixels of the quick world's first tile (their sequences, coordinates and true clay); the
    two bags' calibration predictions are mean ∓ std of the ensemble (so their mean and spread
    are the ensemble's). `recalibration`: also a recorded linear correction 2 + 1.1·clay."""
    from s2mos_transforms.maps import engines, pixels
    from trainer import bagging, data, model_dir, trust

    src = ensemble_dir()
    dest = os.path.join(_TMP, f"trusted_{int(recalibration)}")
    if not os.path.exists(dest):
        shutil.copytree(src, dest)
        stack = quick_stack(32)
        seqs = pixels.pixel_sequences(stack)
        seqs = seqs.subset(seqs.lengths >= 1)
        pick = np.linspace(0, seqs.lengths.size - 1, 240).astype(int)
        keep = np.zeros(seqs.lengths.size, bool)
        keep[pick] = True
        seqs = seqs.subset(keep)
        coords = pixels.coords_of(stack.tile, seqs.pixels)
        truth = quick_source().truth_clay(stack.tile).ravel()[seqs.pixels].astype(np.float32)
        mean, std = engines.PaddedEnsemble(dest).predict(seqs.values, seqs.lengths, coords)
        cal = data.Split(np.array([f"px{i}" for i in range(truth.size)]), coords, truth,
                         {"s2s1": [seqs.sequence(i) for i in range(truth.size)]})
        preds = np.stack([mean - std, mean + std])
        trust.fit_and_store(dest, cal, bands.CHANNELS_S2S1, "s2s1", True, preds,
                            bagging.draw_bags(truth.size, 2, seed=1), seed=0, log=lambda *_: None)
        if recalibration:
            model_dir.update_meta(dest, recalibration={"kind": "linear", "a": 2.0, "b": 1.1, "n": 7})
    return dest
