"""Earth Engine errors, classified, and the one retry policy of the `earthengine` source.

Every failed request is one of three kinds (`classify`), decided from the HTTP status (which
``ee.data`` leaves on the exception's ``__context__``) and the server's message:

* ``retry``: overload or a transient fault — 429, ``RESOURCE_EXHAUSTED``, 'Too many concurrent
  aggregations', quota/rate limits, 5xx, connection errors and timeouts of the transport;
  'Computation timed out' is retried once only (a second time it is permanent). Retried with
  exponential backoff and full jitter, up to ``max_retries`` times, then permanent.
* ``split``: the request is too big — request/payload size, 'Too many values', 'User memory
  limit exceeded', 'Collection query aborted'. The caller halves it and tries the halves.
* ``permanent``: anything else (other 4xx, a missing asset, no permission). The points of the
  request are rejected with the reason; the job goes on.

The library's own retries are switched off (``ee.data.setMaxRetries(0)`` in `ee_session`), so
this module is the only policy, and its counters see every attempt.
"""
from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections import Counter
from typing import Any, Callable

RETRY, SPLIT, PERMANENT = "retry", "split", "permanent"
TIMED_OUT = "Computation timed out"

# 'too many bands' is a guess at the wording of a band-count error (not seen live; the band
# count is capped before sending, `ee_tiles.MAX_BANDS_PER_REQUEST`).
SPLIT_MARKERS = ("request size", "payload size", "request payload", "too many values", "too many bands",
                 "user memory limit exceeded", "collection query aborted", "too large")
RETRY_MARKERS = ("resource_exhausted", "too many concurrent aggregations", "quota", "rate limit",
                 "too many requests", "service unavailable", "internal error", "backend error",
                 "deadline exceeded")


def http_status(exc: BaseException) -> int | None:
    """The HTTP status behind an ``ee.EEException`` (its ``__context__`` is the HttpError)."""
    for err in (exc, exc.__context__, exc.__cause__):
        resp = getattr(err, "resp", None)
        status = getattr(resp, "status", None)
        if status is not None:
            try:
                return int(status)
            except (TypeError, ValueError):
                return None
    return None


def reason_of(exc: BaseException) -> str:
    """One line naming the failure: the status (if any) and the server's message."""
    status = http_status(exc)
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
    return f"HTTP {status}: {text}" if status else text


def classify(exc: BaseException) -> str:
    """``retry``, ``split`` or ``permanent`` for one failed request (module docstring)."""
    text = str(exc).lower()
    status = http_status(exc)
    if any(m in text for m in SPLIT_MARKERS) or status == 413:
        return SPLIT
    if status is None and isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return RETRY
    if TIMED_OUT.lower() in text:
        return RETRY
    if status == 429 or (status is not None and status >= 500) or any(m in text for m in RETRY_MARKERS):
        return RETRY
    return PERMANENT


class NeedsSplit(Exception):
    """The request was too big for Earth Engine: halve it and try again."""


class Permanent(Exception):
    """The request cannot succeed; the message is the reason given to its points."""


@dataclasses.dataclass
class RetryPolicy:
    """Exponential backoff with full jitter: attempt k waits uniform(0, min(cap, base·2^k))."""

    max_retries: int = 6
    backoff_s: float = 1.0
    max_backoff_s: float = 60.0
    seed: int | None = None

    def __post_init__(self):
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def delay(self, attempt: int) -> float:
        with self._lock:
            return self._rng.uniform(0.0, min(self.max_backoff_s, self.backoff_s * 2.0 ** attempt))


class RateLimiter:
    """At most `rate` request starts per second in this process (token bucket, burst 1),
    shared by every thread; ``rate`` None or ≤ 0 means no limit."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self.interval = 1.0 / rate if rate and rate > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()
        self._clock, self._sleep = clock, sleep

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)


class Counters:
    """Thread-safe counts of requests, retries, splits, failures and bytes received.

    Beam counters are thread-local to the DoFn's thread, so the source keeps these and the
    DoFn thread publishes their increments (`drain`)."""

    NAMES = ("ee_requests", "ee_retries", "ee_splits", "ee_failed_requests", "ee_bytes", "ee_pages",
             "ee_images_skipped")

    def __init__(self):
        self._lock = threading.Lock()
        self.totals: Counter = Counter()
        self._unpublished: Counter = Counter()
        self.inflight = 0
        self.max_inflight_seen = 0

    def inc(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.totals[name] += n
            self._unpublished[name] += n

    def enter(self) -> None:
        with self._lock:
            self.inflight += 1
            self.max_inflight_seen = max(self.max_inflight_seen, self.inflight)

    def leave(self) -> None:
        with self._lock:
            self.inflight -= 1

    def drain(self) -> dict[str, int]:
        """The increments since the last drain (to publish as Beam counters)."""
        with self._lock:
            out, self._unpublished = dict(self._unpublished), Counter()
        return out


def call_with_retries(send: Callable[[], Any], policy: RetryPolicy, counters: Counters,
                      limiter: RateLimiter, gate: threading.Semaphore,
                      sleep: Callable[[float], None] = time.sleep) -> Any:
    """``send()`` under the in-flight cap and rate limit, retried per `classify`.

    Raises `NeedsSplit` (too big) or `Permanent` (with the reason); anything `send` raises
    that is not an Earth Engine or transport error (a bug of ours) propagates unchanged."""
    timed_out_once = False
    attempt = 0
    while True:
        limiter.wait()
        with gate:
            counters.enter()
            counters.inc("ee_requests")
            try:
                return send()
            except Exception as exc:                      # noqa: BLE001 — classified below
                if not _is_remote(exc):
                    raise
                kind, err = classify(exc), exc
            finally:
                counters.leave()
        counters.inc("ee_failed_requests")
        if kind == SPLIT:
            raise NeedsSplit(reason_of(err)) from None
        is_timeout = TIMED_OUT.lower() in str(err).lower()
        if kind == PERMANENT or attempt >= policy.max_retries or (is_timeout and timed_out_once):
            why = reason_of(err)
            if kind == RETRY:
                why = f"{why} (gave up after {attempt + 1} attempts)"
            raise Permanent(why) from None
        timed_out_once |= is_timeout
        counters.inc("ee_retries")
        sleep(policy.delay(attempt))
        attempt += 1


def _is_remote(exc: BaseException) -> bool:
    """An error of Earth Engine or of the way to it (not a bug in our own code)."""
    import ee
    return isinstance(exc, (ee.EEException, ConnectionError, TimeoutError, OSError)) or \
        type(exc).__module__.startswith(("googleapiclient", "httplib2", "google.auth"))
