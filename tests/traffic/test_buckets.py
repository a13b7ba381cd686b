"""The bucket face (the seed's vocabulary) over both ledgers: slots held from send until a window
after the answer, claims, lapsed claims, pauses, estimates.

Every test runs on the in-memory ledger and on the SQLite one (one connection here; the
sharing between processes is tested in tests/store/test_ledger.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from bmctl.traffic.admission import MIN_GUARD, hold_span
from bmctl.traffic.buckets import BudgetExhausted, LimitSpec
from bmctl.traffic.clock import SimClock
from bmctl.traffic.ledger import Ledger, MemoryLedger

SPAN = 1.0 + MIN_GUARD  # how long a 2/1 s slot stays held after its answer
SPECS = {"b": LimitSpec(2, 1.0), "writes": LimitSpec(3, 100.0)}


def memory_ledger(clock: SimClock, tmp_path: Path, **kw) -> Ledger:  # type: ignore[no-untyped-def]
    return MemoryLedger(SPECS, clock.monotonic, **kw)


def sqlite_ledger(clock: SimClock, tmp_path: Path, **kw) -> Ledger:  # type: ignore[no-untyped-def]
    from bmctl.store.db import open_database
    from bmctl.store.ledger import SqliteLedger

    path = tmp_path / "ledger.db"
    open_database(path).conn.close()
    return SqliteLedger(path, SPECS, clock, run_id="test", poll_interval=None, **kw)


@pytest.fixture(params=[memory_ledger, sqlite_ledger], ids=["memory", "sqlite"])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., tuple[Ledger, SimClock]]]:
    opened: list[Ledger] = []

    def make(**kw) -> tuple[Ledger, SimClock]:  # type: ignore[no-untyped-def]
        clock = SimClock()
        ledger = request.param(clock, tmp_path, **kw)
        opened.append(ledger)
        return ledger, clock

    yield make
    for ledger in opened:
        ledger.close()


def spend_and_answer(ledger: Ledger, name: str, latency: float, clock: SimClock) -> None:
    bucket = ledger.buckets[name]
    with ledger.transaction():
        key = bucket.spend()
    clock.advance(latency)
    bucket.settle(key, clock.monotonic())


def test_a_slot_is_held_until_a_window_after_the_answer(make) -> None:  # type: ignore[no-untyped-def]
    ledger, clock = make()
    b = ledger.buckets["b"]
    spend_and_answer(ledger, "b", 0.3, clock)  # sent at 0, answered at 0.3
    spend_and_answer(ledger, "b", 0.0, clock)  # sent and answered at 0.3
    with ledger.transaction():
        assert b.held() == 2 and not b.can_spend()
        assert b.ready_at() == pytest.approx(0.3 + SPAN)
        with pytest.raises(BudgetExhausted):
            b.spend()
    clock.advance(SPAN - 1e-6)
    with ledger.transaction():
        assert not b.can_spend()
    clock.advance(2e-6)
    with ledger.transaction():
        assert b.can_spend() and b.held() == 0


def test_an_unanswered_slot_is_held_for_the_in_flight_bound(make) -> None:  # type: ignore[no-untyped-def]
    ledger, clock = make(in_flight_bound=30.0)
    b = ledger.buckets["b"]
    with ledger.transaction():
        b.spend()
        b.spend()
    # Never settled (the process died with both on the wire): held 30 s + the window.
    with ledger.transaction():
        assert b.ready_at() == pytest.approx(30.0 + SPAN)


def test_claims_count_as_held_and_are_spent_or_released(make) -> None:  # type: ignore[no-untyped-def]
    ledger, clock = make()
    w = ledger.buckets["writes"]
    with ledger.transaction():
        dip = w.spend()
        assert w.can_reserve(2) and not w.can_reserve(3)
        claim = w.reserve()
        other = w.spend()
        assert w.held() == 3 and not w.can_spend() and not w.can_reserve()
        # The claim's owner can still send: its slot is already held.
        assert w.can_spend_reserved(claim)
    w.settle(dip, 0.0)
    w.settle(other, 0.0)
    with ledger.transaction():
        exit_key = w.spend_reserved(claim)
        assert w.held() == 3
    w.settle(exit_key, clock.monotonic())
    with ledger.transaction():
        assert w.held() == 3 and not w.can_reserve()


def test_a_released_claim_frees_its_slot_at_once(make) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = make()
    w = ledger.buckets["writes"]
    with ledger.transaction():
        claims = [w.reserve() for _ in range(3)]
        assert not w.can_spend()
    w.release_reservation(claims[0])
    w.release_reservation(claims[0])  # idempotent
    with ledger.transaction():
        assert w.held() == 2 and w.can_spend()


def test_a_lapsed_claim_needs_a_free_slot(make) -> None:  # type: ignore[no-untyped-def]
    ledger, clock = make(claim_ttl=5.0)
    b = ledger.buckets["b"]
    with ledger.transaction():
        claim = b.reserve()
        b.spend()
    clock.advance(5.0)  # the claim lapsed; the unanswered slot is still held
    with ledger.transaction():
        assert b.held() == 1
        key = b.spend_reserved(claim)  # a free slot, not the claim
        assert b.held() == 2
        assert not b.can_spend_reserved(claim)
    b.settle(key, clock.monotonic())


def test_pauses_block_every_spend_and_only_extend(make) -> None:  # type: ignore[no-untyped-def]
    ledger, clock = make()
    b = ledger.buckets["b"]
    with ledger.transaction():
        claim = b.reserve()
    b.pause(10.0)
    b.pause(5.0)
    with ledger.transaction():
        assert b.paused_until == 10.0 and b.is_paused()
        assert b.ready_at() == 10.0 and not b.can_spend()
        assert not b.can_spend_reserved(claim)  # a claim does not jump a 429 pause
    clock.advance(10.0)
    with ledger.transaction():
        assert b.can_spend() and not b.is_paused()


def test_need_above_the_limit_is_never_ready(make) -> None:  # type: ignore[no-untyped-def]
    ledger, _ = make()
    with ledger.transaction():
        assert ledger.buckets["b"].ready_at(3) == float("inf")


def test_time_to_send_and_sends_within_read_the_ledger(make) -> None:  # type: ignore[no-untyped-def]
    ledger, clock = make()
    w = ledger.buckets["writes"]
    spend_and_answer(ledger, "writes", 0.0, clock)
    spend_and_answer(ledger, "writes", 0.0, clock)
    span = hold_span(100.0)
    assert w.time_to_send(1) == 0.0
    assert w.time_to_send(2) == pytest.approx(span)
    assert w.sends_within(10.0) == 1
    assert w.sends_within(span) == 4  # the free slot twice, the held ones once each
    w.pause(50.0)
    with ledger.transaction():
        pass
    assert w.time_to_send(1) == pytest.approx(50.0)
    assert w.sends_within(49.0) == 0


def test_holders_say_who_holds_what(make) -> None:  # type: ignore[no-untyped-def]
    ledger, clock = make()
    with ledger.transaction():
        ledger.buckets["writes"].spend()
        ledger.buckets["writes"].reserve()
    rows = ledger.holders()
    assert [(r["bucket"], r["slots"], r["claims"]) for r in rows] == [("writes", 1, 1)]
    assert set(rows[0]) >= {"bucket", "run_id", "pid", "slots", "claims"}
