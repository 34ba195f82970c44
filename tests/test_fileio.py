"""The one I/O module: a non-local filesystem gets the same bytes as a local directory.

TensorFlow's in-memory ``ram://`` filesystem stands in for ``gs://``: it takes the same
remote code path of `fileio` (tf.io.gfile), with no bucket or credentials needed.
"""
from __future__ import annotations

import os
import uuid

import pytest

from s2mos_transforms import fileio
from s2mos_transforms.errors import UserError
from s2mos_transforms.world.export import export_world
from s2mos_transforms.world.preview import preview_world


@pytest.fixture
def remote():
    return f"ram://s2mos-test-{uuid.uuid4().hex[:8]}"


@pytest.mark.slow
def test_world_export_and_preview_write_the_same_bytes_remotely(tmp_path, remote):
    local = export_world("quick", str(tmp_path / "w"), n_points=4, progress=False)
    far = export_world("quick", fileio.join(remote, "w"), n_points=4, progress=False)
    assert far == local
    for name in local["files"]:
        assert fileio.read_bytes(fileio.join(remote, "w", name)) == (tmp_path / "w" / name).read_bytes(), name
    written = preview_world("quick", fileio.join(remote, "p"), n_points=1)
    assert written == [fileio.join(remote, "p", "truth_clay.png"), fileio.join(remote, "p", "trajectories.png")]
    local_png = preview_world("quick", str(tmp_path / "p"), n_points=1)
    assert [fileio.read_bytes(p) for p in written] == [open(p, "rb").read() for p in local_png]


def test_open_write_streams_and_creates_parents(tmp_path, remote):
    for base in (str(tmp_path), remote):
        path = fileio.join(base, "a", "b", "data.bin")
        with fileio.open_write(path) as fh:
            fh.write(b"12")
            fh.write(b"34")
        assert fileio.read_bytes(path) == b"1234" and fileio.exists(path)
        fileio.write_json(fileio.join(base, "x.json"), {"k": 1})
        assert fileio.read_json(fileio.join(base, "x.json")) == {"k": 1}


def test_write_bytes_with_a_bare_file_name_makes_no_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fileio.write_bytes("plain.bin", b"x")
    assert os.path.isfile(tmp_path / "plain.bin")


def test_check_writable_leaves_nothing_and_names_the_problem(tmp_path, remote):
    fileio.check_writable(str(tmp_path / "new" / "dir"), "--out")
    fileio.check_writable(remote + "/out", "--out")
    fileio.check_writable(str(tmp_path / "new" / "f.json"), "--json", is_file=True)
    assert os.listdir(tmp_path) == []
    (tmp_path / "f").write_text("")
    cases = [((str(tmp_path / "f"), "--out"), "exists and is not a directory"),
             ((str(tmp_path / "f" / "x"), "--out"), "is a file, not a directory"),
             ((str(tmp_path), "--json", True), "is a directory"),
             (("/proc/s2mos-x", "--out"), "cannot write to output directory (/proc"),
             (("", "--out"), "--out is empty")]
    for args, message in cases:
        with pytest.raises(UserError, match=None) as err:
            fileio.check_writable(*args)
        assert message in str(err.value) and "\n" not in str(err.value)
