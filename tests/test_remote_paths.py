"""Every reader and writer of a data path works on a filesystem that is not the local disk.

Two stand-ins for ``gs://``: ``mem://``, an in-memory Beam FileSystem registered by
`tests.memfs` (Beam-only: TensorFlow does not know it), and TensorFlow's ``ram://`` (TF-only:
Beam does not know it). The operating system can open neither, so a module that passes here
went through `s2mos_transforms.fileio` (or Beam's own IO) for every byte.
"""
from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError
import memfs


@pytest.fixture
def mem():
    root = memfs.new_root()
    yield root
    memfs.clear(root)


@pytest.fixture(params=["mem", "ram"])
def remote(request):
    if request.param == "ram":
        yield f"ram://s2mos-test-{uuid.uuid4().hex[:8]}"
        return
    root = memfs.new_root()
    yield root
    memfs.clear(root)


def test_plain_open_cannot_read_either_scheme_even_when_the_file_exists(remote):
    path = fileio.write_text(fileio.join(remote, "dir", "a.txt"), "hello")
    assert fileio.read_text(path) == "hello"
    with pytest.raises(OSError):
        open(path, "rb")
    with pytest.raises(OSError):
        open(path, "w")
    assert not fileio.exists(path.replace("a.txt", "b.txt"))


def test_mem_is_beam_only_and_ram_is_tensorflow_only(mem):
    """So a stage passing on mem:// used Beam's FileSystems, and one passing on ram:// used tf.io.gfile."""
    from apache_beam.io.filesystems import FileSystems
    import tensorflow as tf
    fileio.write_bytes(mem + "/x.bin", b"1")
    assert FileSystems.get_filesystem(mem + "/x.bin").scheme() == "mem" and fileio.exists(mem + "/x.bin")
    with pytest.raises(tf.errors.UnimplementedError):
        tf.io.gfile.exists(mem + "/x.bin")
    with pytest.raises(ValueError):
        FileSystems.get_filesystem("ram://x/y")


def test_fileio_operations_on_a_remote_scheme(remote, tmp_path):
    base = fileio.join(remote, "out")
    fileio.check_writable(base, "--out")
    fileio.check_writable(fileio.join(base, "f.json"), "--json", is_file=True)
    assert fileio.glob(fileio.join(base, "*")) == []          # the probes left nothing behind
    with fileio.open_write(fileio.join(base, "sub", "stream.bin")) as fh:
        fh.write(b"ab")
        fh.write(b"cd")
    fileio.write_json(fileio.join(base, "a.json"), {"k": np.int64(3)})
    fileio.save_npz(fileio.join(base, "arr.npz"), x=np.arange(4))
    assert fileio.read_bytes(fileio.join(base, "sub", "stream.bin")) == b"abcd"
    assert fileio.read_json(fileio.join(base, "a.json")) == {"k": 3}
    assert fileio.load_npz(fileio.join(base, "arr.npz"))["x"].tolist() == [0, 1, 2, 3]
    assert fileio.glob(fileio.join(base, "a*.*")) == [fileio.join(base, "a.json"), fileio.join(base, "arr.npz")]
    assert fileio.glob(fileio.join(base, "*.json")) == [fileio.join(base, "a.json")]
    with fileio.local_copy(fileio.join(base, "a.json")) as local:
        assert json.load(open(local)) == {"k": 3}
    (tmp_path / "tree" / "v").mkdir(parents=True)
    (tmp_path / "tree" / "v" / "w.bin").write_bytes(b"w")
    fileio.copy_tree_to(str(tmp_path / "tree"), fileio.join(base, "tree"))
    assert fileio.read_bytes(fileio.join(base, "tree", "v", "w.bin")) == b"w"
    fileio.remove(fileio.join(base, "a.json"))
    assert not fileio.exists(fileio.join(base, "a.json"))


def test_a_failed_writer_leaves_no_object(remote):
    path = fileio.join(remote, "half.bin")
    with pytest.raises(ZeroDivisionError):
        with fileio.open_write(path) as fh:
            fh.write(b"half")
            1 / 0
    assert not fileio.exists(path)


def test_sample_table_and_aoi_are_read_from_the_store(mem):
    from s2mos_transforms.dataset import samples
    from s2mos_transforms.maps import tiling
    fileio.write_text(f"{mem}/in/samples.csv", "point_id,lat,lon,clay\nA,45.0,5.0,20\nB,45.1,5.1,130\n")
    table = samples.read_samples(f"{mem}/in/samples.csv")
    assert table.points["point_id"].tolist() == ["A"] and table.n_rows == 2
    with pytest.raises(UserError, match="missing.csv"):
        samples.read_samples(f"{mem}/in/missing.csv")
    geo = {"type": "Polygon", "coordinates": [[[5, 45], [5.1, 45], [5.1, 45.1], [5, 45.1], [5, 45]]]}
    fileio.write_json(f"{mem}/in/aoi.geojson", geo)
    assert tiling.read_aoi(f"{mem}/in/aoi.geojson").bounds == (5.0, 45.0, 5.1, 45.1)
    with pytest.raises(UserError, match="cannot read AOI file"):
        tiling.read_aoi(f"{mem}/in/none.geojson")


def test_cog_is_published_whole_and_reads_back(mem):
    import rasterio
    from rasterio.transform import from_origin
    from s2mos_transforms.maps import cog
    data = np.arange(3 * 32 * 32, dtype=np.float32).reshape(3, 32, 32)
    dest = f"{mem}/map/tiles/t.tif"
    assert not cog.exists(dest)
    cog.write_cog(dest, data, from_origin(500000, 5000000, 10, 10), "EPSG:32631",
                  band_names=("clay_mean", "clay_std", "n_obs"))
    assert cog.exists(dest) and fileio.glob(f"{mem}/map/tiles/*") == [dest]     # no temporary left
    with fileio.local_copy(dest) as local, rasterio.open(local) as ds:
        assert np.array_equal(ds.read(), data)
        assert cog.validate(local)[0]


def test_geotiff_stack_index_and_folder_on_the_store(mem, tmp_path):
    from s2mos_transforms.sources import stack_index
    index = "path,sensor,datetime,band,scene_cloud_pct\nS2/a.tif,S2,2018-05-01T10:30:00,B2;B3,4\n" \
            "S1/b.tif,S1,2018-05-02T05:00:00+02:00,VV,\ngone.tif,S2,2018-05-03,B4,\n"
    for name in ("S2/a.tif", "S1/b.tif"):
        fileio.write_bytes(f"{mem}/stack/{name}", b"tif")
    fileio.write_text(f"{mem}/stack/index.csv", index)
    acqs, notes = stack_index.load_stack(f"{mem}/stack")
    assert [(a.sensor, str(a.time)) for a in acqs] == [("S2", "2018-05-01T10:30:00"), ("S1", "2018-05-02T03:00:00")]
    assert acqs[0].files[0].path == f"{mem}/stack/S2/a.tif" and acqs[0].scene_cloud_pct == 4.0
    assert len(notes) == 1 and "gone.tif does not exist" in notes[0]
    folder = f"{mem}/layout"
    fileio.write_bytes(f"{folder}/S2/20180501T103000/B4.tif", b"tif")
    fileio.write_json(f"{folder}/S2/20180501T103000/meta.json", {"scene_cloud_pct": 7})
    fileio.write_bytes(f"{folder}/S1/20180502T050000_asc/VV.tif", b"tif")
    acqs, notes = stack_index.load_stack(folder)
    assert [(a.sensor, a.files[0].bands, a.scene_cloud_pct) for a in acqs][0] == ("S2", ("B4",), 7.0)
    assert acqs[1].files[0].path == f"{folder}/S1/20180502T050000_asc/VV.tif" and not notes


def test_a_rewrite_replaces_the_whole_file(remote):
    """TensorFlow's ram:// appends when a file is opened for writing again; fileio replaces it."""
    path = fileio.join(remote, "meta.json")
    fileio.write_json(path, {"long": "x" * 100})
    fileio.write_json(path, {"k": 1})
    assert fileio.read_json(path) == {"k": 1}


def test_list_files_walks_a_tree_at_any_depth(remote):
    root = fileio.join(remote, "cube.zarr")
    for name in ("zarr.json", "B8/zarr.json", "B8/c/0/0", "B8A/zarr.json", "B8A/c/0/0"):
        fileio.write_bytes(fileio.join(root, name), name.encode())
    assert fileio.list_files(root) == [fileio.join(root, n) for n in
                                       ("B8/c/0/0", "B8/zarr.json", "B8A/c/0/0", "B8A/zarr.json", "zarr.json")]
