"""Controller overhead: CPU microseconds per request with 100,000 queued requests.

bmctl: a TrafficController admitting through an in-memory budget ledger
(``MemoryLedger(DEFAULT_LIMITS, clock.monotonic)``: the published limits under the anchored rule,
each request holding a slot from its send until a window after its answer), RouteMap.default()
and a SimClock, over a transport that answers 200 at once. 100,000 requests are submitted up
front (a mix: 55 % listing reads, 25 % competitors reads, 10 % listing writes, 10 % listing
pages; priorities CRITICAL / HIGH / NORMAL / LOW mixed accordingly), then ``run()`` sends them
all (simulated time: the clock jumps to each next free slot). CPU = ``time.process_time()``
over submit + run, divided by 100,000. Request objects are built before the clock starts
(building them is the client's cost).

Side by side, in the same process and run: PyrateLimiter 4 ``Limiter.try_acquire(name,
blocking=False)`` over an InMemoryBucket, 100,000 calls, (a) with a limit so high that every call
is admitted (the recording path), (b) at 200/10 s (almost every call refused: the cheap path).
PyrateLimiter only answers "may I?" -- no queue, priorities, multi-bucket routes, reservations,
retries or scheduling -- so the ratio flatters it.

Also side by side: the previous design (commit 8e18beb: the same controller over token buckets
with burst 1 and a 50 ms jitter allowance), from the frozen copy in ``bench/legacy/``
(``token_controller.py``, ``token_buckets.py``), on the same requests; skipped if it is absent.

And bmctl's controller over a ``ThreadWire`` of ``--workers`` threads (64, the default
``[traffic] max_in_flight``) on the same transport: the cost of handing each request to a worker
and its answer back, which is what real HTTP pays on top (CPU of every thread).

Each measurement is repeated (--repeat, default 5); median / min / max are reported.

    python bench/overhead.py [--requests 100000] [--repeat 5] [--quick]
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

from bmctl.traffic.buckets import DEFAULT_LIMITS  # noqa: E402
from bmctl.traffic.clock import SimClock  # noqa: E402
from bmctl.traffic.controller import TrafficController  # noqa: E402
from bmctl.traffic.ledger import MemoryLedger  # noqa: E402
from bmctl.traffic.queue import Priority  # noqa: E402
from bmctl.traffic.routes import RouteMap  # noqa: E402
from bmctl.traffic.transport import HttpRequest, HttpResponse  # noqa: E402
from bmctl.traffic.wire import ThreadWire  # noqa: E402

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


def bmctl_once(requests: list[tuple[HttpRequest, Priority]], workers: int = 1) -> tuple[float, float]:
    """CPU µs per request (every thread's: ``process_time``) and the simulated drain time;
    ``workers`` > 1: over a ThreadWire of that many worker threads, as real HTTP runs."""
    clock = SimClock()
    transport = InstantTransport()
    ledger = MemoryLedger(DEFAULT_LIMITS, clock.monotonic)
    wire = None
    if workers > 1:
        wire = ThreadWire(lambda: transport, workers, clock.monotonic)
    controller = TrafficController(ledger, RouteMap.default(), transport, clock=clock, wire=wire)
    gc.collect()
    t0 = time.process_time()
    submit = controller.submit
    for req, pri in requests:
        submit(req, pri)
    controller.run()
    cpu = time.process_time() - t0
    controller.close()
    assert transport.sent == len(requests), transport.sent
    return cpu / len(requests) * 1e6, clock.monotonic()


def legacy_once(requests: list[tuple[HttpRequest, Priority]]) -> float | None:
    """The same run through the previous design (token buckets), or None when its copy is absent."""
    try:
        from legacy.token_buckets import make_buckets
        from legacy.token_controller import TrafficController as TokenController
    except ImportError:
        return None
    clock = SimClock()
    transport = InstantTransport()
    controller = TokenController(make_buckets(clock=clock), RouteMap.default(), transport, clock=clock)
    gc.collect()
    t0 = time.process_time()
    submit = controller.submit
    for req, pri in requests:
        submit(req, pri)
    controller.run()
    cpu = time.process_time() - t0
    assert transport.sent == len(requests), transport.sent
    return cpu / len(requests) * 1e6


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
    parser.add_argument("--quick", action="store_true", help="20,000 requests, 2 repeats (a smoke run)")
    parser.add_argument("--workers", type=int, default=64, help="ThreadWire workers ([traffic] max_in_flight)")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.repeat = 20_000, 2
    header(f"Controller overhead ({args.requests:,} queued requests, CPU µs per request)")
    requests = make_requests(args.requests)
    bm, threaded, old, pa, pr = [], [], [], [], []
    simulated = 0.0
    for _ in range(args.repeat):  # interleaved, so drifts in machine load hit all alike
        us, simulated = bmctl_once(requests)
        bm.append(us)
        threaded.append(bmctl_once(requests, workers=args.workers)[0])
        legacy = legacy_once(requests)
        if legacy is not None:
            old.append(legacy)
        pa.append(pyrate_once(args.requests, True))
        pr.append(pyrate_once(args.requests, False))
    rows = []
    b_med = med_min_max(bm)[0]
    contenders = [("bmctl TrafficController + MemoryLedger (submit + run, mixed routes/priorities)", bm),
                  (f"the same over a ThreadWire of {args.workers} workers (real HTTP's path)", threaded)]
    if old:
        contenders.append(("previous design (8e18beb): same controller over token buckets, burst 1", old))
    for label, values in [*contenders,
                          ("PyrateLimiter 4 try_acquire, admitted (limit 1e9/s)", pa),
                          ("PyrateLimiter 4 try_acquire, 200/10 s (mostly refused)", pr)]:
        med, lo, hi = med_min_max(values)
        rows.append([label, f"{med:.2f}", f"{lo:.2f}", f"{hi:.2f}", f"{med / b_med:.2f}×"])
    print(table(["contender", "µs/request median", "min", "max", "ratio to bmctl"], rows))
    print()
    print(f"simulated time to drain the bmctl queue: {simulated:,.0f} s; repeats: {args.repeat}")
    print(f"goal ≤ 20 µs/request: {'met' if b_med <= 20 else 'MISSED'} (median {b_med:.2f} µs; "
          f"over the ThreadWire {med_min_max(threaded)[0]:.2f} µs)")


if __name__ == "__main__":
    main()
