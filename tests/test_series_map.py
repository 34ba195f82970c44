"""The whole-series model on the map path: per-pixel series rows equal the dataset's, and
`s2mos predict-map` with a trained series model gives values to pixels that have bare dates but
no S1 pair at all (the paper's CNN has no input there).

Radar gaps are made honestly, the same way in the stack and in the point fan-out: the quick
world with the western half of each tile outside every S1 swath (S1 nodata, NaN) and every
other S1 acquisition missing in the eastern half, so pixels have all, some or none of their
bare dates paired.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import rasterio

import test_map_fixtures as mfx
import trainer_fixtures as tfx
from s2mos_transforms import bands, sequences
from s2mos_transforms.grid import lonlat_to_xy, tile_containing, utm_epsg
from s2mos_transforms.maps import cog, pixels
from s2mos_transforms.sources import SamplePoint
from trainer import aoa as aoa_mod
from trainer import series

SIZE = 32

SOURCE = textwrap.dedent('''
    import dataclasses

    import numpy as np

    from s2mos_transforms.sources.base import TILES, SourcePlugin
    from s2mos_transforms.sources.synthetic import SyntheticSource


    def thin_radar(s1):
        """West half of the tile: no S1 (outside every swath); east half: every other S1 date missing."""
        s1 = np.array(s1, np.float32, copy=True)
        w = s1.shape[-1]
        s1[..., : w // 2] = np.nan
        s1[1::2, ..., w // 2:] = np.nan
        return s1


    class HalfRadarSource:
        name = "halfradar"

        def __init__(self):
            self.world = SyntheticSource("quick")

        def covers(self, lat, lon):
            return self.world.covers(lat, lon)

        def tile_stack(self, tile, start=None, end=None):
            stack = self.world.tile_stack(tile, start, end)
            return dataclasses.replace(stack, s1=thin_radar(stack.s1))


    PLUGIN = SourcePlugin(name="halfradar", summary="the quick world with radar gaps", serves=frozenset({TILES}),
                          factory=HalfRadarSource, add_arguments=lambda group: None, options=lambda args: {})
''')


def _thin_radar(s1: np.ndarray) -> np.ndarray:
    ns: dict = {}
    exec(compile(SOURCE, "halfradar", "exec"), ns)
    return ns["thin_radar"](s1)


@pytest.fixture(scope="module")
def world():
    """A 32 × 32 tile of the quick world with radar gaps, and the point fan-out at its pixel centres
    with the same S1 acquisitions removed."""
    from s2mos_transforms.sources.synthetic import SyntheticSource

    src = SyntheticSource("quick")
    epsg = utm_epsg(49.0, 9.0)
    x, y = lonlat_to_xy(epsg, 9.0, 49.0)
    tile = tile_containing(epsg, float(x), float(y), SIZE)
    stack = src.tile_stack(tile)
    s1 = _thin_radar(stack.s1)
    lon, lat = tile.pixel_centres_lonlat()
    points = [SamplePoint(f"p{i:04d}", float(a), float(o)) for i, (a, o) in enumerate(zip(lat.ravel(), lon.ravel()))]
    obs = src.observations(points)
    # Drop the S1 rows whose slot is NaN at that pixel in the thinned stack.
    code = pd.Categorical(obs["point_id"], categories=[p.point_id for p in points]).codes
    is_s1 = (obs["sensor"] == bands.SENSOR_S1).to_numpy()
    t = obs["datetime"].dt.tz_convert(None).to_numpy().astype("datetime64[s]")
    slot = np.searchsorted(stack.s1_times, t[is_s1])
    flat = s1.reshape(s1.shape[0], 2, -1)
    keep = np.ones(len(obs), bool)
    keep[np.flatnonzero(is_s1)] = np.isfinite(flat[slot, 0, code[is_s1]])
    per_point = sequences.point_observations(obs[keep].reset_index(drop=True))
    return dataclasses.replace(stack, s1=s1), points, per_point


def _dataset_rows(obs, max_dates: int) -> tuple[dict, np.ndarray]:
    rec = sequences.point_record("p", 0.0, 0.0, 0.0, obs.extract(sequences.ExtractConfig(max_dates=max_dates)),
                                 max_dates)
    return rec, series.raw_sequence(rec["s2"], rec["s2_dates"], rec["s2s1"], rec["s2s1_dates"])


@pytest.mark.slow
def test_pixel_series_equal_the_dataset_rows(world):
    stack, points, per_point = world
    seqs = pixels.pixel_sequences(stack, channels=bands.CHANNELS_SERIES, block=300)
    paired = pixels.pixel_sequences(stack, channels=bands.CHANNELS_S2S1, block=300)
    assert seqs.values.shape[1] == len(bands.CHANNELS_SERIES)
    n_unpaired_rows = 0
    for i, p in enumerate(points):
        rec, rows = _dataset_rows(per_point[p.point_id], bands.MAX_DATES)
        np.testing.assert_array_equal(seqs.sequence(i), rows, err_msg=p.point_id)
        assert paired.lengths[i] == rec["s2s1_length"]
        n_unpaired_rows += int(np.isnan(rows[:, 10]).sum())
    # Not vacuous: all three kinds of pixel are there.
    bare = seqs.lengths > 0
    assert (bare & (paired.lengths == 0)).sum() > 100 and (paired.lengths > 0).sum() > 100
    assert ((paired.lengths > 0) & (paired.lengths < seqs.lengths)).any() and n_unpaired_rows > 0


@pytest.mark.slow
def test_thinned_pixel_series_equal_the_dataset_rows_where_the_pairs_were_not_thinned(world):
    """Past max_dates the dataset thins its bare and its paired sequences each on its own (so a kept
    bare date may lose its pair there); the map keeps the pair of every kept bare date. The two
    agree wherever the paired dates did not need thinning, and the map's radar otherwise extends
    the dataset's."""
    stack, points, per_point = world
    cfg = sequences.ExtractConfig(max_dates=3)
    seqs = pixels.pixel_sequences(stack, channels=bands.CHANNELS_SERIES, config=cfg, block=300)
    thinned = 0
    for i, p in enumerate(points):
        rec, rows = _dataset_rows(per_point[p.point_id], 3)
        got = seqs.sequence(i)
        np.testing.assert_array_equal(got[:, [*range(10), 12]], rows[:, [*range(10), 12]], err_msg=p.point_id)
        has = np.isfinite(rows[:, 10])
        np.testing.assert_array_equal(got[has, 10:12], rows[has, 10:12])
        n_paired = int(per_point[p.point_id].extract().paired.sum())
        if n_paired <= 3:
            np.testing.assert_array_equal(got, rows, err_msg=p.point_id)
        thinned += int(seqs.lengths[i] == 3)
    assert thinned > 50


@pytest.fixture()
def halfradar(tmp_path, monkeypatch):
    from s2mos_transforms import sources

    module_dir = tmp_path / "plugins"
    module_dir.mkdir()
    (module_dir / "s2mos_halfradar_source.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(module_dir))
    monkeypatch.setenv("PYTHONPATH", f"{module_dir}:{':'.join(sys.path)}")
    monkeypatch.setenv(sources.ENV_MODULES, "s2mos_halfradar_source")
    yield "halfradar"
    sys.modules.pop("s2mos_halfradar_source", None)


@pytest.mark.slow
def test_predict_map_with_a_trained_series_model_maps_pixels_without_s1(halfradar, tmp_path):
    import tensorflow as tf
    from pipelines.cli import main
    from s2mos_transforms.grid import Tile
    from s2mos_transforms import sources

    data_dir, model = str(tmp_path / "data"), str(tmp_path / "model")
    tfx.write_dataset(data_dir, n_calibration=40, n_test=12, seed=4, max_dates=40, unpaired_fraction=0.25)
    assert main(["train", "--data", data_dir, "--model-dir", model, "--models", "series", "--serve", "series",
                 "--epochs", "1", "--bags", "2", "--quiet"]) == 0
    bbox, names = mfx.small_aoi_bbox(SIZE)
    out = str(tmp_path / "map")
    assert main(["predict-map", "--model-dir", model, "--bbox", *map(str, bbox), "--tile-size", str(SIZE),
                 "--source", "halfradar", "--start", "2018-01-01", "--end", "2019-12-31", "--no-report",
                 "--batch-size", "256", "--out", out, "--runner", "DirectRunner"]) == 0
    records = [json.loads(line) for line in open(os.path.join(out, "tiles.jsonl"))]
    assert sorted(r["tile"] for r in records) == names and all(r["status"] == "written" for r in records)

    fn = tf.saved_model.load(os.path.join(model, "ensemble")).signatures["serving_default"]
    from trainer import model_dir, trust
    meta = model_dir.read_meta(model)
    assert meta.aoa["space"] == "composites"          # the whole-series model's AOA space
    area = trust.Trust.load(model, meta).aoa
    src = sources.create("halfradar", {})
    lost_all = 0
    for name in names:
        epsg, col, row = map(int, name.split("_"))
        tile = Tile(epsg, col, row, SIZE)
        stack = src.tile_stack(tile, "2018-01-01", "2019-12-31")
        with rasterio.open(os.path.join(out, "tiles", f"{name}.tif")) as ds:
            mean, std, n_obs = (b.ravel() for b in ds.read()[:3])
            aoa = ds.read(7).ravel()
            di = ds.read(6).ravel()
        cnn_rows = pixels.pixel_sequences(stack, channels=bands.CHANNELS_S2S1)
        rows = pixels.pixel_sequences(stack, channels=bands.CHANNELS_SERIES)
        no_pair = np.flatnonzero((cnn_rows.lengths == 0) & (rows.lengths > 0) & (n_obs != cog.NODATA))
        lost_all += no_pair.size
        assert (mean[no_pair] != cog.NODATA).all() and np.isfinite(mean[no_pair]).all()
        assert (aoa[no_pair] != cog.NODATA).all()                      # the AOA has a DI there too
        np.testing.assert_array_equal(n_obs[no_pair], rows.lengths[no_pair])
        lon, lat = tile.pixel_centres_lonlat()
        # the map's DI is the DI of the pixel's own series rows in the composites space
        sel = no_pair[:50]
        v, l = aoa_mod.ragged([rows.sequence(int(p)) for p in sel], len(bands.CHANNELS_SERIES))
        lat_lon = np.stack([lat.ravel()[sel], lon.ravel()[sel]], 1)
        want = area.di(trust.aoa_features(v, l, lat_lon, True, bands.CHANNELS_SERIES, "composites"))
        np.testing.assert_allclose(di[sel], want, rtol=1e-6)
        for p in no_pair[:: max(1, no_pair.size // 3)][:3]:
            seq = rows.sequence(int(p))
            assert np.isnan(seq[:, 10:12]).all()
            got = fn(sequence=tf.constant(seq[None]), length=tf.constant([len(seq)], tf.int32),
                     coords=tf.constant([[lat.ravel()[p], lon.ravel()[p]]], tf.float32))
            assert mean[p] == pytest.approx(float(got["clay_mean"][0]), abs=1e-3)
            assert std[p] == pytest.approx(float(got["clay_std"][0]), abs=1e-3)
    assert lost_all > 100
