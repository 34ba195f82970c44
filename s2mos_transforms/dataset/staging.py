"""The output directory of `s2mos build-dataset`: checked first, built aside, swapped in whole.

The run writes into a fresh staging sibling of ``--out`` and only a dataset that passed the
accounting check replaces ``--out``, so ``--out`` never holds a mix of two runs. Every
problem with the location (a file, a read-only or missing parent, /proc, a bucket without
credentials, a full disk when creating the staging directory) is one `UserError` line.
"""
from __future__ import annotations

import os
import shutil
import uuid

from s2mos_transforms import fileio
from s2mos_transforms.dataset.finalize import SUMMARY_FILE
from s2mos_transforms.dataset.pipeline import PARTS_DIR
from s2mos_transforms.errors import UserError


def prepare_output(out: str) -> str:
    """Check the output location and create a fresh staging sibling; returns its path."""
    out = out.rstrip("/")
    fileio.check_writable(out, "--out")
    if not fileio.is_remote(out):
        if os.path.isdir(out) and os.listdir(out) and not os.path.exists(os.path.join(out, SUMMARY_FILE)):
            raise UserError(f"--out {out}: directory is not empty and holds no s2mos dataset "
                            f"(no {SUMMARY_FILE}); refusing to replace it")
        parent = os.path.dirname(os.path.abspath(out))
        staging = os.path.join(parent, f".{os.path.basename(out)}.staging-{uuid.uuid4().hex[:8]}")
        try:
            os.makedirs(os.path.join(staging, PARTS_DIR))
        except OSError as err:
            raise UserError(f"--out {out}: cannot create the staging directory {staging} "
                            f"({err.strerror or err})") from None
        return staging
    from apache_beam.io.filesystems import FileSystems
    try:
        existing = FileSystems.match([out + "/*"])[0].metadata_list
        has_dataset = FileSystems.exists(f"{out}/{SUMMARY_FILE}")
    except Exception as err:  # noqa: BLE001 — any failure of the store (credentials, bucket, network)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"--out {out}: cannot list it ({first})") from None
    if existing and not has_dataset:
        raise UserError(f"--out {out}: holds files but no s2mos dataset ({SUMMARY_FILE}); refusing to replace it")
    return f"{out}.staging-{uuid.uuid4().hex[:8]}"


def swap_into_place(staging: str, out: str) -> None:
    """Replace ``out`` by ``staging`` whole (never a mix of two runs)."""
    out = out.rstrip("/")
    if not fileio.is_remote(out):
        old = None
        if os.path.exists(out):
            old = f"{staging}.old"
            os.rename(out, old)
        os.rename(staging, out)
        if old:
            shutil.rmtree(old, ignore_errors=True)
        return
    from apache_beam.io.filesystems import FileSystems
    old = [m.path for m in FileSystems.match([out + "/**"])[0].metadata_list]
    if old:
        FileSystems.delete(old)
    src = [m.path for m in FileSystems.match([staging + "/**"])[0].metadata_list]
    FileSystems.rename(src, [out + p[len(staging):] for p in src])
    rest = [m.path for m in FileSystems.match([staging + "/**"])[0].metadata_list]
    if rest:
        FileSystems.delete(rest)


def remove(path: str) -> None:
    """Delete a staging directory (local or remote), after a failed run."""
    if fileio.is_remote(path):
        from apache_beam.io.filesystems import FileSystems
        found = [m.path for m in FileSystems.match([path + "/**"])[0].metadata_list]
        if found:
            FileSystems.delete(found)
    else:
        shutil.rmtree(path, ignore_errors=True)
