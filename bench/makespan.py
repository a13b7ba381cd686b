"""Batch makespan in simulated time: 1,000 probes vs the lower bound the buckets impose.

A SimWorld (SimClock, the sandbox marketplace with the published limits, InProcessTransport with
20 ms latency) runs bmctl's real probe run (ProbeRun over a Runtime, as ``bmctl probe`` does)
on ``generate_catalogue(N, seed=1)``: default limits, default settle 2 s, max_in_flight 16
(bmctl's default) plus variations side by side.

- makespan: simulated seconds from the batch start to its end (recovery and planning excluded).
- lower bound: for each bucket, (requests actually sent on it - burst) / the bucket's sustained
  rate (limit - burst + 1) / (window + jitter); the max over buckets. Requests are counted at the
  transport and classified with RouteMap.default(). "LB@doc" uses the documented rate instead
  (limit / window): what no client could beat even with zero jitter allowance.
- one at a time: max_in_flight=1 on the first ``--serial`` probes, scaled linearly to N.
- dip window: ProbeResult.dip_seconds (seconds spent below the final price, from the first write
  to the end of the probe) over the probes that dipped (dip_price set), nearest-rank p50/p99/max.
- dip send→last answer: for the same probes, from sending the dip to the probe's last answer
  (the confirming peek, or the last raise/undo and its peek): how long the listing's price was
  in play, queueing included.
- writes/probe: POSTs sent / probes run.
- CPU: process_time of the run (the simulation itself, bmctl + sandbox model + SQLite).

The circuit breaker is set out of reach (breaker_floor_hits=10**9) so that all N probes run.

    python bench/makespan.py [--n 1000] [--inflight 16,8,32,64] [--serial 50]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, percentile, table  # noqa: E402

from bmctl.pricing.probe import ProbeParams, ProbeTarget  # noqa: E402
from bmctl.pricing.runner import ProbeRun, ProbeRunOptions  # noqa: E402
from bmctl.sandbox.catalogue import generate_catalogue  # noqa: E402
from bmctl.sandbox.world import SimWorld  # noqa: E402
from bmctl.traffic.buckets import DEFAULT_JITTER, DEFAULT_LIMITS  # noqa: E402
from bmctl.traffic.routes import RouteMap  # noqa: E402

SETTLE = 2.0


class CountingTransport:
    """Counts sends per bucket (RouteMap.default()) and statuses; remembers send times."""

    def __init__(self, inner, clock) -> None:
        self.inner = inner
        self.clock = clock
        self.routes = RouteMap.default()
        self.per_bucket: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.times: dict[str, list[float]] = {}
        self.first_write: dict[str, float] = {}
        self.last_answer: dict[str, float] = {}

    def send(self, request, timeout):
        now = self.clock.monotonic()
        for b in self.routes.lookup(request.method, request.path):
            self.per_bucket[b] += 1
            self.times.setdefault(b, []).append(now)
        lid = request.listing_id
        if request.method == "POST" and lid and lid not in self.first_write:
            self.first_write[lid] = now
        response = self.inner.send(request, timeout)
        self.statuses[response.status] += 1
        if lid:
            self.last_answer[lid] = self.clock.monotonic()
        return response


def bucket_rate(name: str) -> float:
    spec = DEFAULT_LIMITS[name]
    return (spec.limit - spec.burst + 1) / (spec.window + DEFAULT_JITTER)


def doc_bound(name: str, count: int) -> float:
    """Least time to send ``count`` requests under the documented sliding window (``limit`` per
    ``window``, bursts allowed): the first ``limit`` at once, the next ``limit`` a window later..."""
    spec = DEFAULT_LIMITS[name]
    return ((count - 1) // spec.limit) * spec.window if count > 0 else 0.0


def run_batch(n: int, max_in_flight: int, seed: int = 1, *, reveal: bool = True,
              writes_burst: int | None = None) -> dict:
    specs = generate_catalogue(n, seed=seed)
    world = SimWorld(specs, settle=SETTLE, seed=seed, reveal=reveal)
    overrides = {}
    if writes_burst is not None:
        from dataclasses import replace
        limits = dict(DEFAULT_LIMITS)
        limits["listing_writes"] = replace(limits["listing_writes"], burst=writes_burst)
        overrides["limits"] = limits
    targets = [ProbeTarget(s.id, s.offers[0].market) for s in specs]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        counting = CountingTransport(world.transport, world.clock)
        runtime = world.runtime(db, **overrides)
        runtime.transport = counting
        options = ProbeRunOptions(params=ProbeParams(settle=SETTLE), max_in_flight=max_in_flight,
                                  breaker_floor_hits=10**9)
        cpu0 = time.process_time()
        with runtime:
            run = ProbeRun(runtime, options)
            run.recover_first()
            counting.per_bucket.clear(); counting.times.clear(); counting.statuses.clear()
            t0 = world.clock.monotonic()
            summary = run.run(targets)
            t1 = world.clock.monotonic()
        cpu = time.process_time() - cpu0
    makespan = t1 - t0
    lb, lb_doc, bottleneck = 0.0, 0.0, ""
    for name, count in counting.per_bucket.items():
        spec = DEFAULT_LIMITS[name]
        if writes_burst is not None and name == "listing_writes":
            from dataclasses import replace
            spec = replace(spec, burst=writes_burst)
        rate = (spec.limit - spec.burst + 1) / (spec.window + DEFAULT_JITTER)
        need = max(0, count - spec.burst) / rate
        if need > lb:
            lb, bottleneck = need, name
        lb_doc = max(lb_doc, doc_bound(name, count))
    results = summary.results
    dips = [r.dip_seconds for r in results if r.dip_price is not None]
    exposure = [counting.last_answer[r.listing_id] - counting.first_write[r.listing_id]
                for r in results if r.dip_price is not None and r.listing_id in counting.first_write]
    writes = counting.per_bucket.get("listing_writes", 0)
    outcomes = Counter(r.outcome for r in results)
    # Idle time of the bottleneck bucket at the start and the end of the batch.
    times = counting.times.get(bottleneck, [t0])
    return {
        "reveal": reveal, "writes_burst": writes_burst,
        "n": n, "inflight": max_in_flight, "makespan": makespan, "lb": lb, "lb_doc": lb_doc,
        "bottleneck": bottleneck, "per_bucket": dict(counting.per_bucket), "dips": dips, "exposure": exposure,
        "writes_per_probe": writes / max(1, len(results)), "cpu": cpu, "outcomes": outcomes,
        "statuses": dict(counting.statuses), "results": len(results),
        "head_idle": times[0] - t0, "tail": t1 - times[-1],
        "not_started": len(summary.not_started),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--inflight", default="16,8,32,64", help="max_in_flight values; the first is bmctl's default")
    parser.add_argument("--variants", default="hidden,burst",
                        help="extra rows at the default max_in_flight: hidden (price_to_win does not reveal "
                             "headroom: upward search), burst (listing_writes burst=1000)")
    parser.add_argument("--serial", type=int, default=100, help="probes for the one-at-a-time run (scaled to N)")
    args = parser.parse_args()
    header(f"Batch makespan, simulated time ({args.n} probes, settle {SETTLE:g} s, default limits)")
    runs = [run_batch(args.n, int(k)) for k in args.inflight.split(",")]
    first = int(args.inflight.split(",")[0])
    variants = [v for v in args.variants.split(",") if v]
    if "hidden" in variants:
        runs.append(run_batch(args.n, first, reveal=False))
    if "burst" in variants:
        runs.append(run_batch(args.n, first, writes_burst=1000))
    serial = run_batch(args.serial, 1) if args.serial else None
    rows = []
    for r in runs:
        label = f"bmctl, max_in_flight={r['inflight']}"
        if not r["reveal"]:
            label += ", hidden headroom"
        if r["writes_burst"] is not None:
            label += f", listing_writes burst={r['writes_burst']}"
        rows.append([
            label, r["results"], f"{r['makespan']:.1f}",
            f"{r['lb']:.1f} ({r['bottleneck']})", f"{r['makespan'] / r['lb']:.3f}×",
            f"{r['lb_doc']:.0f}", f"{r['makespan'] / r['lb_doc']:.2f}×",
            f"{r['head_idle']:.1f} / {r['tail']:.1f}",
            f"{percentile(r['dips'], 50):.2f}", f"{percentile(r['dips'], 99):.2f}",
            f"{max(r['dips']):.2f}", f"{percentile(r['exposure'], 50):.2f} / {percentile(r['exposure'], 99):.2f}",
            f"{r['writes_per_probe']:.2f}", f"{r['cpu']:.1f}",
        ])
    if serial:
        scale = args.n / serial["results"]
        rows.append([
            f"one at a time (max_in_flight=1, {serial['results']} probes ×{scale:g})", args.n,
            f"{serial['makespan'] * scale:.1f}", f"{runs[0]['lb']:.1f}",
            f"{serial['makespan'] * scale / runs[0]['lb']:.2f}×", "", "", "",
            f"{percentile(serial['dips'], 50):.2f}", f"{percentile(serial['dips'], 99):.2f}",
            f"{max(serial['dips']):.2f}",
            f"{percentile(serial['exposure'], 50):.2f} / {percentile(serial['exposure'], 99):.2f}",
            f"{serial['writes_per_probe']:.2f}", f"{serial['cpu']:.1f}",
        ])
    print(table(["run", "probes", "makespan s", "lower bound s (bucket)", "× LB", "LB@doc s", "× LB@doc",
                 "bottleneck idle head/tail s", "dip p50 s", "dip p99 s", "dip max s",
                 "dip send→last answer p50/p99 s", "writes/probe", "CPU s"], rows))
    print()
    r = runs[0]
    print(f"requests per bucket (max_in_flight={r['inflight']}): "
          + ", ".join(f"{k} {v}" for k, v in sorted(r["per_bucket"].items()))
          + f"; bottleneck: {r['bottleneck']} at {bucket_rate(r['bottleneck']):.4f}/s")
    print("statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())))
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(r["outcomes"].items()))
          + f"; dipped: {len(r['dips'])}; not started: {r['not_started']}")
    ok_span = r["makespan"] / r["lb"] <= 1.05
    ok_dip = percentile(r["dips"], 99) <= SETTLE + 2
    print(f"goal makespan ≤ 1.05× LB: {'met' if ok_span else 'MISSED'}; "
          f"goal dip p99 ≤ settle + 2 s = {SETTLE + 2:g} s: {'met' if ok_dip else 'MISSED'}")


if __name__ == "__main__":
    main()
