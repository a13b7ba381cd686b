"""LogWriter: rows round-trip, batches flush on size, on time and on close, a busy database
keeps them."""

from __future__ import annotations

import pytest

from bmctl.store.db import open_database
from bmctl.store.log_writer import LogWriter
from bmctl.store.logs import list_logs

from .conftest import WALL0, FakeClock, Priority, attempt, commits, count

# --- LogWriter ---------------------------------------------------------------------------------


def test_row_round_trip(db) -> None:  # type: ignore[no-untyped-def]
    with LogWriter(db, "run-1") as log:
        log.record(attempt(
            method="POST", path="/ws/listings/xyz", listing_id="xyz", market="en-gb",
            priority=Priority.CRITICAL, attempt=2, buckets=("global", "listing_writes"),
            route="listing_write", sent_wall=WALL0 + 0.123456, queue_wait_ms=12.5,
            latency_ms=80.25, status=429, outcome="rate_limited", retry_after=3.0,
            error="Too Many Requests"))
        assert count(db) == 0  # buffered
    [row] = list_logs(db)
    assert row == {
        "id": row["id"], "run_id": "run-1", "ts": "2027-01-15T08:00:00.123456Z",
        "method": "POST", "route": "listing_write", "path": "/ws/listings/xyz",
        "listing_id": "xyz", "market": "en-gb", "buckets": "global,listing_writes",
        "priority": "CRITICAL", "attempt": 2, "status": 429, "outcome": "rate_limited",
        "queue_wait_ms": 12.5, "latency_ms": 80.25, "retry_after": 3.0,
        "error": "Too Many Requests",
    }


def test_flush_on_size_one_transaction_each(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    log = LogWriter(db, "r", flush_rows=10, flush_seconds=60, clock=clock)
    seen = commits(db)
    for i in range(25):
        log.record(attempt(call_id=i))
    assert count(db) == 20 and log.pending == 5
    assert len(seen) == 2 and log.flushes == 2
    log.close()
    assert count(db) == 25 and len(seen) == 3


def test_flush_on_time_checked_at_record(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    log = LogWriter(db, "r", flush_rows=1000, flush_seconds=1.0, clock=clock)
    log.record(attempt())
    clock.now += 0.5
    log.record(attempt())
    assert count(db) == 0
    clock.now += 0.5  # the oldest buffered row is now 1 s old
    log.record(attempt())
    assert count(db) == 3 and log.pending == 0
    # the timer starts again with the next buffered row, not at the last flush
    clock.now += 10
    log.record(attempt())
    assert log.pending == 1


def test_flush_if_due_for_callers_about_to_idle(db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    log = LogWriter(db, "r", flush_seconds=1.0, clock=clock)
    assert log.flush_if_due() is False  # nothing buffered
    log.record(attempt())
    assert log.flush_if_due() is False and count(db) == 0
    clock.now += 1.0
    assert log.flush_if_due() is True and count(db) == 1


def test_close_flushes_and_is_idempotent(db) -> None:  # type: ignore[no-untyped-def]
    log = LogWriter(db, "r")
    log.record(attempt())
    log.close()
    log.close()
    assert count(db) == 1
    with pytest.raises(RuntimeError):
        log.record(attempt())


def test_busy_database_keeps_rows_instead_of_crashing(db_path, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    db.conn.execute("pragma busy_timeout = 0")
    log = LogWriter(db, "r", flush_rows=2, clock=clock)
    other = open_database(db_path)
    other.conn.execute("begin immediate")  # another writer holds the write lock
    log.record(attempt())
    log.record(attempt())  # flush fails: rows stay buffered, traffic goes on
    assert log.pending == 2 and log.last_error is not None
    other.conn.rollback()
    clock.now += 5
    log.record(attempt())
    assert count(db) == 3


def test_a_busy_database_is_said_once_and_the_buffer_is_capped(db_path, db) -> None:  # type: ignore[no-untyped-def]
    clock = FakeClock()
    db.conn.execute("pragma busy_timeout = 0")
    warnings: list[str] = []
    log = LogWriter(db, "r", flush_rows=2, clock=clock, warn=warnings.append, max_rows=5)
    other = open_database(db_path)
    other.conn.execute("begin immediate")
    for _ in range(9):
        log.record(attempt())
        clock.now += 2  # every record is past due: a flush is tried each time
    assert len(warnings) == 1 and "cannot be written" in warnings[0]
    assert log.pending == 5 and log.dropped == 4  # the oldest went, memory did not grow
    other.conn.rollback()
    log.record(attempt())
    assert count(db) == 6
    assert len(warnings) == 2 and "4 oldest row(s) were dropped" in warnings[1]


def test_plain_int_priority_and_missing_listing(db) -> None:  # type: ignore[no-untyped-def]
    with LogWriter(db, "r") as log:
        log.record(attempt(priority="LOW", listing_id=None, market=None, status=None,
                           outcome="timeout", latency_ms=30000.0, error="timed out"))
    [row] = list_logs(db)
    assert row["priority"] == "LOW" and row["listing_id"] is None and row["status"] is None
