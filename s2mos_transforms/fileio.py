"""The one I/O module: local or gs:// paths for every stage, so any data path may be a bucket.

Local paths use the standard library (no TensorFlow import for a CSV); remote paths
(``gs://``, and TensorFlow's ``ram://`` used in tests) go through ``tf.io.gfile``.
`check_writable` is the one up-front check of an output flag: every stage calls it before
any work, so an unwritable output is one line, not a traceback half-way through.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from typing import Any, BinaryIO, Iterator

from s2mos_transforms.errors import UserError


def join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def is_remote(path: str) -> bool:
    return "://" in path


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def _parent(path: str) -> str:
    """The directory holding ``path`` ('' for a bare local file name)."""
    return path.rsplit("/", 1)[0] if "/" in path.rstrip("/") else ""


def makedirs(path: str) -> None:
    if not path:
        return
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def write_bytes(path: str, data: bytes) -> str:
    with open_write(path) as fh:
        fh.write(data)
    return path


def read_bytes(path: str) -> bytes:
    if is_remote(path):
        with _gfile().GFile(path, "rb") as fh:
            return fh.read()
    with open(path, "rb") as fh:
        return fh.read()


def write_text(path: str, text: str) -> str:
    return write_bytes(path, text.encode("utf-8"))


def read_text(path: str) -> str:
    return read_bytes(path).decode("utf-8")


def write_json(path: str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str) -> Any:
    return json.loads(read_text(path))


@contextlib.contextmanager
def open_write(path: str) -> Iterator[BinaryIO]:
    """A binary file to stream into (a Parquet writer, a GeoTIFF); parent directories are created.

    Atomic: locally written to a temporary sibling and renamed into place; remote, written to a
    local temporary file and copied up on success (object stores take whole objects). Either
    way nothing half-written appears under ``path`` if the writer fails.
    """
    makedirs(_parent(path))
    if not is_remote(path):
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            with open(tmp, "wb") as fh:
                yield fh
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    with tempfile.TemporaryDirectory(prefix="s2mos-upload-") as tmp:
        local = os.path.join(tmp, "part")
        with open(local, "wb") as fh:
            yield fh
        _gfile().copy(local, path, overwrite=True)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path for reading ``path`` (copied to a temporary directory when remote), for
    libraries that want a file name (rasterio, h5py)."""
    if not is_remote(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="s2mos-read-") as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        _gfile().copy(path, local, overwrite=True)
        yield local


def check_writable(path: str, flag: str, is_file: bool = False) -> None:
    """UserError ``FLAG PATH: why`` unless the output directory (or, with ``is_file``, the
    output file) can be created or written at ``path``; every stage calls it before any work.

    Leaves nothing behind: locally it probes the nearest existing directory (the output
    itself, or the ancestor it would be created in); remotely it writes and deletes a
    probe object, which is what fails without credentials or with a missing bucket.
    """
    what = "the output file" if is_file else "to output directory"
    if not path or not path.strip("/"):
        raise UserError(f"{flag} is empty")
    if is_remote(path):
        probe = f"{path}.s2mos-write-test-{uuid.uuid4().hex[:8]}" if is_file else \
            join(path, f".s2mos-write-test-{uuid.uuid4().hex[:8]}")
        try:
            gfile = _gfile()
            with gfile.GFile(probe, "wb") as fh:
                fh.write(b"")
            gfile.remove(probe)
        except Exception as err:  # noqa: BLE001 — any failure of the store (credentials, bucket, network)
            raise UserError(f"{flag} {path}: cannot write {what} ({_first_line(err)})") from None
        return
    if os.path.isdir(path) if is_file else (os.path.exists(path) and not os.path.isdir(path)):
        raise UserError(f"{flag} {path}: {'is a directory' if is_file else 'exists and is not a directory'}")
    ancestor = os.path.abspath(path if not is_file else os.path.dirname(os.path.abspath(path)))
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise UserError(f"{flag} {path}: {ancestor} is a file, not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".s2mos-write-test-", dir=ancestor)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise UserError(f"{flag} {path}: cannot write {what} ({ancestor}: {err.strerror or err})") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _json_default(o: Any):
    import numpy as np
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def save_keras(model, path: str) -> None:
    """model.save to a local path, or via a local temp file then gfile copy for gs://."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        model.save(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        model.save(local)
        _gfile().copy(local, path, overwrite=True)


def load_keras(path: str):
    import keras
    if not is_remote(path):
        return keras.saving.load_model(path, compile=False)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        _gfile().copy(path, local, overwrite=True)
        return keras.saving.load_model(local, compile=False)


def save_npz(path: str, **arrays) -> None:
    import io
    import numpy as np
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(path, buf.getvalue())


def load_npz(path: str) -> dict:
    import io
    import numpy as np
    with np.load(io.BytesIO(read_bytes(path)), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def copy_tree_to(local_dir: str, remote_dir: str) -> None:
    """Upload a local directory tree (e.g. a SavedModel written locally) to gs://."""
    gfile = _gfile()
    for root, _, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        target = remote_dir if rel == "." else join(remote_dir, rel)
        gfile.makedirs(target)
        for f in files:
            gfile.copy(os.path.join(root, f), join(target, f), overwrite=True)


def remove_local_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
