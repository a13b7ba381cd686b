"""Admission cost of the SQLite budget ledger: admissions/s on one process and four contending.

One admission is what ``TrafficController._dispatch`` does for one request, through the real
``SqliteLedger`` and ``Bucket`` faces on a bmctl database (``open_database``: WAL,
synchronous=NORMAL, migrated) in a temporary folder on disk:

    with ledger.transaction():                      # BEGIN IMMEDIATE ... COMMIT
        applies this process's deferred settles     # (the previous request's answer)
        bucket.can_spend() for each bucket          # count held slots (+ earliest if full)
        key = bucket.spend() for each bucket        # insert the slot rows
    bucket.settle(key, now) for each bucket          # the "answer": deferred to the next BEGIN

The transport is left out (the answer is immediate): the cost is the ledger's alone. Two kinds
of request, each measured on its own:

- **read** — spends ``global`` only;
- **write** — spends ``global`` and ``listing_writes`` (two counts and two inserts).

Holdings are kept realistic: at the start ``global`` holds 200 slots and ``listing_writes``
2,000 (settled requests of earlier runs, held for an hour: the most the real 200/10 s and
2000/3600 s buckets can hold), so every admission counts ≥ 200 rows of ``global`` and a write
also ≥ 2,000 of ``listing_writes``. The benchmark's own slots use a 1 ms window (held 2 ms
after their answer, about 10–25 more rows at these rates) and both limits are 10**9, so that
no bucket ever refuses: the figure is the ledger's cost, not the limits'. Expired rows are
pruned by the ledger itself (at most once a second, in an admission), as in a run.

Processes: 1, and 4 OS processes (``multiprocessing``, fork) on the same database file, each
with its own ledger connection, released together by a barrier; each admits for ``--seconds``.
Aggregate admissions/s = all admissions / (last process's end − first process's start);
latency = one admission transaction's wall time (waiting for the write lock included),
nearest-rank p50 / p99 over all admissions of the run, the worst of the processes' own p99s,
and the longest single admission. "flat out" = each process admits back to back; the last
rows offer the goal's load instead (2,000/s shared by the four processes, 500/s each, paced):
do all four get their share, and how long does one wait for the lock then?

Peer, side by side in the same run: PyrateLimiter 4 ``SQLiteBucket`` (``init_from_file``,
one rate of 10**9 per 50 ms, so that it never refuses either and counts about as many rows
per call as bmctl's ``global`` holds (50–200 at these rates), same temp folder) and
``Limiter.try_acquire(name, 1, blocking=True)`` (it never waits: the rate never refuses;
``blocking=False`` cannot be used with the file lock: PyrateLimiter 4.5.1 then calls
``FileLock.acquire(False)`` and filelock 4.3.1 takes that ``False`` as a timeout and raises
TypeError): one process without its file lock (its default), one with it, and four processes
with ``use_file_lock=True`` (its multi-process mode).
PyrateLimiter counts one window of one rate per call and has no settle, claims or pauses.

    python bench/ledger_cost.py [--seconds 5] [--procs 1,4] [--quick]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, percentile, table  # noqa: E402

from bmctl.store.db import open_database  # noqa: E402
from bmctl.store.ledger import SqliteLedger  # noqa: E402
from bmctl.traffic.buckets import LimitSpec  # noqa: E402
from bmctl.traffic.clock import SystemClock  # noqa: E402

GOAL = 2000.0
HUGE = 10**9
WINDOW = 0.001
PREHELD = {"global": 200, "listing_writes": 2000}
PYRATE_WINDOW_MS = 50
SPECS = {"global": LimitSpec(HUGE, WINDOW), "listing_writes": LimitSpec(HUGE, WINDOW)}
KINDS = {"read": ("global",), "write": ("global", "listing_writes")}


def prepare(db_path: str) -> None:
    """A migrated bmctl database whose buckets hold 200 / 2,000 slots for an hour."""
    open_database(db_path).conn.close()
    clock = SystemClock()
    ledger = SqliteLedger(db_path, SPECS, clock, run_id="earlier-runs")
    with ledger.transaction():
        for name, count in PREHELD.items():
            bucket = ledger.buckets[name]
            keys = [bucket.spend() for _ in range(count)]
            answered = clock.monotonic() + 3600.0
            for key in keys:
                bucket.settle(key, answered)
    ledger.close()


def pace_until(next_at: float) -> None:
    delay = next_at - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def bmctl_worker(db_path: str, kind: str, seconds: float, pace: float, barrier, out) -> None:
    clock = SystemClock()
    ledger = SqliteLedger(db_path, SPECS, clock, run_id=f"bench-{os.getpid()}")
    buckets = [ledger.buckets[name] for name in KINDS[kind]]
    transaction = ledger.transaction
    perf = time.perf_counter
    lat: list[float] = []
    barrier.wait()
    start = time.monotonic()
    stop = start + seconds
    step = 1.0 / pace if pace else 0.0
    next_at = start
    while True:
        if step:
            next_at += step
            pace_until(next_at)
        t0 = perf()
        with transaction():
            for b in buckets:
                if not b.can_spend():
                    raise RuntimeError(f"{b.name} refused: the benchmark's limits are too low")
            slots = [(b, b.spend()) for b in buckets]
        t1 = perf()
        lat.append(t1 - t0)
        answered = clock.monotonic()
        for b, key in slots:
            b.settle(key, answered)
        if time.monotonic() >= stop:
            break
    end = time.monotonic()
    held_seen = ledger.buckets["listing_writes"].held()
    global_held = ledger.buckets["global"].held()
    ledger.close()
    out.put({"start": start, "end": end, "lat": lat, "held_writes": held_seen, "held_global": global_held})


def pyrate_worker(db_path: str, file_lock: bool, seconds: float, pace: float, barrier, out) -> None:
    from pyrate_limiter import Limiter, Rate
    from pyrate_limiter.buckets import SQLiteBucket

    bucket = SQLiteBucket.init_from_file([Rate(HUGE, PYRATE_WINDOW_MS)], table="bench_bucket",
                                         db_path=db_path, create_new_table=True, use_file_lock=file_lock)
    limiter = Limiter(bucket)
    try_acquire = limiter.try_acquire
    perf = time.perf_counter
    lat: list[float] = []
    barrier.wait()
    start = time.monotonic()
    stop = start + seconds
    step = 1.0 / pace if pace else 0.0
    next_at = start
    while True:
        if step:
            next_at += step
            pace_until(next_at)
        t0 = perf()
        ok = try_acquire("global", 1, True)  # never waits: the rate never refuses
        t1 = perf()
        if not ok:
            raise RuntimeError("PyrateLimiter refused: the benchmark's rate is too low")
        lat.append(t1 - t0)
        if time.monotonic() >= stop:
            break
    end = time.monotonic()
    close = getattr(limiter, "close", None)
    if close:
        close()
    out.put({"start": start, "end": end, "lat": lat})


def run(target, args_for, procs: int) -> dict:
    """Start ``procs`` processes, release them together, gather their figures."""
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(procs)
    out = ctx.Queue()
    workers = [ctx.Process(target=target, args=(*args_for, barrier, out)) for _ in range(procs)]
    for w in workers:
        w.start()
    results = []
    while len(results) < procs:
        try:
            results.append(out.get(timeout=1.0))
        except queue.Empty:
            failed = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if failed:
                for w in workers:
                    if w.is_alive():
                        w.terminate()
                raise RuntimeError(f"a worker failed (exit {failed[0]})") from None
    for w in workers:
        w.join(timeout=60)
        if w.exitcode != 0:
            raise RuntimeError(f"a worker failed (exit {w.exitcode})")
    lat = [x for r in results for x in r["lat"]]
    span = max(r["end"] for r in results) - min(r["start"] for r in results)
    return {"n": len(lat), "rate": len(lat) / span, "p50": percentile(lat, 50) * 1e6,
            "p99": percentile(lat, 99) * 1e6, "span": span, "max": max(lat) * 1e6,
            "worst_p99": max(percentile(r["lat"], 99) for r in results) * 1e6,
            "held_writes": max((r.get("held_writes", 0) for r in results), default=0),
            "held_global": max((r.get("held_global", 0) for r in results), default=0),
            "per_proc": [len(r["lat"]) / (r["end"] - r["start"]) for r in results]}


def row(label: str, procs: int, pace: float, r: dict) -> list[object]:
    offered = f"{pace * procs:,.0f}/s" if pace else "flat out"
    return [label, procs, offered, r["n"], f"{r['rate']:,.0f}", f"{r['rate'] / GOAL:.2f}×",
            f"{r['p50']:.0f}", f"{r['p99']:.0f}", f"{r['worst_p99']:,.0f}", f"{r['max'] / 1000:,.1f}",
            " / ".join(f"{x:,.0f}" for x in r["per_proc"])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="each process admits this long")
    parser.add_argument("--procs", default="1,4", help="process counts (flat out)")
    parser.add_argument("--paced", type=float, default=GOAL,
                        help="also: the largest process count sharing this many admissions/s (0: skip)")
    parser.add_argument("--no-peer", action="store_true", help="skip PyrateLimiter")
    parser.add_argument("--quick", action="store_true", help="1.5 s per measurement")
    args = parser.parse_args()
    seconds = 1.5 if args.quick else args.seconds
    procs = [int(p) for p in args.procs.split(",")]
    runs = [(p, 0.0) for p in procs]
    if args.paced:
        runs.append((max(procs), args.paced / max(procs)))
    header(f"SQLite budget ledger: admission cost ({seconds:g} s per measurement, "
           f"processes {', '.join(map(str, procs))})")
    rows = []
    notes = []
    with tempfile.TemporaryDirectory(prefix="bmctl-ledger-", dir=os.environ.get("BENCH_TMP")) as tmp:
        # Contenders alternate per process count, so machine-load drifts hit all alike.
        for n, (p, pace) in enumerate(runs):
            for kind in KINDS if not pace else ("write",):
                db_path = os.path.join(tmp, f"bmctl-{n}-{kind}.db")
                prepare(db_path)
                r = run(bmctl_worker, (db_path, kind, seconds, pace), p)
                rows.append(row(f"bmctl SqliteLedger, {kind} ({' + '.join(KINDS[kind])})", p, pace, r))
                notes.append(f"{rows[-1][0]}, {p} process(es), {rows[-1][2]}: held at the end "
                             f"{r['held_global']} global" + (f", {r['held_writes']} listing_writes"
                                                            if kind == "write" else ""))
            if not args.no_peer:
                for lock in ((False, True) if p == 1 else (True,)):
                    db_path = os.path.join(tmp, f"pyrate-{n}-{int(lock)}.sqlite")
                    r = run(pyrate_worker, (db_path, lock, seconds, pace), p)
                    rows.append(row(f"PyrateLimiter 4 SQLiteBucket try_acquire, file lock "
                                    f"{'on' if lock else 'off'}", p, pace, r))
        where = os.path.dirname(tmp)
    print(table(["contender", "processes", "offered", "admissions", "admissions/s (all)", "× goal 2,000/s",
                 "p50 µs", "p99 µs", "worst process p99 µs", "max ms", "per process /s"], rows))
    print()
    print(f"database folder: {where} (temporary); each process admits for {seconds:g} s; latency = one "
          "admission (transaction, or try_acquire), waits for the database lock included; p50/p99 over "
          "all admissions of the run, \"worst process p99\" = the highest of the processes' own p99s")
    for note in notes:
        print(f"- {note}")
    bm = [r for r in rows if r[0].startswith("bmctl") and r[2] == "flat out"]
    worst = {p: min(float(r[4].replace(",", "")) for r in bm if r[1] == p) for p in procs}
    print()
    print("goal ≥ 2,000 admissions/s: " + "; ".join(
        f"{p} process{'es' if p > 1 else ''} {'met' if w >= GOAL else 'MISSED'} (slowest kind {w:,.0f}/s)"
        for p, w in worst.items()))


if __name__ == "__main__":
    main()
