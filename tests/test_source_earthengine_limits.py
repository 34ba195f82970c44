"""``--ee-max-rps`` for the whole job, ``--ee-max-inflight`` per worker process: the job's
parallelism from its Beam flags, one limiter shared by a process's threads, and a
multi-process DirectRunner build that stays under the job-wide rate, measured from the
request times the fake transports of all its processes record."""
from __future__ import annotations

import argparse
import json
import os
import threading

import numpy as np
import pytest

import ee_fake
from ee_fake import fake, key_file, world  # noqa: F401 — fixtures
from pipelines.cli import main
from s2mos_transforms import sources
from s2mos_transforms.sources import ee_limits
from s2mos_transforms.sources.earthengine import EarthEngineSource

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.mark.parametrize("flags, n", [
    ([], 1),
    (["--direct_num_workers=4"], 1),                                          # in_memory: one process
    (["--direct_num_workers=4", "--direct_running_mode=multi_threading"], 1),  # threads share the limiter
    (["--direct_num_workers=3", "--direct_running_mode=multi_processing"], 3),
    (["--runner=DataflowRunner", "--max_num_workers=8", "--machine_type=n2-standard-4"], 32),
    (["--runner", "DataflowRunner", "--num_workers", "5", "--machine_type", "custom-6-23040"], 30),
    (["--runner=DataflowRunner", "--max_num_workers=8", "--num_workers=2", "--machine_type=n1-highmem-2"], 16),
    (["--runner=DataflowRunner", "--max_num_workers=8", "--experiments=no_use_multiple_sdk_containers"], 8),
])
def test_job_processes_from_the_beam_flags(flags, n):
    got, how = ee_limits.job_processes(flags)
    assert got == n and how


@pytest.mark.parametrize("flags, message", [
    (["--runner=DataflowRunner", "--machine_type=n2-standard-4"], "give Dataflow --max_num_workers"),
    (["--runner=DataflowRunner", "--max_num_workers=4"], "no --machine_type does not say"),
    (["--runner=DataflowRunner", "--max_num_workers=4", "--machine_type=e2-medium"], "--machine_type e2-medium"),
    (["--runner=FlinkRunner"], "with --runner FlinkRunner give --ee-worker-processes"),
])
def test_an_unbounded_job_is_refused_in_one_line(flags, message):
    with pytest.raises(sources.SourceError, match=message) as err:
        ee_limits.job_processes(flags)
    assert "\n" not in str(err.value)
    assert ee_limits.job_processes(flags, override=12) == (12, "--ee-worker-processes 12")


def _options(argv, beam_flags):
    parser = argparse.ArgumentParser()
    sources.add_source_arguments(parser, sources.POINTS)
    args = parser.parse_args(["--source", "earthengine", "--ee-project", "p"] + argv)
    args._beam_flags = beam_flags
    return sources.resolve_source(args, sources.POINTS)[1]


def test_the_options_carry_the_job_parallelism_and_each_process_takes_its_share(fake):
    options = _options(["--ee-max-rps", "30", "--ee-max-inflight", "4"],
                       ["--runner=DataflowRunner", "--max_num_workers=5", "--machine_type=n2-standard-2"])
    assert options["worker_processes"] == 10 and "Dataflow, 5 workers × 2" in options["worker_processes_from"]
    assert json.loads(json.dumps(options)) == options
    src = EarthEngineSource(**{**options, "project": "s2mos-test-project"})
    assert src.process_rps == pytest.approx(3.0) and src.limiter.interval == pytest.approx(1 / 3.0)
    assert "up to 40 requests in flight" in src.notes[0] and "3 requests/s in each of 10" in src.notes[0]
    assert _options(["--ee-worker-processes", "7"], ["--runner=FlinkRunner"])["worker_processes"] == 7
    with pytest.raises(sources.SourceError, match="--ee-worker-processes must be between 1"):
        _options(["--ee-worker-processes", "0"], [])


def test_threads_of_one_process_share_one_rate_limiter(fake, world):
    """Two DoFn instances (threads, each its own source) with --ee-max-rps 10 in one process:
    their requests together start at most 10 per second."""
    points = ee_fake.sample_points(world.sample_points(16))
    srcs = [EarthEngineSource("s2mos-test-project", max_rps=10.0, points_per_request=1, backoff_s=0.001)
            for _ in range(2)]
    assert srcs[0].limiter is srcs[1].limiter and srcs[0].gate is srcs[1].gate
    threads = [threading.Thread(target=s.observations, args=(points[k * 4:(k + 1) * 4],)) for k, s in enumerate(srcs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts = np.array(fake.started)
    assert len(starts) >= 16
    # 10/s, both threads together: one start per 0.1 s (± the client's own jitter between the
    # limiter and the transport), never two threads' worth.
    assert _max_in_window(starts, 1.0) <= 10 + 1
    assert (len(starts) - 1) / (starts.max() - starts.min()) <= 10 * 1.05


def _max_in_window(times: np.ndarray, window: float) -> int:
    times = np.sort(times)
    return int(max(np.searchsorted(times, t + window, side="left") - i for i, t in enumerate(times)))


@pytest.mark.slow
def test_a_multi_process_job_stays_under_the_job_wide_rate(fake, quick_world, key_file, tmp_path, monkeypatch):
    """build-dataset on a DirectRunner with 2 worker processes and --ee-max-rps 6: each process
    holds 3/s, and the job's requests — logged by the fakes of both processes — stay under 6/s."""
    log = tmp_path / "requests.log"
    monkeypatch.setenv("S2MOS_TEST_EE_LOG", str(log))
    monkeypatch.setenv(sources.ENV_MODULES, "ee_fake_worker")      # the workers import the fake
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([TESTS, os.path.dirname(TESTS), os.environ.get("PYTHONPATH", "")]))
    rps = 6.0
    assert main(["build-dataset", "--samples", str(quick_world / "samples.csv"), "--out", str(tmp_path / "ds"),
                 "--source", "earthengine", "--ee-project", "s2mos-test", "--ee-credentials", str(key_file[0]),
                 "--ee-max-rps", str(rps), "--ee-points-per-request", "4", "--batch-size", "20", "--quiet",
                 "--direct_num_workers=2", "--direct_running_mode=multi_processing"]) == 0
    summary = json.loads((tmp_path / "ds" / "summary.json").read_text())
    assert summary["inputs"]["worker_processes"] == 2
    rows = [line.split() for line in log.read_text().splitlines()]
    pids = {pid for pid, _ in rows}
    times = np.array([float(t) for _, t in rows])
    assert len(pids) == 2 and str(os.getpid()) not in pids and len(times) >= 40
    spans = [(min(float(t) for p, t in rows if p == pid), max(float(t) for p, t in rows if p == pid)) for pid in pids]
    overlap = min(e for _, e in spans) - max(s for s, _ in spans)
    assert overlap > 0.5 * min(e - s for s, e in spans)            # both processes requested at once
    # Token buckets of 3/s per process: any 2 s hold at most 2 × 6 requests + one burst per process.
    assert _max_in_window(times, 2.0) <= 2 * rps + len(pids)
    assert (len(times) - len(pids)) / (times.max() - times.min()) <= rps * 1.05
