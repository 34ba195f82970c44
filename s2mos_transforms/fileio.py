"""The one I/O module: local paths or any filesystem URI for every stage, so any data path may be a bucket.

Local paths use the standard library (no TensorFlow or Beam import for a CSV). A URI
(``scheme://…``) goes through Apache Beam's FileSystems when Beam has a filesystem for its
scheme (``gs://``, ``s3://``, ``hdfs://``, or any registered `FileSystem` subclass, such as
the tests' in-memory ``mem://``), else through ``tf.io.gfile`` (TensorFlow's ``ram://``, and
schemes only a TensorFlow plug-in knows). Nothing here calls ``open()`` on a URI: the tests
register a scheme that the operating system cannot open, so a bypass fails.
`check_writable` is the one up-front check of an output flag: every stage calls it before
any work, so an unwritable output is one line, not a traceback half-way through.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import uuid
from typing import Any, BinaryIO, Iterator

from s2mos_transforms.errors import UserError

_SCHEME = re.compile(r"^([a-zA-Z][-a-zA-Z0-9+.]*)://")


def join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def scheme(path: str) -> str | None:
    """The URI scheme of ``path`` (``gs``, ``mem``, ``ram`` …), None for a local path."""
    m = _SCHEME.match(path)
    return m.group(1).lower() if m else None


def is_remote(path: str) -> bool:
    return scheme(path) is not None


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def _parent(path: str) -> str:
    """The directory holding ``path`` ('' for a bare local file name)."""
    return path.rsplit("/", 1)[0] if "/" in path.rstrip("/") else ""


def _beam_fs(path: str):
    """Beam's FileSystem for the scheme of ``path``, or None when Beam has none (``ram://``)."""
    from apache_beam.io.filesystems import FileSystems
    try:
        return FileSystems.get_filesystem(path)
    except ValueError:
        return None


@contextlib.contextmanager
def _open_read(path: str) -> Iterator[BinaryIO]:
    fs = _beam_fs(path)
    if fs is None:
        with _gfile().GFile(path, "rb") as fh:
            yield fh
        return
    from apache_beam.io.filesystem import CompressionTypes
    fh = fs.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        yield fh
    finally:
        fh.close()


def upload(local: str, path: str) -> None:
    """Copy the local file ``local`` to the URI ``path`` in one piece (object stores take whole objects)."""
    fs = _beam_fs(path)
    if fs is None:
        gfile = _gfile()
        if gfile.exists(path):
            gfile.remove(path)       # TensorFlow's ram:// appends to an existing file instead of replacing it
        gfile.copy(local, path)
        return
    from apache_beam.io.filesystem import CompressionTypes
    out = fs.create(path, compression_type=CompressionTypes.UNCOMPRESSED)
    try:
        with open(local, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 22)
    except BaseException:
        out.close()                  # an object store commits on close: take the partial object away
        fs.delete([path])
        raise
    out.close()


def download(path: str, local: str) -> None:
    """Copy the file at the URI ``path`` to the local file ``local``."""
    with _open_read(path) as src, open(local, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 22)


def remove(path: str) -> None:
    """Delete one file (local or URI)."""
    if not is_remote(path):
        os.remove(path)
        return
    fs = _beam_fs(path)
    if fs is None:
        _gfile().remove(path)
    else:
        fs.delete([path])


def glob(pattern: str) -> list[str]:
    """Sorted paths matching ``pattern`` (``*`` within one path segment)."""
    if not is_remote(pattern):
        import glob as _glob
        return sorted(_glob.glob(pattern))
    fs = _beam_fs(pattern)
    if fs is None:
        return sorted(_gfile().glob(pattern))
    return sorted(m.path for m in fs.match([pattern])[0].metadata_list)


def list_files(root: str) -> list[str]:
    """Sorted paths of every file under the directory or prefix ``root``, at any depth."""
    root = root.rstrip("/")
    if not is_remote(root):
        return sorted(os.path.join(d, f) for d, _, files in os.walk(root) for f in files)
    fs = _beam_fs(root)
    if fs is not None:
        return sorted(m.path for m in fs.match([root + "/**"])[0].metadata_list)
    gfile = _gfile()
    found = [join(d, f) for d, _, files in gfile.walk(root) for f in files]
    # TensorFlow's ram:// lists a name under every prefix of it (B8A's files under B8 too): keep real files.
    return sorted(p for p in found if gfile.exists(p) and not gfile.isdir(p))


def makedirs(path: str) -> None:
    """Create a directory and its parents; nothing to do on object stores (no directories)."""
    if not path:
        return
    if not is_remote(path):
        os.makedirs(path, exist_ok=True)
        return
    fs = _beam_fs(path)
    if fs is None:
        _gfile().makedirs(path)
    elif fs.has_dirs() and not fs.exists(path):
        fs.mkdirs(path)


def exists(path: str) -> bool:
    if not is_remote(path):
        return os.path.exists(path)
    fs = _beam_fs(path)
    return _gfile().exists(path) if fs is None else fs.exists(path)


def write_bytes(path: str, data: bytes) -> str:
    with open_write(path) as fh:
        fh.write(data)
    return path


@contextlib.contextmanager
def open_read(path: str) -> Iterator[BinaryIO]:
    """A binary file to read from, local or remote (streamed, not read whole)."""
    if is_remote(path):
        with _open_read(path) as fh:
            yield fh
        return
    with open(path, "rb") as fh:
        yield fh


def read_bytes(path: str) -> bytes:
    with open_read(path) as fh:
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
    with local_target(path) as local:
        with open(local, "wb") as fh:
            yield fh


@contextlib.contextmanager
def local_target(path: str) -> Iterator[str]:
    """A local file name to write ``path`` through, for writers that want a name (TensorFlow's
    TFRecordWriter, Keras): a temporary sibling renamed into place locally, a temporary file
    uploaded whole for a URI; nothing appears under ``path`` if the writer fails."""
    makedirs(_parent(path))
    if not is_remote(path):
        tmp = f"{path}.tmp-{uuid.uuid4().hex}"
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return
    with tempfile.TemporaryDirectory(prefix="s2mos-upload-") as tmp:
        local = os.path.join(tmp, path.rstrip("/").rsplit("/", 1)[-1])
        yield local
        upload(local, path)


@contextlib.contextmanager
def local_copy(path: str) -> Iterator[str]:
    """A local path for reading ``path`` (copied to a temporary directory when remote), for
    libraries that want a file name (rasterio, h5py)."""
    if not is_remote(path):
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="s2mos-read-") as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        download(path, local)
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
            write_bytes(probe, b"")
            remove(probe)
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
    """model.save to a local path, or to a local temporary file uploaded whole to a URI."""
    if not is_remote(path):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        model.save(path)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        model.save(local)
        upload(local, path)


def load_keras(path: str):
    import keras
    if not is_remote(path):
        return keras.saving.load_model(path, compile=False)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        download(path, local)
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
    """Upload a local directory tree (e.g. a SavedModel written locally) to a URI."""
    for root, _, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        target = remote_dir if rel == "." else join(remote_dir, rel)
        makedirs(target)
        for f in files:
            upload(os.path.join(root, f), join(target, f))


def remove_local_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
