"""Controller overhead: CPU microseconds per request with 100,000 queued requests.

bmctl: a TrafficController with the default buckets, RouteMap.default() and a SimClock, over a
transport that answers 200 at once. 100,000 requests are submitted up front (a mix: 55 % listing
reads, 25 % competitors reads, 10 % listing writes, 10 % listing pages; priorities CRITICAL /
HIGH / NORMAL / LOW mixed accordingly), then ``run()`` sends them all (simulated time: the clock
jumps to each next token). CPU = ``time.process_time()`` over submit + run, divided by 100,000.
Request objects are built before the clock starts (building them is the client's cost).

Side by side, in the same process and run: PyrateLimiter 4 ``Limiter.try_acquire(name,
blocking=False)`` over an InMemoryBucket, 100,000 calls, (a) with a limit so high that every call
is admitted (the recording path), (b) at 200/10 s (almost every call refused: the cheap path).
PyrateLimiter only answers "may I?" -- no queue, priorities, multi-bucket routes, reservations,
retries or scheduling -- so the ratio flatters it.

Each measurement is repeated (--repeat, default 5); median / min / max are reported.

    python bench/overhead.py [--requests 100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, med_min_max, table  # noqa: E402

from bmctl.traffic.buckets import make_buckets  # noqa: E402
from bmctl.traffic.clock import SimClock  # noqa: E402
from bmctl.traffic.controller import TrafficController  # noqa: E402
from bmctl.traffic.queue import Priority  # noqa: E402
from bmctl.traffic.routes import RouteMap  # noqa: E402
from bmctl.traffic.transport import HttpRequest, HttpResponse  # noqa: E402

OK = HttpResponse(200, {}, b"{}")


class InstantTransport:
    def __init__(self) -> None:
        self.sent = 0

    def send(self, request, timeout):
        self.sent += 1
        return OK


def make_requests(n: int, seed: int = 0) -> list[tuple[HttpRequest, Priority]]:
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(128):032x}" for _ in range(2000)]
    out = []
    headers = {"authorization": "Basic x", "accept-language": "fr-fr"}
    for i in range(n):
        u = rng.random()
        lid = ids[i % len(ids)]
        if u < 0.55:
            req = HttpRequest("GET", f"/ws/listings/{lid}", headers=headers, listing_id=lid)
            pri = rng.choice((Priority.HIGH, Priority.NORMAL))
        elif u < 0.80:
            req = HttpRequest("GET", f"/ws/backbox/v1/competitors/{lid}", headers=headers, listing_id=lid)
            pri = rng.choice((Priority.HIGH, Priority.NORMAL))
        elif u < 0.90:
            req = HttpRequest("POST", f"/ws/listings/{lid}", headers=headers, body=b'{"price":"1.00"}',
                              listing_id=lid)
            pri = rng.choice((Priority.CRITICAL, Priority.HIGH))
        else:
            req = HttpRequest("GET", "/ws/listings", query=(("page", str(i)),), headers=headers)
            pri = Priority.LOW
        out.append((req, pri))
    return out


def bmctl_once(requests: list[tuple[HttpRequest, Priority]]) -> tuple[float, float]:
    clock = SimClock()
    transport = InstantTransport()
    controller = TrafficController(make_buckets(clock=clock), RouteMap.default(), transport, clock=clock)
    gc.collect()
    t0 = time.process_time()
    submit = controller.submit
    for req, pri in requests:
        submit(req, pri)
    controller.run()
    cpu = time.process_time() - t0
    assert transport.sent == len(requests), transport.sent
    return cpu / len(requests) * 1e6, clock.monotonic()


def pyrate_once(n: int, admit_all: bool) -> float:
    from pyrate_limiter import Duration, Limiter, Rate

    rate = Rate(10**9, Duration.SECOND) if admit_all else Rate(200, Duration.SECOND * 10)
    limiter = Limiter(rate)
    try_acquire = limiter.try_acquire
    gc.collect()
    t0 = time.process_time()
    for _ in range(n):
        try_acquire("global", 1, False)
    cpu = time.process_time() - t0
    close = getattr(limiter, "close", None)
    if close:
        close()
    return cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    header(f"Controller overhead ({args.requests:,} queued requests, CPU µs per request)")
    requests = make_requests(args.requests)
    bm, pa, pr = [], [], []
    simulated = 0.0
    for _ in range(args.repeat):  # interleaved, so drifts in machine load hit all alike
        us, simulated = bmctl_once(requests)
        bm.append(us)
        pa.append(pyrate_once(args.requests, True))
        pr.append(pyrate_once(args.requests, False))
    rows = []
    b_med = med_min_max(bm)[0]
    for label, values in [("bmctl TrafficController (submit + run, mixed routes/priorities)", bm),
                          ("PyrateLimiter 4 try_acquire, admitted (limit 1e9/s)", pa),
                          ("PyrateLimiter 4 try_acquire, 200/10 s (mostly refused)", pr)]:
        med, lo, hi = med_min_max(values)
        rows.append([label, f"{med:.2f}", f"{lo:.2f}", f"{hi:.2f}", f"{med / b_med:.2f}×"])
    print(table(["contender", "µs/request median", "min", "max", "ratio to bmctl"], rows))
    print()
    print(f"simulated time to drain the bmctl queue: {simulated:,.0f} s; repeats: {args.repeat}")
    print(f"goal ≤ 20 µs/request: {'met' if b_med <= 20 else 'MISSED'} (median {b_med:.2f} µs)")


if __name__ == "__main__":
    main()
