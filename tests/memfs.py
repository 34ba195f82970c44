"""An in-memory Beam FileSystem (scheme ``mem://``) that stands in for ``gs://`` in tests.

Beam finds a FileSystem by scheme among every imported subclass of
``apache_beam.io.filesystem.FileSystem`` (``FileSystems.get_filesystem``), so importing this
module registers it. Like Cloud Storage it has objects, no directories: ``exists`` is true
for objects only, and deleting a prefix deletes what is under it. Its objects live in this
process (the DirectRunner runs bundles in-process), and the operating system cannot open
``mem://…``, so a stage that passes its tests with every path here went through Beam's
FileSystems (via `s2mos_transforms.fileio` or Beam's own IO) for every byte.
"""
from __future__ import annotations

import io
import time
import uuid

from apache_beam.io.filesystem import (BeamIOError, CompressedFile, CompressionTypes, FileMetadata,
                                       FileSystem)

SCHEME = "mem"


class _Object(io.BytesIO):
    """A write channel: the object appears, whole, when it is closed (as on Cloud Storage)."""

    def __init__(self, store: dict, path: str):
        super().__init__()
        self._store, self._path = store, path

    def close(self) -> None:
        if not self.closed:
            self._store[self._path] = (self.getvalue(), time.time())
        super().close()


class MemoryFileSystem(FileSystem):
    """``mem://bucket/key`` objects in one process-wide dict."""

    OBJECTS: dict[str, tuple[bytes, float]] = {}

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    def join(self, basepath: str, *paths: str) -> str:
        return "/".join([basepath.rstrip("/")] + [p.strip("/") for p in paths])

    def split(self, path: str) -> tuple[str, str]:
        head, _, tail = path.rstrip("/").rpartition("/")
        return head, tail

    def mkdirs(self, path: str) -> None:
        pass                                     # no directories, as on an object store

    def has_dirs(self) -> bool:
        return False

    def _list(self, dir_or_prefix: str):
        for path, (data, mtime) in sorted(self.OBJECTS.items()):
            if path.startswith(dir_or_prefix):
                yield FileMetadata(path, len(data), mtime)

    def create(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        raw = _Object(self.OBJECTS, path)
        kind = self._get_compression_type(path, compression_type)
        return raw if kind == CompressionTypes.UNCOMPRESSED else CompressedFile(raw, kind)

    def open(self, path, mime_type="application/octet-stream", compression_type=CompressionTypes.AUTO):
        if path not in self.OBJECTS:
            raise BeamIOError("open failed", {path: FileNotFoundError(path)})
        raw = io.BytesIO(self.OBJECTS[path][0])
        kind = self._get_compression_type(path, compression_type)
        return raw if kind == CompressionTypes.UNCOMPRESSED else CompressedFile(raw, kind)

    def _under(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return [p for p in self.OBJECTS if p.startswith(prefix)]

    def copy(self, source_file_names, destination_file_names):
        errors = {}
        for src, dst in zip(source_file_names, destination_file_names):
            if src in self.OBJECTS:
                self.OBJECTS[dst] = self.OBJECTS[src]
            elif self._under(src):
                for p in self._under(src):
                    self.OBJECTS[dst.rstrip("/") + p[len(src.rstrip("/")):]] = self.OBJECTS[p]
            else:
                errors[(src, dst)] = FileNotFoundError(src)
        if errors:
            raise BeamIOError("copy failed", errors)

    def rename(self, source_file_names, destination_file_names):
        self.copy(source_file_names, destination_file_names)
        self.delete(source_file_names)

    def exists(self, path: str) -> bool:
        return path in self.OBJECTS

    def size(self, path: str) -> int:
        return self.metadata(path).size_in_bytes

    def last_updated(self, path: str) -> float:
        return self.metadata(path).last_updated_in_seconds

    def checksum(self, path: str) -> str:
        return str(self.size(path))

    def metadata(self, path: str) -> FileMetadata:
        if path not in self.OBJECTS:
            raise BeamIOError("metadata failed", {path: FileNotFoundError(path)})
        data, mtime = self.OBJECTS[path]
        return FileMetadata(path, len(data), mtime)

    def delete(self, paths) -> None:
        for path in paths:
            self.OBJECTS.pop(path, None)
            for p in self._under(path):
                del self.OBJECTS[p]


def new_root() -> str:
    """A fresh ``mem://`` bucket for one test."""
    return f"{SCHEME}://s2mos-test-{uuid.uuid4().hex[:8]}"


def clear(root: str) -> None:
    """Forget every object under ``root``."""
    for p in [p for p in MemoryFileSystem.OBJECTS if p.startswith(root.rstrip("/") + "/")]:
        del MemoryFileSystem.OBJECTS[p]
