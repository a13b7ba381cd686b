"""Batch makespan in simulated time: 1,000 probes vs what the documented limits allow.

A SimWorld (SimClock, the sandbox marketplace enforcing the published limits as sliding windows,
the in-process transport) runs bmctl's real probe run (ProbeRun over a Runtime, as ``bmctl
probe`` does, so admission goes through the SQLite budget ledger of the run's database) on
``generate_catalogue(N, seed=1)``: default limits, settle 2 s, max_in_flight 16 (bmctl's
default). The circuit breaker is set out of reach (breaker_floor_hits=10**9) so all N probes run.

Answer delay (the in-process transport advances the simulated clock by it, half before the
marketplace sees the request and half after; the controller sends one request at a time):
``20 ms`` = SimWorld's default constant latency; ``150 ± 100`` and ``300 ± 150 ms`` =
``Faults(latency=..., jitter=...)``, each answer uniform in [latency − jitter, latency + jitter].

Bounds (requests counted per bucket at the transport, classified with RouteMap.default(); a
request answered 429 is not counted, as the marketplace does not count it):

- **LB@doc** — what the documented sliding windows allow with bursts and zero delay:
  ``((count − 1) // limit) × window`` per bucket, the max over buckets. The contract's bound.
- **LB@RTT** — the same with each slot reusable only ``window + guard + RTT`` after its previous
  use (``RTT`` = the mean answer time measured on that bucket's requests): what any client that is
  never over the limit *whatever the delay* can do, since a slot is reused a window after its
  answer (the anchored rule; ``bmctl.traffic.admission`` shows no rule knowing only send and
  answer times admits more). At 150 ms the competitors bucket alone allows 2 / 1.151 s.
  An estimate at the mean, not a bound for every draw of the delays.
- **Σ RTT** — the sum of all answer times: the floor for a client that sends one request at a
  time (bmctl's single-threaded controller), whatever the limits.

Columns: makespan = simulated seconds from the batch start to its end (recovery excluded);
dip p50/p99/max = ``ProbeResult.dip_seconds`` (seconds below the final price, from the first
write to the end of the probe) over probes that dipped; dip send→last answer = from sending the
dip to the probe's last answer (how long the price was in play, queueing included);
writes/probe = POSTs counted / probes; 429s = answers 429 seen at the transport; CPU = process time
of the run (the simulation: bmctl + marketplace model + SQLite).

The previous design (token buckets, burst 1 and a 50 ms jitter allowance, commit 8e18beb) runs
the same worker in a subprocess over that commit's ``bmctl/`` (extracted with ``git archive``,
see ``bench/legacy/tree.py``), same catalogue, seed and delays, side by side in this run.

    python bench/makespan.py [--n 1000] [--delays 20,150:100,300:150] [--no-old] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from legacy.tree import bmctl_path, old_tree, run_worker  # noqa: E402

sys.path.insert(0, bmctl_path())  # this repository, or the old design's tree in a worker

from _common import header, percentile, table  # noqa: E402

from bmctl.pricing.probe_types import ProbeParams, ProbeTarget  # noqa: E402
from bmctl.pricing.runner import ProbeRun, ProbeRunOptions  # noqa: E402
from bmctl.sandbox.catalogue import generate_catalogue  # noqa: E402
from bmctl.sandbox.faults import Faults  # noqa: E402
from bmctl.sandbox.world import SimWorld  # noqa: E402
from bmctl.traffic.routes import RouteMap  # noqa: E402

SETTLE = 2.0
#: The published limits (documented, not bmctl's configuration): limit, window seconds.
DOC_LIMITS = {"global": (200, 10.0), "catalog": (20, 10.0), "competitors": (2, 1.0),
              "listing_writes": (2000, 3600.0)}


def guard(window: float) -> float:
    """The anchored rule's clock guard (``bmctl.traffic.admission.guard``), restated here so the
    bound is the same for both designs' rows."""
    return max(1e-3, window * 1e-4)


class CountingTransport:
    """Counts sends per bucket and statuses; answer times per bucket; dip timings per listing."""

    def __init__(self, inner, clock) -> None:
        self.inner = inner
        self.clock = clock
        self.routes = RouteMap.default()
        self.per_bucket: Counter[str] = Counter()
        self.rtt_sum: defaultdict[str, float] = defaultdict(float)
        self.rtt_total = 0.0
        self.statuses: Counter[int] = Counter()
        self.first_write: dict[str, float] = {}
        self.last_answer: dict[str, float] = {}

    def reset(self) -> None:
        self.per_bucket.clear()
        self.rtt_sum.clear()
        self.rtt_total = 0.0
        self.statuses.clear()

    def send(self, request, timeout):
        now = self.clock.monotonic()
        buckets = self.routes.lookup(request.method, request.path)
        lid = request.listing_id
        if request.method == "POST" and lid and lid not in self.first_write:
            self.first_write[lid] = now
        response = None
        try:
            response = self.inner.send(request, timeout)
        finally:
            rtt = self.clock.monotonic() - now
            self.rtt_total += rtt
            if response is None or response.status != 429:  # a 429 is not counted by the server
                for b in buckets:
                    self.per_bucket[b] += 1
                    self.rtt_sum[b] += rtt
        self.statuses[response.status] += 1
        if lid:
            self.last_answer[lid] = self.clock.monotonic()
        return response


class CountingWire:
    """The same counting over the world's in-process wire (several requests at once)."""

    def __init__(self, counting: CountingTransport, inner) -> None:
        self.counting = counting
        self.inner = inner
        self.capacity = inner.capacity
        self.started: dict = {}

    def start(self, token, request, timeout):
        now = self.counting.clock.monotonic()
        self.started[token] = (now, request)
        lid = request.listing_id
        if request.method == "POST" and lid and lid not in self.counting.first_write:
            self.counting.first_write[lid] = now
        return self.inner.start(token, request, timeout)

    def poll(self):
        done = self.inner.poll()
        c = self.counting
        for token, result, answered in done:
            sent, request = self.started.pop(token)
            rtt = answered - sent
            c.rtt_total += rtt
            status = getattr(result, "status", None)
            if status != 429:
                for b in c.routes.lookup(request.method, request.path):
                    c.per_bucket[b] += 1
                    c.rtt_sum[b] += rtt
            if status is not None:
                c.statuses[status] += 1
            if request.listing_id:
                c.last_answer[request.listing_id] = answered
        return done

    def wait(self, until):
        self.inner.wait(until)

    def close(self):
        self.inner.close()


def run_batch(spec: dict) -> dict:
    """One batch; ``spec``: n, seed, latency_ms, jitter_ms, inflight, reveal, writes_burst
    (the old design only). Runs with whichever bmctl is first on the path."""
    n, seed = spec["n"], spec.get("seed", 1)
    catalogue = generate_catalogue(n, seed=seed)
    latency, jitter = spec.get("latency_ms", 20.0), spec.get("jitter_ms", 0.0)
    if jitter == 0 and latency == 20.0:
        world = SimWorld(catalogue, settle=SETTLE, seed=seed, reveal=spec.get("reveal", True))
    else:
        world = SimWorld(catalogue, settle=SETTLE, seed=seed, reveal=spec.get("reveal", True),
                         latency=0.0, faults=Faults(latency=latency, jitter=jitter))
    overrides = {}
    if spec.get("writes_burst") is not None:  # the old design's LimitSpec has a burst
        from dataclasses import replace

        from bmctl.traffic.buckets import DEFAULT_LIMITS
        limits = dict(DEFAULT_LIMITS)
        limits["listing_writes"] = replace(limits["listing_writes"], burst=spec["writes_burst"])
        overrides["limits"] = limits
    targets = [ProbeTarget(s.id, s.offers[0].market) for s in catalogue]
    wire_workers = spec.get("wire")
    if wire_workers is not None:  # requests on the wire at once ([traffic] max_in_flight)
        from dataclasses import replace

        from bmctl.config import TrafficSettings
        overrides["traffic"] = TrafficSettings(max_in_flight=wire_workers)
    with tempfile.TemporaryDirectory() as tmp:
        counting = CountingTransport(world.transport, world.clock)
        if wire_workers is not None and wire_workers > 1:
            counting.wire = lambda workers: CountingWire(counting, world.transport.wire(workers))  # type: ignore[attr-defined]
        runtime = world.runtime(Path(tmp) / "bench.db", **overrides)
        runtime.transport = counting
        options = ProbeRunOptions(params=ProbeParams(settle=SETTLE), max_in_flight=spec.get("inflight", 16),
                                  breaker_floor_hits=10**9)
        cpu0 = time.process_time()
        with runtime:
            run = ProbeRun(runtime, options)
            run.recover_first()
            counting.reset()
            t0 = world.clock.monotonic()
            summary = run.run(targets)
            t1 = world.clock.monotonic()
        cpu = time.process_time() - cpu0
    results = summary.results
    dips = [r.dip_seconds for r in results if r.dip_price is not None]
    exposure = [counting.last_answer[r.listing_id] - counting.first_write[r.listing_id]
                for r in results if r.dip_price is not None and r.listing_id in counting.first_write]
    writes = counting.per_bucket.get("listing_writes", 0)
    return {
        "makespan": t1 - t0, "per_bucket": dict(counting.per_bucket),
        "rtt_mean": {b: counting.rtt_sum[b] / c for b, c in counting.per_bucket.items() if c},
        "rtt_total": counting.rtt_total,
        "dip": [percentile(dips, 50), percentile(dips, 99), max(dips)] if dips else [None] * 3,
        "dipped": len(dips),
        "exposure": [percentile(exposure, 50), percentile(exposure, 99)] if exposure else [None] * 2,
        "writes_per_probe": writes / max(1, len(results)), "probes": len(results), "cpu": cpu,
        "statuses": {str(k): v for k, v in sorted(counting.statuses.items())},
        "outcomes": dict(sorted(Counter(r.outcome for r in results).items())),
        "not_started": len(summary.not_started),
    }


def bounds(r: dict) -> dict:
    """LB@doc, LB@RTT (and the bucket that sets each) and Σ RTT from a batch's counts."""
    doc, doc_b, lat, lat_b = 0.0, "", 0.0, ""
    for name, count in r["per_bucket"].items():
        if name not in DOC_LIMITS or count <= 0:
            continue
        limit, window = DOC_LIMITS[name]
        cycles = (count - 1) // limit
        if cycles * window > doc:
            doc, doc_b = cycles * window, name
        t = cycles * (window + guard(window) + r["rtt_mean"][name])
        if t > lat:
            lat, lat_b = t, name
    return {"doc": doc, "doc_b": doc_b, "lat": lat, "lat_b": lat_b, "serial": r["rtt_total"]}


def delay_label(latency: float, jitter: float) -> str:
    return f"{latency:g} ms" if not jitter else f"{latency:g} ± {jitter:g} ms"


def parse_delays(text: str) -> list[tuple[float, float]]:
    out = []
    for part in text.split(","):
        lat, _, jit = part.partition(":")
        out.append((float(lat), float(jit or 0)))
    return out


def fmt(x: float | None, digits: int = 2) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--delays", default="20,150:100,300:150",
                        help="answer delays, ms[:jitter ms], comma-separated (20 = SimWorld's default)")
    parser.add_argument("--inflight", type=int, default=16, help="max_in_flight (bmctl's default 16)")
    parser.add_argument("--wire", default="1,2,4,8,64",
                        help="[traffic] max_in_flight values: requests on the wire at once (1: one at a time)")
    parser.add_argument("--no-old", action="store_true", help="skip the old design's rows (8e18beb)")
    parser.add_argument("--no-hidden", action="store_true", help="skip the hidden-headroom row")
    parser.add_argument("--quick", action="store_true", help="200 probes, no hidden-headroom row")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # JSON spec: run one batch, print JSON
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_batch(json.loads(args.worker))))
        return
    n = 200 if args.quick else args.n
    delays = parse_delays(args.delays)
    header(f"Batch makespan, simulated time ({n} probes, settle {SETTLE:g} s, published limits)")

    rows_spec = []  # (label, design, spec)
    wires = [int(w) for w in args.wire.split(",") if w]
    for lat, jit in delays:
        for w in wires:
            label = "bmctl, budget ledger" + (", one request on the wire" if w == 1 else f", max_in_flight {w}")
            rows_spec.append((label, "new", dict(n=n, latency_ms=lat, jitter_ms=jit, wire=w)))
    if not (args.quick or args.no_hidden):
        rows_spec.append(("bmctl, budget ledger, hidden headroom", "new",
                          dict(n=n, latency_ms=delays[0][0], jitter_ms=delays[0][1], reveal=False)))
    if not args.no_old:
        for lat, jit in delays:
            rows_spec.append(("old token buckets (8e18beb), burst 1", "old",
                              dict(n=n, latency_ms=lat, jitter_ms=jit)))
        rows_spec.append(("old token buckets (8e18beb), listing_writes burst 1000", "old",
                          dict(n=n, latency_ms=delays[0][0], jitter_ms=delays[0][1], writes_burst=1000)))

    results = []
    old_specs = [(i, s) for i, (_, d, s) in enumerate(rows_spec) if d == "old"]
    done: dict[int, dict] = {}
    for i, (_, design, spec) in enumerate(rows_spec):
        if design == "new":
            done[i] = run_batch({**spec, "inflight": args.inflight})
    if old_specs:
        with old_tree() as tree:
            if tree is not None:
                for i, spec in old_specs:
                    out = run_worker(tree, "bench/makespan.py",
                                     ["--worker", json.dumps({**spec, "inflight": args.inflight})])
                    done[i] = json.loads(out.strip().splitlines()[-1])
    for i, (label, _design, spec) in enumerate(rows_spec):
        if i in done:
            results.append((label, spec, done[i]))

    rows = []
    for label, spec, r in results:
        b = bounds(r)
        rows.append([
            label, delay_label(spec["latency_ms"], spec["jitter_ms"]), r["probes"], f"{r['makespan']:.1f}",
            f"{b['doc']:.0f} ({b['doc_b']})", f"{r['makespan'] / b['doc']:.3f}×",
            f"{b['lat']:.1f} ({b['lat_b']})", f"{r['makespan'] / b['lat']:.3f}×", f"{b['serial']:.0f}",
            r["statuses"].get("429", 0),
            f"{fmt(r['dip'][0])} / {fmt(r['dip'][1])} / {fmt(r['dip'][2])}",
            f"{fmt(r['exposure'][0])} / {fmt(r['exposure'][1])}",
            f"{r['writes_per_probe']:.2f}", f"{r['cpu']:.1f}",
        ])
    print(table(["design", "answer delay", "probes", "makespan s", "LB@doc s (bucket)", "× LB@doc",
                 "LB@RTT s (bucket)", "× LB@RTT", "Σ RTT s", "429s", "dip p50 / p99 / max s",
                 "dip send→last answer p50 / p99 s", "writes/probe", "CPU s"], rows))
    print()
    for label, spec, r in results:
        print(f"- {label}, {delay_label(spec['latency_ms'], spec['jitter_ms'])}: requests "
              + ", ".join(f"{k} {v}" for k, v in sorted(r["per_bucket"].items()))
              + "; mean RTT " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in sorted(r["rtt_mean"].items()))
              + "; statuses " + ", ".join(f"{k}: {v}" for k, v in r["statuses"].items())
              + "; outcomes " + ", ".join(f"{k} {v}" for k, v in r["outcomes"].items())
              + f"; dipped {r['dipped']}; not started {r['not_started']}")
    print()
    new = [(spec, r) for label, spec, r in results if label == "bmctl, budget ledger"]
    for spec, r in new:
        b = bounds(r)
        goal = 1.03 if (spec["latency_ms"], spec["jitter_ms"]) == (20.0, 0.0) else 1.1
        doc_ok = r["makespan"] / b["doc"] <= goal
        lat_ok = r["makespan"] / b["lat"] <= goal
        dip_ok = r["dip"][1] is not None and r["dip"][1] <= SETTLE + 2
        print(f"goal ≤ {goal}× at {delay_label(spec['latency_ms'], spec['jitter_ms'])}: "
              f"vs LB@doc {'met' if doc_ok else 'MISSED'} ({r['makespan'] / b['doc']:.3f}×), "
              f"vs LB@RTT {'met' if lat_ok else 'MISSED'} ({r['makespan'] / b['lat']:.3f}×); "
              f"dip p99 ≤ settle + 2 s = {SETTLE + 2:g} s: {'met' if dip_ok else 'MISSED'}; "
              f"429s: {r['statuses'].get('429', 0)}")


if __name__ == "__main__":
    main()
