"""The queries behind `bmctl logs`: list, per-bucket statistics (and the ledger's holders),
prune."""

from __future__ import annotations

import pytest

from bmctl.store.db import utc_iso
from bmctl.store.log_writer import LogWriter
from bmctl.store.logs import bucket_stats, bucket_timeline, list_logs, percentile, prune
from bmctl.store.runs import finish_run, start_run

from .conftest import WALL0, attempt, count

# --- list_logs ---------------------------------------------------------------------------------


@pytest.fixture
def mixed(db):  # type: ignore[no-untyped-def]
    with LogWriter(db, "run-a") as log:
        log.record(attempt(sent_wall=WALL0 + 1, listing_id="L1", buckets=("global", "competitors")))
        log.record(attempt(sent_wall=WALL0 + 2, listing_id="L2", status=429, outcome="rate_limited"))
    with LogWriter(db, "run-b") as log:
        log.record(attempt(sent_wall=WALL0 + 3, listing_id="L1", buckets=("global", "listing_writes")))
        log.record(attempt(sent_wall=WALL0 + 4, listing_id="L3", buckets=("global", "catalog")))
    return db


def test_list_logs_newest_first_and_limit(mixed) -> None:  # type: ignore[no-untyped-def]
    rows = list_logs(mixed)
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)
    assert [r["listing_id"] for r in list_logs(mixed, limit=2)] == ["L3", "L1"]


@pytest.mark.parametrize("filters, listings", [
    ({"since_wall": WALL0 + 2.5}, ["L3", "L1"]),
    ({"bucket": "competitors"}, ["L1"]),
    ({"bucket": "global"}, ["L3", "L1", "L2", "L1"]),
    ({"bucket": "glob"}, []),  # whole bucket names only
    ({"status": 429}, ["L2"]),
    ({"listing": "L1"}, ["L1", "L1"]),
    ({"run": "run-a"}, ["L2", "L1"]),
    ({"run": "run-b", "listing": "L1"}, ["L1"]),
])
def test_list_logs_filters(mixed, filters, listings) -> None:  # type: ignore[no-untyped-def]
    assert [r["listing_id"] for r in list_logs(mixed, **filters)] == listings


# --- bucket_stats ------------------------------------------------------------------------------


def test_percentile_interpolates() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(v) for v in range(1, 11)], 0.95) == pytest.approx(9.55)


def test_bucket_stats_known_dataset(db) -> None:  # type: ignore[no-untyped-def]
    with LogWriter(db, "r") as log:
        # competitors: 10 sends, 0.5 s apart, latencies 10..100 ms, waits 0..9 ms
        for i in range(10):
            status, outcome = (429, "rate_limited") if i == 3 else (200, "ok")
            if i == 7:
                status, outcome = None, "timeout"
            if i == 8:
                status, outcome = 503, "retry"
            log.record(attempt(sent_wall=WALL0 + i * 0.5, buckets=("global", "competitors"),
                               latency_ms=10.0 * (i + 1), queue_wait_ms=float(i),
                               status=status, outcome=outcome))
        # one more global-only send
        log.record(attempt(sent_wall=WALL0 + 9.0, buckets=("global",), latency_ms=500.0,
                           queue_wait_ms=100.0))
        log.record(attempt(sent_wall=WALL0 - 3600, buckets=("global", "mystery")))  # outside
        log.record(attempt(sent_wall=WALL0 + 1, buckets=("global", "mystery")))
    limits = {"global": (200, 10.0), "competitors": (2, 1.0), "catalog": (20, 10.0)}
    stats = {s["bucket"]: s for s in bucket_stats(db, WALL0, limits)}
    assert list(stats) == ["global", "competitors", "catalog", "mystery"]
    assert set(stats["global"]) == {"bucket", "requests", "ok", "rate_limited", "errors",
                                    "p50_ms", "p95_ms", "p50_wait_ms", "p95_wait_ms",
                                    "rate_per_s", "limit_per_s"}
    comp = stats["competitors"]
    assert (comp["requests"], comp["ok"], comp["rate_limited"], comp["errors"]) == (10, 7, 1, 2)
    assert comp["p50_ms"] == 55.0 and comp["p95_ms"] == 95.5
    assert comp["p50_wait_ms"] == 4.5 and comp["p95_wait_ms"] == 8.55
    assert comp["rate_per_s"] == pytest.approx(10 / (4.5 + 1.0), abs=1e-4)  # 10 sends, 4.5 s + a window
    assert comp["limit_per_s"] == 2.0
    glob = stats["global"]
    assert glob["requests"] == 12 and glob["ok"] == 9
    assert glob["rate_per_s"] == pytest.approx(12 / (9.0 + 10.0), abs=1e-4)
    assert glob["limit_per_s"] == 20.0
    assert stats["catalog"] == {"bucket": "catalog", "requests": 0, "ok": 0, "rate_limited": 0,
                                "errors": 0, "p50_ms": None, "p95_ms": None, "p50_wait_ms": None,
                                "p95_wait_ms": None, "rate_per_s": None, "limit_per_s": 2.0}
    assert stats["mystery"]["requests"] == 1 and stats["mystery"]["limit_per_s"] is None
    assert stats["mystery"]["rate_per_s"] is None  # one send has no rate


def test_rate_per_s_never_exceeds_the_limit_for_traffic_the_limit_allows(db) -> None:  # type: ignore[no-untyped-def]
    """Bursts of `limit` sends one window apart (the most a sliding window allows) read as the
    limit, not above it (the old (n - 1) / span read 2.3/s for 2/s here)."""
    with LogWriter(db, "r") as log:
        for pair in range(4):
            for _ in range(2):
                log.record(attempt(sent_wall=WALL0 + pair * 1.001, buckets=("global", "competitors")))
    (comp,) = [s for s in bucket_stats(db, WALL0, {"competitors": (2, 1.0)}) if s["bucket"] == "competitors"]
    assert comp["rate_per_s"] <= comp["limit_per_s"] == 2.0
    assert comp["rate_per_s"] == pytest.approx(8 / 4.003, abs=1e-3)


def test_bucket_stats_by_run(mixed) -> None:  # type: ignore[no-untyped-def]
    stats = {s["bucket"]: s["requests"] for s in bucket_stats(mixed, 0, {}, run="run-b")}
    assert stats == {"catalog": 1, "global": 2, "listing_writes": 1}


def test_bucket_stats_with_the_ledger_holders(mixed) -> None:  # type: ignore[no-untyped-def]
    holders = [{"bucket": "global", "run_id": "r1", "pid": 7, "slots": 3, "claims": 1, "until_s": 2.0},
               {"bucket": "global", "run_id": "r2", "pid": 8, "slots": 1, "claims": 0, "until_s": 1.0}]
    stats = {s["bucket"]: s for s in bucket_stats(mixed, 0, {"global": (200, 10.0), "catalog": (20, 10.0)},
                                                 holders=holders)}
    assert stats["global"]["held_now"] == 5
    assert stats["global"]["holders"] == [{"run_id": "r1", "pid": 7, "slots": 3, "claims": 1},
                                          {"run_id": "r2", "pid": 8, "slots": 1, "claims": 0}]
    assert stats["catalog"]["held_now"] == 0 and stats["catalog"]["holders"] == []


# --- prune -------------------------------------------------------------------------------------


# --- bucket_timeline ---------------------------------------------------------------------------


def test_bucket_timeline_counts_each_bucket_per_minute(db) -> None:  # type: ignore[no-untyped-def]
    with LogWriter(db, "r1") as log:
        for second in (1, 20, 59):  # three in the first minute, one of them a competitors read
            log.record(attempt(sent_wall=WALL0 + second,
                               buckets=("global", "competitors") if second == 20 else ("global",)))
        log.record(attempt(sent_wall=WALL0 + 125, buckets=("global", "listing_writes")))
        log.record(attempt(sent_wall=WALL0 - 60))  # before the window
    with LogWriter(db, "r2") as log:
        log.record(attempt(sent_wall=WALL0 + 61, buckets=("global", "mystery")))
    limits = {"global": (200, 10.0), "competitors": (2, 1.0), "listing_writes": (2000, 3600.0),
              "catalog": (20, 10.0)}
    rows = bucket_timeline(db, WALL0, limits)
    assert [(r["bucket"], r["minute"], r["requests"], r["limit_per_min"]) for r in rows] == [
        ("global", "2027-01-15T08:00:00Z", 3, 1200.0),
        ("global", "2027-01-15T08:01:00Z", 1, 1200.0),
        ("global", "2027-01-15T08:02:00Z", 1, 1200.0),
        ("competitors", "2027-01-15T08:00:00Z", 1, 120.0),
        ("listing_writes", "2027-01-15T08:02:00Z", 1, 33.3333),
        ("mystery", "2027-01-15T08:01:00Z", 1, None),  # unconfigured: after, with no limit
    ]
    by_run = bucket_timeline(db, WALL0 - 120, limits, run="r2")
    assert [(r["bucket"], r["requests"]) for r in by_run] == [("global", 1), ("mystery", 1)]


def test_prune_keeps_open_probes_unfinished_runs_and_history(db) -> None:  # type: ignore[no-untyped-def]
    old, new = WALL0 - 40 * 86400, WALL0
    old_run = start_run(db, "probe", [], wall=old)
    finish_run(db, old_run, 0, wall=old + 5)
    crashed = start_run(db, "probe", [], wall=old)
    recent = start_run(db, "probe", [], wall=new)
    with LogWriter(db, old_run) as log:
        log.record(attempt(sent_wall=old + 1))
        log.record(attempt(sent_wall=new))
    conn = db.conn
    with conn:
        for state, finished in (("closed", utc_iso(old)), ("open", None), ("closed", utc_iso(new))):
            conn.execute("insert into probes (run_id, listing_id, state, original_price, started_at,"
                         " updated_at, finished_at) values (?, 'L', ?, '10.00', ?, ?, ?)",
                         (old_run, state, utc_iso(old), utc_iso(old), finished))
        conn.execute("insert into price_changes (run_id, ts, listing_id, old_price, new_price, reason)"
                     " values (?, ?, 'L', '10.00', '9.00', 'dip')", (old_run, utc_iso(old)))
    deleted = prune(db, WALL0 - 30 * 86400)
    assert deleted == {"rate_limit_logs": 1, "runs": 1, "probes": 1}
    assert {r[0] for r in conn.execute("select id from runs")} == {crashed, recent}
    assert [r[0] for r in conn.execute("select state from probes order by id")] == ["open", "closed"]
    assert count(db, "price_changes") == 1
    assert count(db) == 1
