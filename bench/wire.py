"""Requests in flight (issue 14): work the global bucket bounds, side by side for
``[traffic] max_in_flight`` 1, 2, 4, 8, 32 and 64 (the default) at 0, 150 ± 100 and 300 ± 150 ms
per answer, in simulated time and over loopback HTTP.

Simulated time (SimWorld: simulated clock, the sandbox marketplace with the published limits
enforced on arrival, the in-process wire: a request reaches the marketplace half its latency
after it left):
- ``update-price --file`` of N rows (a read and a write each) through bmctl's real path
  (``apply_price_orders`` with the run's controller, as the command runs it);
- ``listings`` over P pages of 50 (``iter_listings``, the first page then the rest ahead).

Loopback HTTP (``--http``; real time, so smaller by default): the ``bmctl`` command itself in a
subprocess, as a user runs it, against a sandbox server in another process whose answers take
the delay (half before the limiter counts the request, half after) — ``update-price --file``,
``listings`` and ``probe --all``, with ``[traffic] max_in_flight`` set in a config file.

Bounds from the requests counted at the marketplace, per bucket (the max over buckets):
((n − 1) // limit) × window (LB@doc), and the same with each slot reused a window plus guard
plus the mean answer time after its last use (LB@RTT). 429s counted at the marketplace.

    python bench/wire.py [--rows 2000] [--pages 500] [--quick] [--http] [--no-sim]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, table  # noqa: E402

from bmctl.pricing.journal import Journal  # noqa: E402
from bmctl.pricing.targets import price_order  # noqa: E402
from bmctl.pricing.updates import apply_price_orders  # noqa: E402
from bmctl.sandbox.app import SandboxApp  # noqa: E402
from bmctl.sandbox.catalogue import generate_catalogue  # noqa: E402
from bmctl.sandbox.faults import Faults  # noqa: E402
from bmctl.sandbox.limits import DEFAULT_LIMITS, scopes_for  # noqa: E402
from bmctl.sandbox.model import Marketplace  # noqa: E402
from bmctl.sandbox.server import start_in_thread  # noqa: E402
from bmctl.sandbox.world import SimWorld  # noqa: E402
from bmctl.traffic.admission import guard  # noqa: E402

TOKEN = "sandbox"
DELAYS = [(0.0, 0.0), (150.0, 100.0), (300.0, 150.0)]


class Counts:
    """What reached the marketplace: requests per bucket and 429s (wraps ``app.respond``)."""

    def __init__(self, app: SandboxApp) -> None:
        self.per_bucket: Counter[str] = Counter()
        self.requests = 0
        self.too_many = 0
        respond = app.respond

        def counting(request, decision):  # type: ignore[no-untyped-def]
            response = respond(request, decision)
            self.requests += 1
            self.too_many += response.status == 429
            for scope, _key in scopes_for(request.method, request.path, TOKEN):
                self.per_bucket[scope] += 1
            return response

        app.respond = counting  # type: ignore[method-assign]

    def as_dict(self) -> dict[str, Any]:
        return {"requests": self.requests, "429": self.too_many, "per_bucket": dict(self.per_bucket)}


def bounds(per_bucket: dict[str, int], rtt: float) -> tuple[float, float, str]:
    """LB@doc, LB@RTT and the bucket that sets LB@RTT (max over buckets)."""
    doc = lat = 0.0
    which = "global"
    for name, count in per_bucket.items():
        limit, window = DEFAULT_LIMITS[name]
        cycles = (count - 1) // limit
        doc = max(doc, cycles * window)
        if cycles * (window + guard(window) + rtt) > lat:
            lat, which = cycles * (window + guard(window) + rtt), name
    return doc, lat, which


def discount(specs) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(listing id, 1 % below its price, market) per listing: a real change within 30 %."""
    rows = []
    for spec in specs:
        offer = spec.offers[0]
        price = (offer.price.amount * Decimal("0.99")).quantize(Decimal("0.01"))
        rows.append((spec.id, str(price), offer.market))
    return rows


# --- simulated time -----------------------------------------------------------------------------

def sim_world(specs, latency: float, jitter: float) -> tuple[SimWorld, Counts]:  # type: ignore[no-untyped-def]
    faults = Faults(latency=latency, jitter=jitter) if latency else None
    world = SimWorld(specs, latency=0.0, faults=faults, seed=1)
    return world, Counts(world.app)


def sim_updates(rows: int, latency: float, jitter: float, workers: int) -> dict:
    specs = generate_catalogue(rows, markets=("fr-fr",), seed=5)
    world, counts = sim_world(specs, latency, jitter)
    orders = [price_order(*row) for row in discount(specs)]
    with tempfile.TemporaryDirectory() as tmp, world.runtime(Path(tmp) / "u.db", command="update-price",
                                                             traffic_max_in_flight=workers) as runtime:
        controller = runtime.controller
        journal = Journal(runtime.db, runtime.run_id, runtime.clock.wall)
        start = world.clock.monotonic()
        results = apply_price_orders(runtime.client, journal, orders, max_change_pct=30.0,
                                     controller=controller, window=2 * controller.max_in_flight)
        elapsed = world.clock.monotonic() - start
    updated = sum(1 for r in results if r.status == "updated")
    return {"elapsed": elapsed, "done": f"{updated}/{rows} updated", **counts.as_dict()}


def sim_listings(pages: int, latency: float, jitter: float, workers: int) -> dict:
    specs = generate_catalogue(pages * 50, markets=("fr-fr",), seed=6)
    world, counts = sim_world(specs, latency, jitter)
    with tempfile.TemporaryDirectory() as tmp, world.runtime(Path(tmp) / "l.db", command="listings",
                                                             writing=False,
                                                             traffic_max_in_flight=workers) as runtime:
        start = world.clock.monotonic()
        count = sum(1 for _ in runtime.client.iter_listings(market="fr-fr"))
        elapsed = world.clock.monotonic() - start
    return {"elapsed": elapsed, "done": f"{count} listings", **counts.as_dict()}


# --- loopback HTTP ------------------------------------------------------------------------------

def serve(conn, listings: int, seed: int, latency: float, jitter: float) -> None:  # type: ignore[no-untyped-def]
    """A sandbox server in its own process: sends its URL, then its counts when told to stop."""
    specs = generate_catalogue(listings, markets=("fr-fr",), seed=seed)
    marketplace = Marketplace(time.monotonic, settle=2.0, rng=random.Random(seed))
    marketplace.load(specs)
    app = SandboxApp(marketplace, token=TOKEN, faults=Faults(latency=latency, jitter=jitter),
                     rng=random.Random(seed))
    counts = Counts(app)
    server, url = start_in_thread(app)
    conn.send(url)
    conn.recv()
    server.stop()
    conn.send(counts.as_dict())
    conn.close()


def http_run(workload: str, size: int, latency: float, jitter: float, workers: int) -> dict:
    """One ``bmctl`` command against a fresh server; wall time of the command."""
    listings = {"update-price --file": size, "listings": size * 50, "probe --all": size}[workload]
    seed = {"update-price --file": 5, "listings": 6, "probe --all": 7}[workload]
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=serve, args=(child, listings, seed, latency, jitter), daemon=True)
    server.start()
    url = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bmctl.toml"
        config.write_text(f"[traffic]\nmax_in_flight = {workers}\n")
        env = {**os.environ, "BMCTL_TOKEN": TOKEN, "BMCTL_CONFIG": str(config),
               "BMCTL_USER_AGENT": "BM-bench-bmctl;bench@example.com"}
        argv = [sys.executable, "-m", "bmctl", "--base-url", url, "--market", "fr-fr",
                "--db", str(Path(tmp) / "bench.db"), "--format", "ndjson", "--quiet"]
        if workload == "update-price --file":
            rows = Path(tmp) / "rows.csv"
            specs = generate_catalogue(size, markets=("fr-fr",), seed=seed)
            rows.write_text("listing_id,price,market\n"
                            + "".join(f"{i},{p},{m}\n" for i, p, m in discount(specs)))
            argv += ["update-price", "--file", str(rows)]
        elif workload == "listings":
            argv += ["listings"]
        else:
            argv += ["probe", "--all"]
        start = time.monotonic()
        done = subprocess.run(argv, env=env, capture_output=True, text=True)
        elapsed = time.monotonic() - start
    parent.send("stop")
    counts = parent.recv()
    server.join(10)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    if workload == "update-price --file":
        summary = f"{sum(1 for r in lines if r.get('status') == 'updated')}/{size} updated"
    elif workload == "listings":
        summary = f"{len(lines)} listings"
    else:
        summary = f"{len(lines)} probes"
    if done.returncode:
        summary += f", exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"
    return {"elapsed": elapsed, "done": summary, **counts}


# --- report -------------------------------------------------------------------------------------

def row(medium: str, workload: str, latency: float, jitter: float, workers: int, r: dict) -> list:
    doc, rtt, bucket = bounds(r["per_bucket"], latency / 1000.0)
    label = f"{latency:g} ± {jitter:g} ms" if jitter else f"{latency:g} ms"
    ratio_doc = f"{r['elapsed'] / doc:.2f}×" if doc else "-"
    ratio_rtt = f"{r['elapsed'] / rtt:.2f}×" if rtt else "-"
    return [medium, workload, label, workers, r["done"], r["requests"], f"{r['elapsed']:.1f}",
            f"{doc:.0f}", ratio_doc, f"{rtt:.1f} ({bucket})", ratio_rtt, r["429"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000, help="update-price rows (simulated)")
    parser.add_argument("--pages", type=int, default=500, help="listing pages of 50 (simulated)")
    parser.add_argument("--wires", default="1,2,4,8,32,64", help="max_in_flight values")
    parser.add_argument("--quick", action="store_true", help="400 rows, 100 pages")
    parser.add_argument("--no-sim", action="store_true", help="skip the simulated-time rows")
    parser.add_argument("--http", action="store_true", help="add loopback HTTP rows (real time)")
    parser.add_argument("--http-rows", type=int, default=300)
    parser.add_argument("--http-pages", type=int, default=100)
    parser.add_argument("--http-probes", type=int, default=40)
    parser.add_argument("--http-wires", default="1,8,32,64")
    args = parser.parse_args()
    rows, pages = (400, 100) if args.quick else (args.rows, args.pages)
    wires = [int(w) for w in args.wires.split(",")]
    header(f"Requests in flight: simulated update-price --file {rows} rows, listings {pages} pages"
           + (f"; loopback HTTP update-price {args.http_rows} rows, listings {args.http_pages} pages, "
              f"probe --all {args.http_probes}" if args.http else ""))
    out = []
    if not args.no_sim:
        for name, run, size in (("update-price --file", sim_updates, rows), ("listings", sim_listings, pages)):
            for latency, jitter in DELAYS:
                for workers in wires:
                    out.append(row("sim", name, latency, jitter, workers, run(size, latency, jitter, workers)))
    if args.http:
        http_wires = [int(w) for w in args.http_wires.split(",")]
        for name, size in (("update-price --file", args.http_rows), ("listings", args.http_pages),
                           ("probe --all", args.http_probes)):
            if not size:  # --http-rows 0 and the like: leave that workload out
                continue
            for latency, jitter in DELAYS:
                for workers in http_wires:
                    r = http_run(name, size, latency, jitter, workers)
                    out.append(row("http", name, latency, jitter, workers, r))
                    print("  " + " | ".join(map(str, out[-1])), file=sys.stderr, flush=True)
    print(table(["medium", "workload", "answer delay", "max_in_flight", "done", "requests", "seconds",
                 "LB@doc s", "× LB@doc", "LB@RTT s (bucket)", "× LB@RTT", "429s"], out))


if __name__ == "__main__":
    main()
