"""Cron scenario in simulated time: 800 price writes wanted every 15 minutes, 10-minute deadline.

One SimWorld (SimClock, the sandbox marketplace enforcing the published limits as sliding
windows and answering 429 + a 10 s block on a breach, in-process transport at 20 ms per answer,
or ``--delay 150:100`` for 150 ± 100 ms)
and one bmctl database shared by every run. Every ``--period`` seconds (900) a cron run starts:
bmctl's ``update-price --file`` path with 800 rows, as ``bmctl/cli/prices.py`` runs it — a
writing Runtime (run lock, run record, request log, the budget ledger in the database), the
plan (``plan_updates``), recovery, then ``apply_price_orders`` (each row: read the listing,
then write the price, NORMAL priority). Run k asks for (1 + k mod 100) ‰ below each
catalogue price, so every row is a real write (never "unchanged").

``update-price`` has no ``--deadline`` option, so the cron's 10-minute deadline is a timer on
the run's own traffic controller (``controller.call_at(start + 600 s, ...)``) that raises out
of the controller's loop: whatever request is waiting for a slot at that moment is never sent,
and the run ends as a killed run would, its Runtime closed normally (ledger flushed, run
recorded). Without it, a run that found the hour's writes spent would wait up to an hour for
slots, and the next cron run would fail on the run lock (exit 5).

Measured at the marketplace (a wrapper around the sandbox app records each write's arrival
and status): writes per clock hour, the most writes in any 3600 s window (sliding, closed), 429s.
Per run: writes sent, the time from the run's start to its last write's answer, and the pace
while sending (global-bucket requests per second over that time vs 200/10 s = 20/s: each row is
two requests on the global bucket, so 10 writes/s is the global pace).

Side by side, in subprocesses over the previous design's ``bmctl/`` (commit 8e18beb, token
buckets with a 50 ms jitter allowance, budget carried over from the request log; see
``bench/legacy/tree.py``): ``listing_writes`` burst 1 (its default) and burst 1000.

    python bench/cron.py [--hours 4] [--rows 800] [--period 900] [--deadline 600] [--delay 20] [--quick]
"""

from __future__ import annotations

import argparse
import bisect
import inspect
import json
import os
import sys
import tempfile
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from legacy.tree import bmctl_path, old_tree, run_worker  # noqa: E402

sys.path.insert(0, bmctl_path())  # this repository, or the old design's tree in a worker

from _common import header, table  # noqa: E402

from bmctl.api.money import Money, tick  # noqa: E402
from bmctl.pricing.journal import Journal  # noqa: E402
from bmctl.pricing.plan import plan_updates  # noqa: E402
from bmctl.pricing.recovery import recover  # noqa: E402
from bmctl.pricing.targets import PriceOrder  # noqa: E402
from bmctl.pricing.updates import apply_price_orders  # noqa: E402
from bmctl.sandbox.catalogue import generate_catalogue  # noqa: E402
from bmctl.sandbox.world import SimWorld  # noqa: E402

HOUR = 3600.0
WRITES_PER_HOUR = 2000
GLOBAL_RATE = 200 / 10.0


class CronDeadline(Exception):
    """Raised from the controller's loop at the deadline (not a BmctlError: it ends the run)."""


class RecordingApp:
    """The sandbox app, recording when each listing write reached the marketplace and its status."""

    def __init__(self, app, clock) -> None:
        self.app = app
        self.clock = clock
        self.writes: list[tuple[float, int]] = []  # (arrival, status)
        self.requests = 0
        self.rejected = 0  # 429s of any request

    def decide(self, request):
        return self.app.decide(request)

    def respond(self, request, decision):
        now = self.clock.monotonic()
        response = self.app.respond(request, decision)
        self.requests += 1
        if response.status == 429:
            self.rejected += 1
        if request.method == "POST" and request.path.startswith("/ws/listings/"):
            self.writes.append((now, response.status))
        return response

    def __getattr__(self, name):
        return getattr(self.app, name)


def orders_for(specs, run: int) -> list[PriceOrder]:
    """Run ``run``'s rows: ``(1 + run % 100) ‰`` below each catalogue price, a price no other
    run of the last 100 asked for (so every row is a write even after a run stopped early)."""
    factor = 1 - Decimal(1 + run % 100) / 1000
    out = []
    for spec in specs:
        offer = spec.offers[0]
        cur = offer.price.currency
        price = Money((offer.price.amount * factor).quantize(tick(cur), ROUND_HALF_UP), cur)
        out.append(PriceOrder(spec.id, offer.market, price))
    return out


def plan_seconds(runtime, rows: int) -> float:
    """What ``plan_updates`` told the operator the batch would take (either design's signature)."""
    settings = runtime.settings
    params = inspect.signature(plan_updates).parameters
    if "buckets" in params:
        plan = plan_updates(rows, settings.limits, buckets=runtime.ledger.buckets)
    else:
        plan = plan_updates(rows, settings.limits, jitter=settings.jitter)
    return float(plan.seconds)


def simulate(spec: dict) -> dict:
    """Cron runs over simulated hours; ``spec``: hours, rows, period, deadline, writes_burst
    (old design only), seed. Runs with whichever bmctl is first on the path."""
    rows, period, deadline = spec["rows"], spec["period"], spec["deadline"]
    seed = spec.get("seed", 7)
    catalogue = [s for s in generate_catalogue(rows * 5 // 4 + 50, seed=seed)
                 if s.offers[0].price <= s.offers[0].max_price][:rows]
    assert len(catalogue) == rows, len(catalogue)
    latency, jitter = spec.get("latency_ms", 20.0), spec.get("jitter_ms", 0.0)
    if (latency, jitter) == (20.0, 0.0):
        world = SimWorld(catalogue, seed=seed)  # its default: 20 ms per answer
    else:
        from bmctl.sandbox.faults import Faults
        world = SimWorld(catalogue, seed=seed, latency=0.0, faults=Faults(latency=latency, jitter=jitter))
    recorder = RecordingApp(world.app, world.clock)
    world.transport.app = recorder
    overrides = {}
    if spec.get("writes_burst") is not None:
        from dataclasses import replace

        from bmctl.traffic.buckets import DEFAULT_LIMITS
        limits = dict(DEFAULT_LIMITS)
        limits["listing_writes"] = replace(limits["listing_writes"], burst=spec["writes_burst"])
        overrides["limits"] = limits
    runs = []
    cpu0 = time.process_time()
    n_runs = int(spec["hours"] * HOUR // period)
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cron.db"
        for k in range(n_runs):
            start = k * period
            world.clock.advance(max(0.0, start - world.clock.monotonic()))
            t0 = world.clock.monotonic()
            writes_before, requests_before = len(recorder.writes), recorder.requests
            runtime = world.runtime(db, command="update-price", **overrides)
            stopped = ""
            plan = None
            try:
                with runtime:
                    plan = plan_seconds(runtime, rows)
                    journal = Journal(runtime.db, runtime.run_id, runtime.clock.wall)
                    recover(runtime.client, journal)
                    controller = runtime.controller

                    def expire() -> None:
                        raise CronDeadline

                    controller.call_at(controller.now() + deadline, expire)
                    outcomes = apply_price_orders(runtime.client, journal, orders_for(catalogue, k),
                                                  max_change_pct=runtime.settings.max_change_pct,
                                                  controller=controller,
                                                  window=2 * controller.max_in_flight)
                    bad = [o for o in outcomes if o.status != "updated"]
                    if bad:
                        stopped = f"{len(bad)} not updated ({bad[0].status}: {bad[0].reason})"
            except CronDeadline:
                stopped = "deadline"
            end = world.clock.monotonic()
            mine = recorder.writes[writes_before:]
            ok = [t for t, status in mine if status < 400]
            global_requests = recorder.requests - requests_before
            last = max(ok) if ok else t0
            runs.append({"run": k, "start": t0, "end": end, "writes": len(ok), "plan": plan,
                         "send_s": last - t0 if ok else None, "requests": global_requests,
                         "pace": global_requests / (last - t0) if ok and last > t0 else None,
                         "stopped": stopped})
    cpu = time.process_time() - cpu0
    ok_times = sorted(t for t, status in recorder.writes if status < 400)
    per_hour = [0] * int(spec["hours"])
    for t in ok_times:
        h = int(t // HOUR)
        if h < len(per_hour):
            per_hour[h] += 1
    # Most writes in any closed window [t, t + 3600] (it suffices to start windows at writes).
    most = 0
    for i, t in enumerate(ok_times):
        j = bisect.bisect_right(ok_times, t + HOUR)
        most = max(most, j - i)
    return {"runs": runs, "per_hour": per_hour, "max_window": most,
            "rejected": recorder.rejected, "writes_429": sum(1 for _, s in recorder.writes if s == 429),
            "cpu": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=float, default=4.0)
    parser.add_argument("--rows", type=int, default=800, help="price writes each cron run wants")
    parser.add_argument("--period", type=float, default=900.0, help="seconds between cron runs")
    parser.add_argument("--deadline", type=float, default=600.0, help="seconds a run may take")
    parser.add_argument("--delay", default="20", help="answer delay, ms[:jitter ms] (default 20, constant)")
    parser.add_argument("--no-old", action="store_true", help="skip the old design's rows (8e18beb)")
    parser.add_argument("--quick", action="store_true", help="2 simulated hours")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # JSON spec: simulate, print JSON
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(simulate(json.loads(args.worker))))
        return
    hours = 2.0 if args.quick else args.hours
    latency, _, jitter = args.delay.partition(":")
    latency, jitter = float(latency), float(jitter or 0)
    delay = f"{latency:g} ms" + (f" ± {jitter:g} ms" if jitter else "")
    header(f"Cron scenario, simulated time ({args.rows} writes wanted every {args.period / 60:g} min, "
           f"{args.deadline / 60:g}-minute deadline, {hours:g} h, {delay} per answer)")
    base = {"hours": hours, "rows": args.rows, "period": args.period, "deadline": args.deadline,
            "latency_ms": latency, "jitter_ms": jitter}
    designs = [("bmctl, budget ledger", simulate(base))]
    if not args.no_old:
        with old_tree() as tree:
            if tree is not None:
                for burst in (1, 1000):
                    out = run_worker(tree, "bench/cron.py",
                                     ["--worker", json.dumps({**base, "writes_burst": burst})])
                    designs.append((f"old token buckets (8e18beb), listing_writes burst {burst}",
                                    json.loads(out.strip().splitlines()[-1])))

    n_hours = len(designs[0][1]["per_hour"])
    rows = []
    for label, r in designs:
        steady = r["per_hour"][1:] or r["per_hour"]
        rows.append([label, *(f"{w:,}" for w in r["per_hour"]), f"{sum(steady) / len(steady):,.0f}",
                     f"{r['max_window']:,}", r["writes_429"], r["rejected"], f"{r['cpu']:.1f}"])
    print(table(["design", *(f"writes hour {h + 1}" for h in range(n_hours)),
                 "mean writes/h from hour 2", "most writes in any 3600 s", "429s on writes",
                 "429s (all)", "CPU s"], rows))
    print()

    head = ["run", "starts at"]
    for label, _ in designs:
        short = ("ledger" if label.startswith("bmctl")
                 else "old b1" if label.endswith("burst 1") else "old b1000")
        head += [f"{short}: writes", f"{short}: to last write s", f"{short}: global req/s"]
    head += ["ledger: plan said s", "ledger: stopped by"]
    per_run = []
    for k in range(len(designs[0][1]["runs"])):
        first = designs[0][1]["runs"][k]
        row = [k + 1, f"{first['start'] / 60:.0f} min"]
        for _, r in designs:
            run = r["runs"][k]
            row += [run["writes"], "" if run["send_s"] is None else f"{run['send_s']:.1f}",
                    "" if run["pace"] is None else f"{run['pace']:.2f}"]
        row += [f"{first['plan']:.1f}" if first["plan"] is not None else "", first["stopped"] or "done"]
        per_run.append(row)
    print(table(head, per_run))
    print()
    print("writes = writes that reached the marketplace with a 2xx; to last write = from the run's "
          "start to its last write's arrival; global req/s = the run's requests over that time "
          f"(the global bucket allows {GLOBAL_RATE:g}/s sustained, 200 at once); each row is a read "
          "and a write, so 10 writes/s is the global bucket's pace.")
    print()
    r = designs[0][1]
    steady = r["per_hour"][1:] or r["per_hour"]
    reach = min(steady) >= WRITES_PER_HOUR
    never_over = r["max_window"] <= WRITES_PER_HOUR and r["writes_429"] == 0
    with_budget = [run for run in r["runs"] if run["writes"] >= 200 and run["pace"]]
    pace = min(run["pace"] for run in with_budget) if with_budget else 0.0
    print(f"goal the hour's writes reach {WRITES_PER_HOUR:,} (hours 2+): {'met' if reach else 'MISSED'} "
          f"({', '.join(f'{w:,}' for w in steady)}); never more than {WRITES_PER_HOUR:,} in any "
          f"3600 s at the marketplace: {'met' if never_over else 'MISSED'} (most {r['max_window']:,}, "
          f"429s {r['writes_429']})")
    print(f"goal a run that finds budget sends at the global bucket's pace: slowest such run "
          f"{pace:.2f} global req/s = {pace / GLOBAL_RATE:.1%} of {GLOBAL_RATE:g}/s "
          f"({'met' if pace >= 0.95 * GLOBAL_RATE else 'MISSED'} at ≥ 95 %)")


if __name__ == "__main__":
    main()
