"""TokenBucket: levels, spends, reservations, pauses, carry-over."""

from __future__ import annotations

import math

import pytest

from bmctl.traffic.buckets import (
    DEFAULT_JITTER, DEFAULT_LIMITS, FLOAT_GUARD, LimitSpec, TokenBucket, make_buckets,
)
from bmctl.traffic.clock import SimClock


def bucket(limit: int = 2, window: float = 1.0, burst: int = 1, jitter: float = 0.0,
           horizon: float = 60.0, clock: SimClock | None = None) -> tuple[TokenBucket, SimClock]:
    clock = clock or SimClock()
    return TokenBucket("b", LimitSpec(limit, window, burst), jitter, clock, horizon=horizon), clock


def test_rate_formula_and_capacity() -> None:
    b, _ = bucket(limit=200, window=10.0, burst=5, jitter=0.05)
    assert b.capacity == 5
    assert b.rate == pytest.approx((200 - 5 + 1) / (10.0 + 0.05), rel=1e-6)
    assert b.interval == pytest.approx((10.05 + FLOAT_GUARD) / 196)
    assert b.tokens == 5


def test_spend_until_empty_then_refill() -> None:
    b, clock = bucket(limit=3, window=3.0, burst=2)  # rate 2/3 per s
    b.spend()
    b.spend()
    assert not b.can_spend()
    with pytest.raises(RuntimeError):
        b.spend()
    assert b.time_until_token() == pytest.approx(1.5, abs=1e-4)
    clock.advance(1.5 + 1e-4)
    assert b.refill() == pytest.approx(1.0, abs=1e-3)
    assert b.can_spend()
    clock.advance(100)
    assert b.tokens == 2  # never above burst


def test_accepts_a_plain_callable_clock() -> None:
    now = [0.0]
    b = TokenBucket("b", LimitSpec(1, 1.0), 0.0, lambda: now[0])
    b.spend()
    assert not b.can_spend()
    now[0] = 1.0 + 2 * FLOAT_GUARD
    assert b.can_spend()


def test_pause_blocks_and_time_until_token_counts_it() -> None:
    b, clock = bucket()
    b.pause(10.0)
    assert b.is_paused() and not b.can_spend()
    assert b.time_until_token() == pytest.approx(10.0)
    b.pause(5.0)  # a shorter pause never shortens the running one
    assert b.paused_until == 10.0
    clock.advance(10.0)
    assert b.can_spend()


def test_reservation_coverage_blocks_ordinary_spends() -> None:
    # limit 1 per 10 s, horizon 20 s: a full bucket covers 1 + 1.999998 claims.
    b, clock = bucket(limit=1, window=10.0, horizon=20.0)
    assert b.can_reserve()
    b.reserve()
    # Spending the token would leave 0 tokens + ~2 in the horizon: still covers one claim.
    assert b.can_spend()
    assert b.can_reserve()  # 1 - 1 + 1.999998 >= 1
    b.reserve()
    assert b.reserved == 2
    assert not b.can_spend()  # would break coverage of the two claims
    assert b.time_until_token() == math.inf  # only a release or reserved spend helps
    assert b.can_spend_reserved()
    b.spend_reserved()  # the claim holder takes the real token
    assert b.reserved == 1
    assert not b.can_spend()  # no token now
    b.release_reservation()
    assert b.reserved == 0
    clock.advance(b.interval)
    assert b.can_spend()


def test_reserve_refuses_uncoverable_claims() -> None:
    b, _ = bucket(limit=1, window=10.0, horizon=5.0)
    b.reserve()  # 1 token now
    assert not b.can_reserve()  # 1 - 1 + 0.5 < 1
    with pytest.raises(RuntimeError):
        b.reserve()


def test_spend_reserved_needs_a_real_token() -> None:
    b, clock = bucket(limit=1, window=1.0, horizon=60.0)
    b.reserve()
    b.spend()  # coverage holds: 0 + 60 >= 1
    assert not b.can_spend_reserved()
    with pytest.raises(RuntimeError):
        b.spend_reserved()
    clock.advance(1.0 + 2 * FLOAT_GUARD)
    b.spend_reserved()
    assert b.reserved == 0


def test_charge_replays_recent_sends_with_debt() -> None:
    clock = SimClock(start=500.0, wall_start=1_800_000_000.0)
    b = TokenBucket("b", LimitSpec(2, 1.0), 0.0, clock)  # interval ~0.5 s
    now_wall = clock.wall()
    # four sends in the last 0.2 s: a crash-burst; debt of 3 tokens (0.5 s each).
    b.charge([now_wall - 0.2, now_wall - 0.15, now_wall - 0.1, now_wall - 0.05], now_wall)
    assert b.tokens == pytest.approx(-2.6, abs=1e-3)
    assert b.time_until_token() == pytest.approx(1.8, abs=1e-3)


def test_charge_ignores_sends_older_than_the_span() -> None:
    clock = SimClock()
    b = TokenBucket("b", LimitSpec(2, 1.0), 0.05, clock)
    now_wall = clock.wall()
    b.charge([now_wall - 5.0, now_wall - 1.06], now_wall)
    assert b.can_spend() and b.tokens == 1


def test_charge_treats_future_sends_as_now() -> None:
    clock = SimClock()
    b = TokenBucket("b", LimitSpec(1, 1.0), 0.0, clock)
    b.charge([clock.wall() + 30.0], clock.wall())
    assert b.time_until_token() == pytest.approx(1.0, abs=1e-3)


def test_defaults_and_make_buckets() -> None:
    assert DEFAULT_JITTER == 0.05
    assert {n: (s.limit, s.window) for n, s in DEFAULT_LIMITS.items()} == {
        "global": (200, 10.0), "catalog": (20, 10.0), "competitors": (2, 1.0),
        "listing_writes": (2000, 3600.0)}
    buckets = make_buckets(clock=SimClock())
    assert set(buckets) == set(DEFAULT_LIMITS)
    assert all(b.spec.penalty == 10.0 and b.capacity == 1 for b in buckets.values())


@pytest.mark.parametrize("kwargs", [dict(limit=0, window=1.0), dict(limit=1, window=0.0),
                                    dict(limit=2, window=1.0, burst=3)])
def test_limit_spec_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        LimitSpec(**kwargs)
