"""The one I/O module: local or gs:// paths for every stage (tf.io.gfile), so any data path may be a bucket."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any


def join(*parts: str) -> str:
    return "/".join([parts[0].rstrip("/")] + [p.strip("/") for p in parts[1:]])


def is_remote(path: str) -> bool:
    return "://" in path


def makedirs(path: str) -> None:
    import tensorflow as tf
    tf.io.gfile.makedirs(path)


def exists(path: str) -> bool:
    import tensorflow as tf
    return tf.io.gfile.exists(path)


def write_text(path: str, text: str) -> None:
    import tensorflow as tf
    parent = path.rsplit("/", 1)[0]
    if parent and parent != path:
        tf.io.gfile.makedirs(parent)
    with tf.io.gfile.GFile(path, "w") as fh:
        fh.write(text)


def read_text(path: str) -> str:
    import tensorflow as tf
    with tf.io.gfile.GFile(path) as fh:
        return fh.read()


def write_json(path: str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str) -> Any:
    return json.loads(read_text(path))


def write_bytes(path: str, data: bytes) -> None:
    import tensorflow as tf
    tf.io.gfile.makedirs(path.rsplit("/", 1)[0])
    with tf.io.gfile.GFile(path, "wb") as fh:
        fh.write(data)


def read_bytes(path: str) -> bytes:
    import tensorflow as tf
    with tf.io.gfile.GFile(path, "rb") as fh:
        return fh.read()


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
        with open(local, "rb") as fh:
            write_bytes(path, fh.read())


def load_keras(path: str):
    import keras
    if not is_remote(path):
        return keras.saving.load_model(path, compile=False)
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, os.path.basename(path))
        with open(local, "wb") as fh:
            fh.write(read_bytes(path))
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
    import tensorflow as tf
    for root, _, files in os.walk(local_dir):
        rel = os.path.relpath(root, local_dir)
        target = remote_dir if rel == "." else join(remote_dir, rel)
        tf.io.gfile.makedirs(target)
        for f in files:
            tf.io.gfile.copy(os.path.join(root, f), join(target, f), overwrite=True)


def remove_local_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
