"""The SQLite ledger: one budget for every process on a database — what one connection takes the
next one sees, deferred settles, 429 pauses, reboots, dead holders, a busy database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bmctl.errors import BudgetUnavailable, ExitCode
from bmctl.store.db import open_database
from bmctl.store.ledger import SqliteLedger
from bmctl.traffic.admission import hold_span
from bmctl.traffic.buckets import LimitSpec
from bmctl.traffic.clock import SimClock

SPECS = {"global": LimitSpec(3, 10.0), "writes": LimitSpec(2, 3600.0)}


class BootClock(SimClock):
    """A simulated host clock with a boot id (a reboot restarts monotonic time)."""

    def __init__(self, boot: str, start: float = 0.0, wall_start: float = 1_800_000_000.0) -> None:
        super().__init__(start, wall_start)
        self.boot = boot

    def boot_id(self) -> str:
        return self.boot


@pytest.fixture
def path(tmp_path: Path) -> Path:
    p = tmp_path / "bmctl.db"
    open_database(p).conn.close()
    return p


def ledger(path: Path, clock: SimClock, name: str = "a", pid: int = 1, **kw) -> SqliteLedger:  # type: ignore[no-untyped-def]
    return SqliteLedger(path, SPECS, clock, run_id=f"run-{name}", pid=pid, poll_interval=None, **kw)


def take(ledger: SqliteLedger, bucket: str = "global") -> int:
    with ledger.transaction():
        return int(ledger.buckets[bucket].spend())


def test_what_one_process_takes_the_other_sees(path: Path) -> None:
    clock = SimClock()
    a, b = ledger(path, clock, "a"), ledger(path, clock, "b")
    take(a)
    take(a)
    take(b)
    with a.transaction():
        assert not a.buckets["global"].can_spend()
    with b.transaction():
        assert b.buckets["global"].held() == 3


def test_settles_wait_for_the_next_admission_or_a_flush(path: Path) -> None:
    clock = SimClock()
    a, b = ledger(path, clock, "a", in_flight_bound=60.0), ledger(path, clock, "b")
    keys = [take(a) for _ in range(3)]
    clock.advance(0.5)
    for key in keys:
        a.buckets["global"].settle(key, clock.monotonic())
    with b.transaction():  # not written yet: b still sees the provisional expiry
        assert b.buckets["global"].ready_at() == pytest.approx(60.0 + hold_span(10.0))
    a.flush()
    with b.transaction():
        assert b.buckets["global"].ready_at() == pytest.approx(0.5 + hold_span(10.0))


def test_a_pause_after_a_429_holds_every_process(path: Path) -> None:
    clock = SimClock()
    a, b = ledger(path, clock, "a"), ledger(path, clock, "b")
    a.buckets["global"].pause(10.0)
    a.buckets["global"].pause(4.0)  # pauses only extend
    a.flush()
    with b.transaction():
        assert b.buckets["global"].ready_at() == 10.0


def test_a_claim_is_held_for_its_owner_only(path: Path) -> None:
    clock = SimClock()
    a, b = ledger(path, clock, "a"), ledger(path, clock, "b")
    with a.transaction():
        a.buckets["writes"].spend()
        claim = a.buckets["writes"].reserve()
    with b.transaction():
        assert not b.buckets["writes"].can_spend()  # the last slot is a's claim
    with a.transaction():
        assert a.buckets["writes"].spend_reserved(claim) == claim.key


def test_rows_of_an_earlier_boot_are_carried_over_by_wall_time(path: Path) -> None:
    before = BootClock("boot-1", start=5000.0)
    a = ledger(path, before, "a")
    key = take(a, "writes")
    a.buckets["writes"].settle(key, before.monotonic())
    a.close()
    # Reboot two minutes later: monotonic time starts again near zero.
    after = BootClock("boot-2", start=3.0, wall_start=before.wall() + 120.0)
    b = ledger(path, after, "b")
    with b.transaction():
        assert b.buckets["writes"].held() == 1
        ready = b.buckets["writes"].ready_at(2)
    assert ready == pytest.approx(3.0 + hold_span(3600.0) - 120.0, abs=1e-3)


def test_a_wall_clock_stepped_back_across_a_reboot_cannot_hold_a_slot_forever(path: Path) -> None:
    before = BootClock("boot-1", start=100.0)
    a = ledger(path, before, "a", in_flight_bound=60.0)
    take(a, "writes")  # never answered: provisional expiry
    a._pending.clear()
    a._conn.close()
    # The new boot's wall clock reads a day earlier (a dead RTC battery, say).
    after = BootClock("boot-2", start=0.0, wall_start=before.wall() - 86400.0)
    b = ledger(path, after, "b", in_flight_bound=60.0)
    with b.transaction():
        ready = b.buckets["writes"].ready_at(2)
    longest = max(60.0 + hold_span(3600.0), b.claim_ttl)
    assert ready <= longest + 1e-6


def test_a_dead_holders_claims_are_dropped_when_a_process_opens_the_ledger(path: Path) -> None:
    clock = SimClock()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(dead.stdout)
    a = ledger(path, clock, "a", pid=dead_pid)
    with a.transaction():
        a.buckets["writes"].reserve()
        a.buckets["writes"].spend()  # its in-flight slot must stay: the request may still land
    a._conn.close()
    b = ledger(path, clock, "b")  # a live pid (1): not a dead holder
    with b.transaction():
        assert b.buckets["writes"].held() == 1
    assert [(r["slots"], r["claims"]) for r in b.holders() if r["bucket"] == "writes"] == [(1, 0)]


def test_a_busy_database_stops_the_run_with_exit_4(path: Path) -> None:
    clock = SimClock()
    a = ledger(path, clock, "a", busy_timeout=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("begin immediate")
    try:
        with pytest.raises(BudgetUnavailable) as caught:
            take(a)
    finally:
        blocker.execute("rollback")
        blocker.close()
    assert caught.value.exit_code == ExitCode.LIMITED
    assert "budget ledger" in caught.value.message and str(path) in caught.value.message
    take(a)  # usable again


def test_holders_name_the_run_and_pid(path: Path) -> None:
    clock = SimClock()
    a, b = ledger(path, clock, "a", pid=11), ledger(path, clock, "b", pid=22)
    take(a)
    take(b, "writes")
    with b.transaction():
        b.buckets["writes"].reserve()
    rows = a.holders()
    assert [(r["bucket"], r["run_id"], r["pid"], r["slots"], r["claims"]) for r in rows] == [
        ("global", "run-a", 11, 1, 0), ("writes", "run-b", 22, 1, 1)]


def test_expired_rows_are_pruned(path: Path) -> None:
    clock = SimClock()
    a = ledger(path, clock, "a")
    for _ in range(3):
        key = take(a)
        a.buckets["global"].settle(key, clock.monotonic())
    clock.advance(hold_span(10.0) + 2.0)
    take(a)
    count = sqlite3.connect(path).execute("select count(*) from budget_holds").fetchone()[0]
    assert count == 1


def test_a_waiter_looks_again_soon_only_for_what_another_process_may_free_early(path: Path) -> None:
    clock = SimClock()
    a = ledger(path, clock, "a", in_flight_bound=60.0)
    b = SqliteLedger(path, SPECS, clock, run_id="run-b", pid=2, poll_interval=0.05)
    keys = [take(a) for _ in range(3)]  # on the wire: their expiries are provisional
    with b.transaction():
        assert b.buckets["global"].ready_at() == pytest.approx(0.05)
    for key in keys:
        a.buckets["global"].settle(key, 1.0)
    a.flush()
    with b.transaction():  # settled: final, so b sleeps exactly until the first frees
        assert b.buckets["global"].ready_at() == pytest.approx(1.0 + hold_span(10.0))
    with a.transaction():  # a's own view is never shortened
        assert a.buckets["global"].ready_at() == pytest.approx(1.0 + hold_span(10.0))


def test_two_processes_with_one_run_id_still_look_again_for_each_other(path: Path) -> None:
    """Found by the rate bench: "another holder" was keyed on the run id alone, so two ledgers
    left on one run id slept until each other's provisional expiry (about a minute)."""
    clock = SimClock()
    a = SqliteLedger(path, SPECS, clock, run_id="same", pid=1, poll_interval=None, in_flight_bound=60.0)
    b = SqliteLedger(path, SPECS, clock, run_id="same", pid=2, poll_interval=0.05)
    for _ in range(3):
        take(a)
    with b.transaction():
        assert b.buckets["global"].ready_at() == pytest.approx(0.05)
