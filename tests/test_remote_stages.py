"""Each stage end to end with every path on a filesystem that is not the local disk.

Beam stages (world export, build-dataset, predict-map's inputs and outputs) run on ``mem://``,
the in-memory Beam FileSystem of `tests.memfs`, which TensorFlow does not know. TensorFlow's
own writers (train's SavedModel and TensorBoard logs, evaluate, predict-map's model) run on
TensorFlow's ``ram://``, which Beam does not know; the dataset built on ``mem://`` is copied
there byte for byte (on Google Cloud both are the same ``gs://`` path). The operating system
can open neither scheme (tests/test_remote_paths.py), and every stage runs in an empty working
directory that must stay empty, so nothing was written to a local path by mistake
(``os.makedirs("mem://x")`` would have made a local folder ``mem:``).
"""
from __future__ import annotations

import os
import uuid

import pytest

from pipelines.cli import main
from s2mos_transforms import fileio
import memfs


@pytest.fixture(scope="module", autouse=True)
def workdir(tmp_path_factory):
    """An empty working directory for the whole module, entered before any stage runs."""
    path, before = tmp_path_factory.mktemp("cwd"), os.getcwd()
    os.chdir(path)
    yield path
    os.chdir(before)


@pytest.fixture(scope="module")
def stores(workdir):
    mem, ram = memfs.new_root(), f"ram://s2mos-stages-{uuid.uuid4().hex[:8]}"
    yield mem, ram
    memfs.clear(mem)


@pytest.fixture
def empty_cwd(workdir):
    yield
    assert os.listdir(workdir) == [], "a stage wrote to a local path"


def _names(pattern: str) -> set[str]:
    return {p.rsplit("/", 1)[-1] for p in fileio.glob(pattern)}


@pytest.fixture(scope="module")
def world(stores):
    mem, _ = stores
    assert main(["world", "export", "--preset", "quick", "--n-points", "40", "--out", f"{mem}/world",
                 "--quiet"]) == 0
    return f"{mem}/world"


def test_world_export(world, empty_cwd):
    assert {"samples.csv", "observations.parquet", "state.parquet", "lab_spectra.csv", "truth_clay.tif",
            "world.json"} <= _names(f"{world}/*")
    assert fileio.read_text(f"{world}/samples.csv").startswith("point_id,lat,lon,clay")


@pytest.fixture(scope="module")
def dataset(stores, world):
    mem, ram = stores
    out = f"{mem}/dataset"
    assert main(["build-dataset", "--samples", f"{world}/samples.csv", "--source", "table",
                 "--observations", f"{world}/observations.parquet", "--out", out, "--quiet"]) == 0
    for path in fileio.glob(f"{out}/*"):                      # the same bytes, where TensorFlow reads
        fileio.write_bytes(f"{ram}/dataset/{path.rsplit('/', 1)[-1]}", fileio.read_bytes(path))
    return out, f"{ram}/dataset"


@pytest.mark.slow
def test_build_dataset(dataset, empty_cwd):
    out, _ = dataset
    summary = fileio.read_json(f"{out}/summary.json")
    assert summary["input_points"] == 40 and summary["calibration"] > 20 and summary["test"] > 0
    assert {"schema.pbtxt", "stats.json", "rejected.jsonl", "split.csv", "calibration-00000-of-00001.tfrecord.gz",
            "test-00000-of-00001.tfrecord.gz"} <= _names(f"{out}/*")
    assert not fileio.glob(f"{out}.staging-*")                  # swapped into place, nothing left over


@pytest.fixture(scope="module")
def model(stores, dataset):
    _, ram = stores
    model_dir = f"{ram}/model"
    assert main(["train", "--data", dataset[1], "--model-dir", model_dir, "--epochs", "1", "--bags", "2",
                 "--models", "cnn,rf", "--quick-grid", "--cv-folds", "2", "--seed", "7", "--quiet"]) == 0
    return model_dir


@pytest.mark.slow
def test_train(model, empty_cwd):
    from trainer import model_dir as contract
    assert contract.check_model_dir(model) is None
    assert {"saved_model.pb", "s2mos_model.json"} <= _names(f"{model}/ensemble/*")
    assert {"manifest.json", "train_config.json"} <= _names(f"{model}/*")


@pytest.mark.slow
def test_evaluate(model, dataset, empty_cwd):
    assert main(["evaluate", "--data", dataset[1], "--model-dir", model, "--quiet"]) == 0
    report = fileio.read_json(f"{model}/evaluation/report.json")
    assert {"cnn", "rf"} <= set(report["models"])
    assert "report.md" in _names(f"{model}/evaluation/*")


@pytest.mark.slow
def test_predict_map(stores, model, empty_cwd):
    import rasterio
    import test_map_fixtures as fx
    mem, _ = stores
    (w, s, e, n), tiles = fx.small_aoi_bbox()
    fileio.write_json(f"{mem}/aoi.geojson", {"type": "Polygon", "coordinates": [
        [[w, s], [e, s], [e, n], [w, n], [w, s]]]})
    out = f"{mem}/map"
    assert main(["predict-map", "--model-dir", model, "--aoi", f"{mem}/aoi.geojson", "--preset", "quick",
                 "--out", out, "--tile-size", "64", "--no-report"]) == 0
    assert _names(f"{out}/tiles/*") == {f"{t}.tif" for t in tiles}
    assert {"tiles.jsonl", "map.stac.json", "map_settings.json", "summary.json"} <= _names(f"{out}/*")
    with fileio.local_copy(f"{out}/tiles/{tiles[0]}.tif") as local, rasterio.open(local) as ds:
        assert ds.count >= 3 and ds.read(1).shape == (64, 64)
    assert fileio.read_json(f"{out}/summary.json")["failed"] == 0


@pytest.mark.slow
def test_datacube_exported_to_the_store_maps_like_the_local_one(stores, tmp_path, empty_cwd):
    """World export of a netCDF and a Zarr cube to mem:// (Beam-only), read back by the
    datacube source through fileio: the same tile stack as the local netCDF."""
    import numpy as np
    import test_map_fixtures as fx
    from s2mos_transforms.maps import tiling
    from s2mos_transforms.sources.datacube import DatacubeSource
    from s2mos_transforms.world.export_datacube import export_datacube
    mem, _ = stores
    bbox, _ = fx.small_aoi_bbox(32)
    export_datacube("quick", str(tmp_path / "small.nc"), bbox=bbox)
    tile = tiling.tiles_for_aoi(tiling.aoi_from_bbox(*bbox), 32)[0].tile
    local = DatacubeSource(str(tmp_path / "small.nc")).tile_stack(tile)
    for remote in (f"{mem}/cubes/small.nc", f"{mem}/cubes/small.zarr"):
        assert export_datacube("quick", remote, bbox=bbox)["path"] == remote
        stack = DatacubeSource(remote).tile_stack(tile)
        for field in ("s2_times", "s2", "scl", "scene_cloud_pct", "s1_times", "s1", "angle"):
            np.testing.assert_array_equal(getattr(stack, field), getattr(local, field), err_msg=f"{remote} {field}")
