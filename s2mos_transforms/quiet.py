"""Library start-up noise, hidden unless ``s2mos --verbose``.

TensorFlow, absl, gRPC, Beam and pandas/Keras write dozens of lines to stderr before a
command prints anything (cuInit errors, oneDNN notes, "All log messages before
absl::InitializeLog()", the cudart stub, cpu_feature_guard, FutureWarnings). `configure`
turns them off *before any heavy import*:

* environment (a value the user set is kept): ``TF_CPP_MIN_LOG_LEVEL=3``,
  ``GRPC_VERBOSITY=ERROR``, ``GLOG_minloglevel=2``; ``TF_ENABLE_ONEDNN_OPTS`` is left alone;
* Python loggers: absl and TensorFlow at ERROR, Beam at WARNING; warnings that libraries
  log on the *root* logger (Beam's RunInference does) are dropped, their errors kept;
* Python warnings: DeprecationWarning / FutureWarning / PendingDeprecationWarning raised
  from library modules;
* the lines absl writes from C++ *while TensorFlow loads*, before any log level applies:
  file descriptor 2 points at /dev/null during ``import tensorflow`` only (an import hook,
  so commands that never need TensorFlow never load it), and is restored right after, so
  our own errors and a failing import's traceback still show.

Beam's multi-process workers inherit ``S2MOS_QUIET=1`` and call `hush_worker` in their
DoFn ``setup``, which installs the same import hook there.
"""
from __future__ import annotations

import contextlib
import importlib.abc
import logging
import os
import re
import sys
import warnings
from typing import Iterator

QUIET_ENV: dict[str, str] = {
    "TF_CPP_MIN_LOG_LEVEL": "3",     # TensorFlow C++ logs after absl is initialised: fatal only
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
}
MARKER_ENV = "S2MOS_QUIET"           # inherited by worker processes
LIBRARY_MODULES = r"(pandas|numpy|keras|tensorflow|tf_keras|apache_beam|google|absl|tfx_bsl|tensorflow_metadata" \
                  r"|sklearn|scipy|pyarrow|rasterio|rio_cogeo|matplotlib|grpc|proto|jax|h5py|ml_dtypes)(\..*)?$"
HUSHED_IMPORTS = ("tensorflow",)

_verbose: bool | None = None


def configure(verbose: bool) -> None:
    """Apply the quiet settings (or, with ``verbose``, leave every library as it is)."""
    global _verbose
    if _verbose is not None:          # a nested `s2mos` call (the demo) keeps the first choice
        return
    _verbose = bool(verbose)
    if verbose:
        return
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ[MARKER_ENV] = "1"
    for name, level in (("absl", logging.ERROR), ("tensorflow", logging.ERROR), ("apache_beam", logging.WARNING),
                        # worker logs relayed by the DirectRunner (multi_processing): their errors only
                        ("apache_beam.runners.portability.local_job_service", logging.ERROR),
                        ("h5py", logging.ERROR), ("matplotlib", logging.WARNING)):
        logging.getLogger(name).setLevel(level)
    logging.getLogger().addFilter(_drop_library_root_warnings)
    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=LIBRARY_MODULES)
    install_import_hook()


def _drop_library_root_warnings(record: logging.LogRecord) -> bool:
    """Root-logger filter: False (drop) for a below-ERROR record logged from a library file."""
    if record.levelno >= logging.ERROR:
        return True
    path = record.pathname.replace(os.sep, "/")
    return not ("-packages/" in path and re.match(LIBRARY_MODULES, path.split("-packages/", 1)[1].split("/")[0]))


def is_verbose() -> bool:
    return bool(_verbose)


def hush_worker() -> None:
    """In a Beam worker process started by a quiet ``s2mos``: hush the TensorFlow import too."""
    if os.environ.get(MARKER_ENV) == "1":
        install_import_hook()


@contextlib.contextmanager
def stderr_to_devnull() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the block (C/C++ writes included), then restore it."""
    try:
        sys.stderr.flush()
    except (AttributeError, ValueError):
        pass
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        try:
            sys.stderr.flush()
        except (AttributeError, ValueError):
            pass
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class _HushedImport(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the real loader of the listed top-level modules so that
    their first import runs under `stderr_to_devnull`, then steps aside."""

    def __init__(self, names: tuple[str, ...]):
        self.names = set(names)

    def find_spec(self, fullname, path, target=None):
        if fullname not in self.names:
            return None
        self.names.discard(fullname)
        if not self.names and self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        loader = spec.loader
        real_exec = loader.exec_module

        def exec_quietly(module):
            try:
                with stderr_to_devnull():
                    real_exec(module)
            finally:
                loader.__dict__.pop("exec_module", None)   # later (re)loads run as usual

        loader.exec_module = exec_quietly
        return spec


def install_import_hook(names: tuple[str, ...] = HUSHED_IMPORTS) -> None:
    """Hush the first import of each of ``names`` not imported yet (idempotent)."""
    pending = tuple(n for n in names if n not in sys.modules)
    if not pending or any(isinstance(f, _HushedImport) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _HushedImport(pending))
