"""COG writing: validity, bands, nodata, georeferencing, atomic publication."""
from __future__ import annotations

import os

import numpy as np
import rasterio

from s2mos_transforms.maps import cog
from s2mos_transforms.grid import Tile


def _data(size: int) -> np.ndarray:
    rng = np.random.default_rng(size)
    d = rng.uniform(5, 60, (len(cog.BAND_NAMES), size, size)).astype(np.float32)
    d[:, :3, :] = cog.NODATA
    return d


def test_tile_cog_is_valid_and_reads_back(tmp_path):
    for size in (64, 256):
        tile = Tile(32632, 781, 8393, size)
        path = str(tmp_path / f"t{size}.tif")
        data = _data(size)
        assert cog.write_cog(path, data, tile.transform, f"EPSG:{tile.epsg}") == path
        ok, errors, warnings = cog.validate(path)
        assert ok and not errors and not warnings
        with rasterio.open(path) as ds:
            assert ds.descriptions == cog.BAND_NAMES
            assert ds.nodata == cog.NODATA and ds.dtypes == ("float32",) * len(cog.BAND_NAMES)
            assert ds.crs.to_epsg() == 32632 and ds.transform == tile.transform
            assert ds.block_shapes[0][0] < size and ds.overviews(1) and ds.profile["compress"].lower() == "deflate"
            np.testing.assert_array_equal(ds.read(), data)
        assert os.listdir(tmp_path) == sorted(os.listdir(tmp_path))  # nothing but finished files
        assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_publish_replaces_atomically_and_exists(tmp_path):
    src = tmp_path / "local.bin"
    src.write_bytes(b"x" * 1000)
    dest = str(tmp_path / "out" / "a.tif")
    assert not cog.exists(dest)
    cog.publish(str(src), dest)
    assert cog.exists(dest) and open(dest, "rb").read() == b"x" * 1000
    src.write_bytes(b"y" * 10)
    cog.publish(str(src), dest)
    assert open(dest, "rb").read() == b"y" * 10
    assert os.listdir(tmp_path / "out") == ["a.tif"]


def test_block_size_gives_overviews():
    assert cog.block_size(64) == 32 and cog.block_size(256) == 128 and cog.block_size(4096) == 256
