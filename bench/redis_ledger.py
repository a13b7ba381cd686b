"""The budget ledger in Redis beside the field's Redis limiters, on one redis-server.

Contenders, each on the same local redis-server (started here, no persistence):

- **bmctl RedisLedger** — one admission is what ``TrafficController._dispatch`` does for one
  read: a transaction (a snapshot script that also applies the previous answer's settle, then
  ``can_spend`` / ``spend`` on ``global``, then the admit script), then ``settle`` at once;
- **limits moving window** — ``MovingWindowRateLimiter(RedisStorage).hit(item, key)``;
- **PyrateLimiter RedisBucket** — ``Limiter(RedisBucket).try_acquire(name, blocking=False)``.

Part 1, cost: limits so high nothing is refused (for bmctl the ``global`` bucket holds 200
slots of earlier requests, as a busy real one does, and once 2,000, as a full hourly
``listing_writes`` bucket does); 1 and 4 OS processes admit for
``--seconds`` each; admissions/s (all processes) and one admission's latency p50/p99.

Part 2, correctness: 4 processes hammer one bucket of 10 per 1 s for ``--seconds``, each
admitted request "arriving" at once (logged on the host's monotonic clock, which every process
of a boot shares) and answered at once. Over-admissions = arrivals that find more than 10 in
the closed 1 s window ending at them. Run twice: all clocks right, then one process's clock
30 s fast (its ``time.time``/``time_ns`` for the field's limiters, which stamp entries with
the client's clock; its monotonic clock read through bmctl's clock seam for bmctl, which only
sends durations).

Run: ``python bench/redis_ledger.py`` (about a minute; needs ``pip install -e '.[bench,test]'``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench._common import machine, table  # noqa: E402

LIMIT, WINDOW = 10, 1.0
SKEW = 30.0


def _skew_process_clock(offset: float) -> None:
    """This process's wall clock, ``offset`` seconds off (what the field's limiters read)."""
    real_time, real_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset  # type: ignore[assignment]
    time.time_ns = lambda: real_ns() + int(offset * 1e9)  # type: ignore[assignment]
    try:
        import pyrate_limiter.buckets.redis_bucket as pyrate_redis

        pyrate_redis.time_ns = time.time_ns  # type: ignore[attr-defined]
    except ImportError:
        pass


def make_admit(kind: str, url: str, limit: int, window: float, key: str, offset: float = 0.0) -> Callable[[], bool]:
    """One admission attempt of contender ``kind``: True when admitted."""
    if kind.startswith("bmctl"):
        from bmctl.store.redis_ledger import RedisLedger
        from bmctl.traffic.buckets import LimitSpec
        from bmctl.traffic.clock import SystemClock

        class Offset(SystemClock):
            def monotonic(self) -> float:
                return time.monotonic() + offset

        held = kind[len("bmctl"):]  # "bmctl2000": the cost bucket seeded with 2,000 slots
        ledger = RedisLedger(url, {"global": LimitSpec(limit, window)}, Offset(), prefix=f"bench:{key}{held}",
                             in_flight_bound=60.0)
        bucket = ledger.buckets["global"]
        from bmctl.traffic.ledger import AdmissionConflict

        def admit() -> bool:
            try:
                with ledger.transaction():
                    if not bucket.can_spend():
                        return False
                    slot = bucket.spend()
            except AdmissionConflict:
                return False
            bucket.settle(slot, ledger.now())
            return True

        return admit
    if kind == "limits":
        from limits import RateLimitItemPerSecond
        from limits.storage import RedisStorage
        from limits.strategies import MovingWindowRateLimiter

        limiter = MovingWindowRateLimiter(RedisStorage(url))
        item = RateLimitItemPerSecond(limit, int(window))
        return lambda: bool(limiter.hit(item, key))
    if kind == "pyrate":
        import redis
        from pyrate_limiter import Duration, Limiter, Rate, RedisBucket

        bucket = RedisBucket.init([Rate(limit, int(Duration.SECOND * window))], redis.Redis.from_url(url),
                                  f"pyrate:{key}")
        limiter = Limiter(bucket)
        return lambda: bool(limiter.try_acquire(key, blocking=False))
    raise ValueError(kind)


def _cost_worker(kind: str, url: str, seconds: float, start_at: float, out: Any) -> None:
    admit = make_admit(kind, url, 10**9, 1.0, "cost")
    admit()  # connect, load scripts
    while time.monotonic() < start_at:
        time.sleep(0.0005)
    latencies = []
    end = start_at + seconds
    while True:
        t0 = time.perf_counter()
        admit()
        latencies.append(time.perf_counter() - t0)
        if time.monotonic() >= end:
            break
    out.put(latencies)


def _hammer_worker(kind: str, url: str, seconds: float, start_at: float, offset: float, out: Any) -> None:
    if offset and kind != "bmctl":
        _skew_process_clock(offset)
    admit = make_admit(kind, url, LIMIT, WINDOW, "hammer", offset)
    while time.monotonic() < start_at:
        time.sleep(0.0005)
    arrivals = []
    end = start_at + seconds
    while time.monotonic() < end:
        if admit():
            arrivals.append(time.monotonic())
        else:
            time.sleep(0.001)
    out.put(arrivals)


def run_processes(target: Callable[..., None], n: int, kind: str, url: str, seconds: float,
                  extra: Callable[[int], tuple[Any, ...]] = lambda i: ()) -> list[Any]:
    """``n`` forked processes running ``target``, released together; what each put out."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    start_at = time.monotonic() + 0.5
    procs = [ctx.Process(target=target, args=(kind, url, seconds, start_at, *extra(i), out)) for i in range(n)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join()
    return results


def over_admissions(arrivals: list[float]) -> tuple[int, int]:
    """(arrivals finding more than LIMIT in the closed window ending at them, most in one window)."""
    arrivals.sort()
    over, most, lo = 0, 0, 0
    for hi, t in enumerate(arrivals):
        while t - arrivals[lo] > WINDOW:
            lo += 1
        count = hi - lo + 1
        most = max(most, count)
        if count > LIMIT:
            over += 1
    return over, most


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    from tests.traffic.redis_fixture import RedisServer, redis_server_binary

    server = RedisServer(redis_server_binary()).start()
    version = server.client().info()["redis_version"]
    print(machine(), f"redis-server {version}")
    kinds = {"bmctl": "bmctl RedisLedger", "limits": "limits moving window", "pyrate": "PyrateLimiter RedisBucket"}
    try:
        _seed_bmctl(server.url, "bench:cost", 200)
        _seed_bmctl(server.url, "bench:cost2000", 2000)
        rows = []
        for kind, name in [*kinds.items(), ("bmctl2000", "bmctl RedisLedger, 2,000 held")]:
            for n in ((1, 4) if kind != "bmctl2000" else (1,)):
                results = run_processes(_cost_worker, n, kind, server.url, args.seconds)
                latencies = sorted(x for r in results for x in r)
                total = len(latencies)
                p50 = statistics.median(latencies) * 1e6
                p99 = latencies[int(0.99 * (total - 1))] * 1e6
                rows.append((name, n, round(total / args.seconds), f"{p50:.0f}", f"{p99:.0f}"))
        print("\nCost (nothing refused): admissions/s over all processes, one admission's latency")
        print(table(["contender", "processes", "admissions/s", "p50 µs", "p99 µs"], rows))
        rows = []
        for kind, name in kinds.items():
            row: list[Any] = [name]
            for skewed in (False, True):
                server.client().flushall()
                def offsets(i: int, skewed: bool = skewed) -> tuple[float]:
                    return (SKEW if skewed and i == 0 else 0.0,)

                results = run_processes(_hammer_worker, 4, kind, server.url, args.seconds, offsets)
                arrivals = [x for r in results for x in r]
                over, most = over_admissions(arrivals)
                row += [len(arrivals), over, most]
            rows.append(row)
        print(f"\nCorrectness: 4 processes on one bucket of {LIMIT} per {WINDOW:g} s for {args.seconds:g} s "
              f"(allowed at most {LIMIT * (args.seconds / WINDOW + 1):.0f})")
        print(table(["contender", "admitted", "over-admissions", "most in 1 s",
                     f"admitted, 1 clock +{SKEW:g} s", "over-admissions", "most in 1 s"], rows))
    finally:
        server.cleanup()


def _seed_bmctl(url: str, prefix: str, count: int) -> None:
    """``count`` settled slots of earlier requests in bmctl's cost bucket, held an hour."""
    import redis

    client = redis.Redis.from_url(url)
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros / 1000
    key = f"{prefix}:global:h"
    client.zadd(key, {f"s|seed|0|x|{i}": now_ms + 3_600_000 + i for i in range(count)})
    client.pexpire(key, 3_600_000)


if __name__ == "__main__":
    main()
