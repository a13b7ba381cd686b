"""Logging throughput: rows per second into rate_limit_logs through the store's LogWriter.

(Named log_writer.py, not logging.py: a bench/logging.py would shadow the standard library's
``logging`` for every script in bench/ -- ``python bench/rate.py`` puts bench/ first on sys.path and
urllib3 imports ``logging``.)

Real ``AttemptRecord`` objects (bmctl.traffic.controller) for a mix of routes, statuses and
listing ids (random UUIDs) are built up front; then, timed with ``time.perf_counter`` (wall
clock: the disk is part of it), ``LogWriter.record`` is called for each and ``close()`` writes
the rest, into a fresh database on disk (``open_database`` on a temp directory: WAL, migrations,
the production schema and indexes). Default flush policy (500 rows / 1 s). Median of repeats,
each into its own new database.

    python bench/log_writer.py [--rows 100000] [--repeat 5] [--dir /tmp]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from _common import header, med_min_max, table  # noqa: E402

from bmctl.store.db import open_database  # noqa: E402
from bmctl.store.log_writer import LogWriter  # noqa: E402
from bmctl.store.runs import start_run  # noqa: E402
from bmctl.traffic.controller import AttemptRecord  # noqa: E402
from bmctl.traffic.queue import Priority  # noqa: E402
from bmctl.traffic.transport import HttpRequest  # noqa: E402


def make_records(n: int, seed: int = 0) -> list[AttemptRecord]:
    rng = random.Random(seed)
    ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(5000)]
    headers = {"authorization": "Basic x", "accept-language": "fr-fr"}
    now = time.time()
    records = []
    for i in range(n):
        lid = ids[i % len(ids)]
        u = rng.random()
        if u < 0.5:
            req, buckets, route = HttpRequest("GET", f"/ws/listings/{lid}", headers=headers, listing_id=lid,
                                              market="fr-fr"), ("global",), "listing_read"
        elif u < 0.8:
            req, buckets, route = (HttpRequest("GET", f"/ws/backbox/v1/competitors/{lid}", headers=headers,
                                               listing_id=lid, market="fr-fr"),
                                   ("global", "competitors"), "competitors")
        else:
            req, buckets, route = (HttpRequest("POST", f"/ws/listings/{lid}", headers=headers,
                                               body=b'{"price":"1.00"}', listing_id=lid, market="fr-fr"),
                                   ("global", "listing_writes"), "listing_write")
        status = 200 if rng.random() < 0.97 else rng.choice((429, 500, 404))
        outcome = {200: "ok", 429: "rate_limited", 500: "retry", 404: "http_error"}[status]
        records.append(AttemptRecord(
            request=req, call_id=i + 1, priority=rng.choice(list(Priority)), attempt=1,
            buckets=buckets, route=route, sent_wall=now + i * 0.05, queue_wait_ms=rng.uniform(0, 900),
            latency_ms=rng.uniform(20, 80), status=status, outcome=outcome,
            retry_after=None, error=None))
    return records


def once(records: list[AttemptRecord], directory: str | None) -> float:
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        db = open_database(os.path.join(tmp, "bench.db"))
        run_id = start_run(db, "bench", ["bench"])
        writer = LogWriter(db, run_id)
        record = writer.record
        t0 = time.perf_counter()
        for r in records:
            record(r)
        writer.close()
        elapsed = time.perf_counter() - t0
        count = db.execute("select count(*) from rate_limit_logs").fetchone()[0]
        assert count == len(records), count
        db.conn.close()
    return len(records) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the temp database goes (default: $TMPDIR)")
    args = parser.parse_args()
    header(f"Logging throughput (LogWriter -> rate_limit_logs, {args.rows:,} rows per repeat)")
    records = make_records(args.rows)
    rates = [once(records, args.dir) for _ in range(args.repeat)]
    med, lo, hi = med_min_max(rates)
    print(table(["writer", "rows/s median", "min", "max", "µs/row (median)"],
                [["LogWriter (flush 500 rows / 1 s), temp DB on disk", f"{med:,.0f}", f"{lo:,.0f}",
                  f"{hi:,.0f}", f"{1e6 / med:.1f}"]]))
    print()
    print(f"database dir: {args.dir or tempfile.gettempdir()}; repeats: {args.repeat}")
    print(f"goal ≥ 50,000 rows/s: {'met' if med >= 50_000 else 'MISSED'}")


if __name__ == "__main__":
    main()
