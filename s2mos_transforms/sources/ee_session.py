"""Earth Engine start-up: credentials and ``ee.Initialize``, once per process.

The ``ee`` module keeps its state in a module global, so every worker process initialises it
itself (the source factory runs in each DoFn ``setup``); a second source built in the same
process with the same settings reuses the initialisation. Only plain values cross process
boundaries: the project, ``adc`` or a key-file *path*, the endpoint name.

Credentials never leave this module: errors name the flag and the path, never the key.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from s2mos_transforms.sources.base import SourceError

ENDPOINTS = {"standard": "https://earthengine.googleapis.com",
             "highvolume": "https://earthengine-highvolume.googleapis.com"}
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",
          "https://www.googleapis.com/auth/earthengine")

# An httplib2.Http look-alike factory used instead of the network (the offline tests and the
# benchmark set it; `None` in production). Everything above the transport is the real client.
HTTP_TRANSPORT: Callable[[], Any] | None = None

_LOCK = threading.Lock()
_DONE: dict[str, Any] = {"key": None}


def load_credentials(spec: str):
    """``adc``: Application Default Credentials (gcloud auth application-default login, or
    the worker's service account on Dataflow); otherwise the path of a service-account key
    file (JSON or PEM)."""
    if spec == "adc":
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError
        try:
            creds, _ = google.auth.default(scopes=list(SCOPES))
        except DefaultCredentialsError:
            raise SourceError("--ee-credentials adc: no Application Default Credentials found (run "
                              "'gcloud auth application-default login', or pass a service-account "
                              "key file)") from None
        return creds
    import ee
    try:
        return ee.ServiceAccountCredentials(None, key_file=spec)
    except FileNotFoundError:
        raise SourceError(f"--ee-credentials {spec}: no such key file") from None
    except Exception as err:                             # noqa: BLE001 — never echo the key
        raise SourceError(f"--ee-credentials {spec}: not a usable service-account key file "
                          f"({type(err).__name__})") from None


def initialize(project: str, credentials: str, endpoint: str, deadline_s: float = 0.0) -> None:
    """``ee.Initialize`` for these settings unless this process already did it; the
    library's own retries off (`ee_faults` is the one retry policy); a request that hangs
    past `deadline_s` (0: none) ends in a ``TimeoutError`` of the transport, retried."""
    transport = HTTP_TRANSPORT() if HTTP_TRANSPORT is not None else None
    key = (project, credentials, endpoint, deadline_s, None if HTTP_TRANSPORT is None else id(HTTP_TRANSPORT))
    with _LOCK:
        if _DONE["key"] == key:
            return
        import ee
        creds = load_credentials(credentials)
        try:
            ee.Initialize(creds, url=ENDPOINTS[endpoint], project=project, http_transport=transport)
        except ee.EEException as err:
            from s2mos_transforms.sources.ee_faults import reason_of
            raise SourceError(f"Earth Engine refused to start for project {project!r}: "
                              f"{reason_of(err)}") from None
        except Exception as err:                         # noqa: BLE001 — connection, auth
            raise SourceError(f"cannot reach Earth Engine ({ENDPOINTS[endpoint]}) for project "
                              f"{project!r}: {type(err).__name__}") from None
        ee.data.setMaxRetries(0)
        if deadline_s:
            ee.data.setDeadline(deadline_s * 1000.0)     # the requests session's timeout
        _DONE["key"] = key


def reset() -> None:
    """Forget the initialisation (tests that switch transports)."""
    with _LOCK:
        _DONE["key"] = None
