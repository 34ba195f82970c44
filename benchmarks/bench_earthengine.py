"""Benchmark the `earthengine` source's request machinery against a fake Earth Engine with a
fixed latency per request (default 300 ms): requests in flight over time (never above the
cap), request throughput against the ceiling cap / latency, points per second for the paper
preset's 8 426 sample points, what a 20 % rate of injected 429s does to the wall time, and
the request rate of several DoFn threads of one process under one ``--ee-max-rps`` (they share
one limiter; across processes the launcher shares the rate, `ee_limits`).

    python benchmarks/bench_earthengine.py                       # paper preset, cap 8, 300 ms
    python benchmarks/bench_earthengine.py --n-points 1000 --cap 16

The real ``ee`` client runs (expression building, serialization, HTTP encoding, error
translation) over tests/ee_fake.py. To measure the scheduling and not the simulator, the
fake answers each request with one empty page: what is timed is the requests, their
concurrency and retries — not Earth Engine's paging of large answers nor decoding them.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), os.path.join(os.path.dirname(HERE), "tests")]

import ee  # noqa: E402

import ee_fake  # noqa: E402
from s2mos_transforms.sources import ee_requests, ee_session  # noqa: E402
from s2mos_transforms.sources.earthengine import EarthEngineSource  # noqa: E402
from s2mos_transforms.sources.synthetic import SyntheticSource  # noqa: E402


def run(points, cap: int, latency: float, error_rate: float, key_file: str, per_request: int, seed: int = 0):
    fake = ee_fake.FakeEarthEngine("quick", latency_s=latency, empty=True)
    rng, lock = random.Random(seed), threading.Lock()

    def flaky(info):
        with lock:
            return (429, "Too many concurrent aggregations.") if rng.random() < error_rate else None

    if error_rate:
        fake.faults.append(flaky)
    ee_session.HTTP_TRANSPORT = lambda: fake
    ee_session.reset()
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = key_file
    src = EarthEngineSource("bench-project", max_inflight=cap, max_rps=1000.0, points_per_request=per_request,
                            backoff_s=0.2, max_retries=10)
    t0 = time.monotonic()
    src.observations(points)
    wall = time.monotonic() - t0
    planned = len({(r.sensor, tuple(p.point_id for p in r.points))
                   for r in ee_requests.plan_requests(points, src.start, src.end, per_request)})
    ok = len(fake.requests) - src.counters.totals["ee_failed_requests"]
    return {"wall": wall, "requests": len(fake.requests), "ok": ok, "planned": planned,
            "retries": src.counters.totals["ee_retries"], "max_inflight": fake.max_inflight,
            "timeline": [(t - t0, n) for t, n in fake.timeline], "lost": src.counters.totals["ee_failed_requests"]
            - src.counters.totals["ee_retries"]}


def rate_run(points, rps: float, threads: int, latency: float, key_file: str, per_request: int) -> dict:
    """`threads` sources (DoFn instances of one worker process) fetching at once under one
    --ee-max-rps: the request starts per second, measured at the fake transport."""
    fake = ee_fake.FakeEarthEngine("quick", latency_s=latency, empty=True)
    ee_session.HTTP_TRANSPORT = lambda: fake
    ee_session.reset()
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = key_file
    srcs = [EarthEngineSource("bench-project", max_inflight=64, max_rps=rps, points_per_request=per_request)
            for _ in range(threads)]
    share = len(points) // threads
    workers = [threading.Thread(target=s.observations, args=(points[k * share:(k + 1) * share],))
               for k, s in enumerate(srcs)]
    t0 = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    starts = sorted(fake.started)
    span = starts[-1] - starts[0] if len(starts) > 1 else float("nan")
    return {"requests": len(starts), "rate": (len(starts) - 1) / span, "wall": time.monotonic() - t0}


def inflight_profile(timeline, wall: float, step: float) -> str:
    """The largest number in flight in each `step`-second window."""
    out, i, n = [], 0, 0
    for k in range(int(wall / step) + 1):
        hi = n
        while i < len(timeline) and timeline[i][0] < (k + 1) * step:
            n = timeline[i][1]
            hi = max(hi, n)
            i += 1
        out.append(hi)
    return " ".join(map(str, out))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--n-points", type=int, default=None, help="default: the preset's")
    ap.add_argument("--cap", type=int, default=8, help="--ee-max-inflight (default 8)")
    ap.add_argument("--latency", type=float, default=0.3, help="seconds per request (default 0.3)")
    ap.add_argument("--points-per-request", type=int, default=50)
    ap.add_argument("--error-rate", type=float, default=0.2, help="share of requests answered 429 (default 0.2)")
    ap.add_argument("--rps", type=float, default=20.0, help="--ee-max-rps of the rate run (default 20)")
    ap.add_argument("--threads", type=int, default=4, help="DoFn threads of the rate run (default 4)")
    args = ap.parse_args(argv)

    ee.deprecation._FetchDataCatalogStac = lambda: {}
    import tempfile
    from pathlib import Path
    key = Path(tempfile.mkdtemp()) / "key.json"
    ee_fake.service_account_key(key)
    world = SyntheticSource(args.preset)
    points = ee_fake.sample_points(world.sample_points(args.n_points))
    ceiling = args.cap / args.latency
    print(f"{len(points)} points ({args.preset}), cap {args.cap} in flight, {args.latency * 1000:.0f} ms per "
          f"request: ceiling {ceiling:.1f} requests/s")
    base = None
    for rate in (0.0, args.error_rate):
        r = run(points, args.cap, args.latency, rate, str(key), args.points_per_request)
        rps = r["requests"] / r["wall"]
        print(f"\n429 rate {rate:.0%}: {r['requests']} requests ({r['retries']} retries) for {r['planned']} planned "
              f"in {r['wall']:.1f} s; lost {r['lost']}")
        print(f"  throughput {rps:.1f} requests/s = {rps / ceiling:.2f} x cap/latency; "
              f"{len(points) / r['wall']:.0f} points/s; max in flight {r['max_inflight']} (cap {args.cap})")
        print(f"  in flight, max per second: {inflight_profile(r['timeline'], r['wall'], 1.0)}")
        if base is None:
            base = r["wall"]
        else:
            print(f"  wall time x{r['wall'] / base:.2f} of the run without 429s, nothing lost"
                  if r["lost"] == 0 else "  SOME REQUESTS WERE LOST")
    r = rate_run(points[:400], args.rps, args.threads, args.latency, str(key), 4)
    print(f"\n--ee-max-rps {args.rps:g}, {args.threads} DoFn threads of one process: {r['requests']} requests at "
          f"{r['rate']:.2f}/s ({r['rate'] / args.rps:.2f} x the cap) in {r['wall']:.1f} s")


if __name__ == "__main__":
    main()
