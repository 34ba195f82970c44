"""The `earthengine` source's retry policy, pure: error classification, backoff with jitter,
the rate limiter, the request plan (no client, no transport)."""
from __future__ import annotations

import numpy as np
import pytest

from s2mos_transforms.sources import ee_faults


# ---- the policy itself (pure) -----------------------------------------------------------------

class _Http(Exception):
    def __init__(self, status):
        self.resp = type("R", (), {"status": status})()


def _ee_error(status, message):
    import ee
    try:
        try:
            raise _Http(status)
        except _Http:
            raise ee.EEException(message)
    except ee.EEException as err:
        return err


@pytest.mark.parametrize("status,message,kind", [
    (429, "Too many requests", ee_faults.RETRY),
    (400, "Too many concurrent aggregations.", ee_faults.RETRY),
    (403, "Quota exceeded for quota metric 'Requests'", ee_faults.RETRY),
    (500, "Internal error", ee_faults.RETRY),
    (503, "Service unavailable", ee_faults.RETRY),
    (400, "Computation timed out.", ee_faults.RETRY),
    (400, "Total request size (60000000 bytes) must be less than or equal to 50331648 bytes.", ee_faults.SPLIT),
    (400, "Too many values: 2000000 points x 11 bands x 300 images > 1048576.", ee_faults.SPLIT),
    (400, "User memory limit exceeded.", ee_faults.SPLIT),
    (400, "Collection query aborted after accumulating over 5000 elements.", ee_faults.SPLIT),
    (413, "Request payload size exceeds the limit", ee_faults.SPLIT),
    (400, "Too many bands: 1500 > 1024.", ee_faults.SPLIT),
    (404, "Image.load: Image asset 'X' not found.", ee_faults.PERMANENT),
    (403, "Caller does not have required permission to use project p.", ee_faults.PERMANENT),
    (400, "Image.select: Pattern 'B99' did not match any bands.", ee_faults.PERMANENT),
])
def test_classification(status, message, kind):
    assert ee_faults.classify(_ee_error(status, message)) == kind
    assert ee_faults.reason_of(_ee_error(status, message)) == f"HTTP {status}: {message}"


def test_connection_errors_are_retried():
    assert ee_faults.classify(ConnectionError("reset by peer")) == ee_faults.RETRY
    assert ee_faults.classify(TimeoutError("read timed out")) == ee_faults.RETRY


def test_backoff_has_jitter_and_a_cap():
    policy = ee_faults.RetryPolicy(backoff_s=1.0, max_backoff_s=8.0, seed=3)
    delays = [[policy.delay(k) for _ in range(200)] for k in range(6)]
    for k, d in enumerate(delays):
        assert 0.0 <= min(d) and max(d) <= min(8.0, 2.0 ** k)
        assert np.std(d) > 0.1                                           # jitter, not a fixed wait
    assert np.mean(delays[5]) > np.mean(delays[0])


def test_rate_limiter_spaces_request_starts():
    now = [0.0]
    slept = []
    limiter = ee_faults.RateLimiter(4.0, clock=lambda: now[0], sleep=lambda s: slept.append(s))
    for _ in range(5):
        limiter.wait()
    assert slept == pytest.approx([0.25, 0.5, 0.75, 1.0])
