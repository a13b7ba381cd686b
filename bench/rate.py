"""Rate efficiency under jitter: bmctl vs a plain requests+Retry loop vs requests-ratelimiter.

Real time, real HTTP on loopback: the embedded sandbox (``start_in_thread``) with
``Faults(latency=25, jitter=25)`` -- every answer takes 25 ms +- 25 ms (uniform 0..50 ms, half
before the request reaches the marketplace, half after) -- and the published limits enforced as
sliding windows (429 + a 10 s block of the scope on a breach). A fresh server per run, so one
contender's block cannot leak into the next.

Counting is server-side: a thin wrapper around the SandboxApp records the time and status of every
request that reached the marketplace (the moment the limiter admitted or refused it), so the 429s
that urllib3's Retry swallows are counted too.

Rate = (n - 1) / D where n = 2xx answers admitted in ``[t0, t0 + D)``, t0 = the first request the
server saw from that run and D = ``--seconds`` (a whole number of windows, default 20 s): client
start-up is excluded, the fencepost is not counted as throughput, and a bursty client is not
flattered by a partial window. ``span rate`` is bmctl's own ``logs stats`` formula over the whole
run: (2xx - 1) / (last request - first request), both as seen on the wire.

    python bench/rate.py [--seconds 20] [--only bmctl,retry,limiter] [--buckets competitors,global]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, table  # noqa: E402

from bmctl.sandbox.app import SandboxApp  # noqa: E402
from bmctl.sandbox.catalogue import generate_catalogue  # noqa: E402
from bmctl.sandbox.faults import Faults  # noqa: E402
from bmctl.sandbox.limits import DEFAULT_LIMITS  # noqa: E402
from bmctl.sandbox.model import Marketplace  # noqa: E402
from bmctl.sandbox.server import start_in_thread  # noqa: E402

TOKEN = "sandbox"
UA = "BM-bench-bmctl;bench@example.invalid"
BUCKETS = {
    # bucket: (documented limit per second, window seconds, path builder)
    "competitors": (2 / 1.0, 1.0, lambda spec: f"/ws/backbox/v1/competitors/{spec.id}"),
    "global": (200 / 10.0, 10.0, lambda spec: f"/ws/listings/{spec.id}"),
}


class CountingApp:
    """Delegates to a SandboxApp and records (monotonic time, status) of each served request."""

    def __init__(self, app: SandboxApp) -> None:
        self.app = app
        self.log: list[tuple[float, int]] = []
        self._lock = threading.Lock()

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    def respond(self, request, decision):  # called under the server's lock, limiter first
        response = self.app.respond(request, decision)
        self.log.append((time.monotonic(), response.status))
        return response


def start_server(specs, seed: int, nodelay: bool = True):
    # The sandbox sets TCP_NODELAY (headers and body are two writes: with Nagle and the
    # client's delayed ACK every answer took ~40 ms more). nodelay=False reproduces that, for
    # the record (--stock).
    from bmctl.sandbox import server as server_module

    server_module._Handler.disable_nagle_algorithm = nodelay
    marketplace = Marketplace(time.monotonic, settle=2.0, rng=random.Random(seed))
    marketplace.load(specs)
    app = CountingApp(SandboxApp(marketplace, token=TOKEN, faults=Faults(latency=25, jitter=25),
                                 limits=DEFAULT_LIMITS, rng=random.Random(seed)))
    server, url = start_in_thread(app)  # type: ignore[arg-type]
    return server, url, app


def headers_for(spec) -> dict[str, str]:
    return {"Authorization": f"Basic {TOKEN}", "Accept-Language": spec.offers[0].market,
            "User-Agent": UA, "Accept": "application/json"}


# --- contenders ----------------------------------------------------------------------------------

def run_bmctl(url: str, specs, bucket: str, seconds: float) -> str:
    from bmctl.api.http import RequestsTransport
    from bmctl.traffic.buckets import make_buckets
    from bmctl.traffic.clock import SystemClock
    from bmctl.traffic.controller import TrafficController
    from bmctl.traffic.routes import RouteMap
    from bmctl.traffic.transport import HttpRequest

    clock = SystemClock()
    transport = RequestsTransport()
    attempts = []
    controller = TrafficController(make_buckets(clock=clock), RouteMap.default(), transport, clock=clock,
                                   on_attempt=attempts.append)
    rate, _, path_of = BUCKETS[bucket]
    n = int(rate * seconds * 1.5) + 20  # more than the run can send: the queue never runs dry
    for spec in itertools.islice(itertools.cycle(specs), n):
        controller.submit(HttpRequest("GET", path_of(spec), headers=headers_for(spec), base_url=url,
                                      listing_id=spec.id, market=spec.offers[0].market))
    end = clock.monotonic() + seconds
    controller.run(until=lambda: clock.monotonic() >= end)
    controller.cancel_all()
    transport.close()
    interval = controller.buckets[bucket].interval
    lat = sorted(a.latency_ms for a in attempts)
    late = sum(1 for x in lat if x > interval * 1000) / max(1, len(lat))
    return ("TrafficController, default buckets, RouteMap.default(), RequestsTransport, SystemClock; "
            f"client latency p50 {lat[len(lat) // 2]:.1f} ms, max {lat[-1]:.1f} ms; "
            f"{100 * late:.1f} % of answers slower than the token interval {interval * 1000:.2f} ms")


def run_retry(url: str, specs, bucket: str, seconds: float, backoff: float = 0.5) -> str:
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    retry = Retry(total=5, status_forcelist=[429, 500, 502, 503, 504], respect_retry_after_header=True,
                  backoff_factor=backoff, raise_on_status=False)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    _, _, path_of = BUCKETS[bucket]
    end = time.monotonic() + seconds
    for spec in itertools.cycle(specs):
        if time.monotonic() >= end:
            break
        session.get(url + path_of(spec), headers=headers_for(spec), timeout=30)
    session.close()
    return f"Retry(total=5, backoff_factor={backoff}, status_forcelist=[429,5xx], respect_retry_after_header=True)"


def run_limiter(url: str, specs, bucket: str, seconds: float, variant: str = "exact") -> str:
    from requests_ratelimiter import LimiterSession

    if bucket == "competitors":
        session = LimiterSession(per_second=2)
        how = "LimiterSession(per_second=2)"
    elif variant == "exact":  # 200 per 10 s, exactly the documented window
        session = LimiterSession(per_second=20, burst=10)
        how = "LimiterSession(per_second=20, burst=10) = 200/10 s"
    else:
        session = LimiterSession(per_second=20)
        how = "LimiterSession(per_second=20) = 20/1 s"
    _, _, path_of = BUCKETS[bucket]
    end = time.monotonic() + seconds
    for spec in itertools.cycle(specs):
        if time.monotonic() >= end:
            break
        session.get(url + path_of(spec), headers=headers_for(spec), timeout=30)
    session.close()
    return how


CONTENDERS = {
    "bmctl": ("bmctl", run_bmctl, {}),
    "retry": ("requests + urllib3 Retry", run_retry, {}),
    "limiter": ("requests-ratelimiter", run_limiter, {"variant": "exact"}),
    "limiter1s": ("requests-ratelimiter (1 s window)", run_limiter, {"variant": "1s"}),
}


def measure(key: str, bucket: str, seconds: float, specs, seed: int,
            nodelay: bool = True) -> tuple[list[object], str]:
    label, fn, kwargs = CONTENDERS[key]
    if not nodelay:
        label += " [stock server]"
    server, url, app = start_server(specs, seed, nodelay)
    try:
        # Run a little past the window so that the window is full even though t0 is the first
        # request the server saw (the client's start-up is before it).
        how = fn(url, specs, bucket, seconds + 1.0, **kwargs)
    finally:
        server.stop()
    log = list(app.log)
    rate, window, _ = BUCKETS[bucket]
    if not log:
        return [label, bucket, 0, 0, 0.0, "0 %", 0.0], how
    t0 = log[0][0]
    inside = [(t, s) for t, s in log if t < t0 + seconds]
    ok = [t for t, s in inside if 200 <= s < 300]
    r429 = sum(1 for t, s in log if s == 429)
    achieved = max(0, len(ok) - 1) / seconds
    oks = [t for t, s in log if 200 <= s < 300]
    wire = log[-1][0] - log[0][0]
    span = (len(oks) - 1) / wire if len(oks) > 1 and wire > 0 else 0.0
    return [label, bucket, len(ok), r429, achieved, f"{100 * achieved / rate:.1f} %", span], how


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="measurement window per run (a multiple of 10 s keeps the global bucket fair)")
    parser.add_argument("--only", default="bmctl,retry,limiter,limiter1s")
    parser.add_argument("--buckets", default="competitors,global")
    parser.add_argument("--stock", default="",
                        help="contenders also run on global with Nagle's algorithm on (the server "
                             "before it set TCP_NODELAY), e.g. --stock bmctl")
    args = parser.parse_args()
    header("Rate efficiency under jitter (sandbox over loopback, latency 25 ms +- 25 ms)")
    specs = generate_catalogue(60, seed=3)
    rows, notes = [], []
    seed = 100
    for bucket in args.buckets.split(","):
        for key in args.only.split(","):
            if key == "limiter1s" and bucket != "global":
                continue  # per_second=2 is the only natural setting for 2/1 s
            seed += 1
            started = time.monotonic()
            row, how = measure(key, bucket, args.seconds, specs, seed)
            how += f" [run took {time.monotonic() - started:.1f} s]"
            rows.append(row)
            notes.append(f"- {row[0]} / {bucket}: {how}")
            print(f"  done: {row[0]} / {bucket}", file=sys.stderr, flush=True)
        if bucket == "global":
            for key in filter(None, args.stock.split(",")):
                seed += 1
                row, how = measure(key, bucket, args.seconds, specs, seed, nodelay=False)
                rows.append(row)
                notes.append(f"- {row[0]} / {bucket}: {how}")
                print(f"  done: {row[0]} / {bucket}", file=sys.stderr, flush=True)
    print(table(["contender", "bucket", "2xx in window", "429s (wire)", "req/s", "% of limit",
                 "span rate"], rows))
    print()
    print(f"window D = {args.seconds:g} s from the first request the server saw; limits: "
          "competitors 2/s, global 200/10 s = 20/s")
    print("server: the sandbox sets TCP_NODELAY; rows marked [stock server] ran with Nagle on")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
