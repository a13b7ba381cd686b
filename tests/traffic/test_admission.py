"""The anchored admission rule as pure functions of timestamps (PyrateLimiter-style tables).

These functions are what every ledger runs: ``Bucket.ready_at`` calls ``ready_time``,
``Bucket.time_to_send`` / ``sends_within`` the two estimates."""

from __future__ import annotations

import math

import pytest

from bmctl.traffic.admission import (
    CLOCK_RATE_TOLERANCE,
    MIN_GUARD,
    guard,
    hold_span,
    needed_expiries,
    ready_time,
    send_times,
    sends_within,
)

INF = math.inf

# limit, held, earliest expiries, need, now, paused_until -> ready time
READY_CASES = [
    pytest.param(2, 0, [], 1, 5.0, -INF, 5.0, id="empty bucket: now"),
    pytest.param(2, 1, [7.0], 1, 5.0, -INF, 5.0, id="one of two held: now"),
    pytest.param(2, 2, [6.0, 7.0], 1, 5.0, -INF, 6.0, id="full: first expiry"),
    pytest.param(2, 2, [6.0, 7.0], 2, 5.0, -INF, 7.0, id="full, need 2: second expiry"),
    pytest.param(3, 2, [6.0, 7.0], 2, 5.0, -INF, 6.0, id="one free, need 2: first expiry"),
    pytest.param(2, 0, [], 1, 5.0, 9.0, 9.0, id="paused: end of pause"),
    pytest.param(2, 2, [6.0, 7.0], 1, 5.0, 5.5, 6.0, id="pause ends before the slot frees"),
    pytest.param(2, 2, [6.0, 7.0], 1, 5.0, 8.0, 8.0, id="slot frees before the pause ends"),
    pytest.param(2, 0, [], 3, 5.0, -INF, INF, id="need above the limit: never"),
    pytest.param(1, 0, [], 2, 5.0, -INF, INF, id="a dip and its exit claim on a limit of 1: never"),
    pytest.param(2, 2, [6.0, 7.0], 0, 5.0, -INF, 5.0, id="need 0 (a live claim): now"),
    pytest.param(2, 2, [6.0, 7.0], 0, 5.0, 8.0, 8.0, id="need 0 still waits for the pause"),
    pytest.param(2000, 1999, [3000.0], 1, 5.0, -INF, 5.0, id="large bucket, last slot"),
    pytest.param(2000, 2000, [3000.0], 1, 5.0, -INF, 3000.0, id="large bucket, full"),
]


@pytest.mark.parametrize(("limit", "held", "earliest", "need", "now", "paused", "expected"), READY_CASES)
def test_ready_time(limit: int, held: int, earliest: list[float], need: int, now: float,
                    paused: float, expected: float) -> None:
    assert ready_time(limit, held, earliest, need, now, paused) == expected


def test_ready_time_reads_only_the_prefix_it_needs() -> None:
    # Two of 2,000 held slots must free for a dip and its claim on a full bucket: only the
    # two earliest expiries are read, whatever the rest is.
    assert ready_time(2000, 2000, [10.0, 11.0], 2, 0.0) == 11.0


@pytest.mark.parametrize(("window", "expected"), [
    (1.0, 1.0 + MIN_GUARD), (10.0, 10.0 + MIN_GUARD), (3600.0, 3600.0 + 3600.0 * CLOCK_RATE_TOLERANCE),
])
def test_hold_span_adds_the_clock_guard(window: float, expected: float) -> None:
    assert hold_span(window) == pytest.approx(expected)
    assert guard(window) >= MIN_GUARD


# limit, span, held, earliest, count, now, round_trip -> seconds until the count-th send
SEND_CASES = [
    pytest.param(2, 1.0, 0, [], 0, 0.0, 0.0, 0.0, id="nothing to send"),
    pytest.param(2, 1.0, 0, [], 2, 0.0, 0.0, 0.0, id="the free slots go at once"),
    pytest.param(2, 1.0, 0, [], 3, 0.0, 0.0, 1.0, id="the third reuses the first slot"),
    pytest.param(2, 1.0, 0, [], 5, 0.0, 0.1, 2.2, id="each reuse waits round trip + span"),
    pytest.param(2, 1.0, 2, [3.0, 4.0], 1, 0.0, 0.0, 3.0, id="held slots free at their expiry"),
    pytest.param(2, 1.0, 1, [3.0], 2, 0.0, 0.0, 1.0, id="the free slot is back before the held one"),
    pytest.param(2, 5.0, 1, [3.0], 2, 0.0, 0.0, 3.0, id="the held slot frees first"),
    pytest.param(2000, 3601.0, 1900, [10.0] * 1900, 150, 0.0, 0.0, 10.0, id="hourly bucket nearly full"),
]


@pytest.mark.parametrize(("limit", "span", "held", "earliest", "count", "now", "rtt", "expected"), SEND_CASES)
def test_send_times(limit: int, span: float, held: int, earliest: list[float], count: int,
                    now: float, rtt: float, expected: float) -> None:
    assert send_times(limit, span, held, earliest, count, now, rtt) == pytest.approx(expected)


@pytest.mark.parametrize(("limit", "span", "held", "earliest", "seconds", "rtt", "expected"), [
    pytest.param(2, 1.0, 0, [], 0.0, 0.0, 2, id="free slots now"),
    pytest.param(2, 1.0, 0, [], 2.5, 0.0, 6, id="three uses of each slot in 2.5 s"),
    pytest.param(2000, 3600.0, 2000, [100.0] * 800 + [4000.0] * 1200, 600.0, 0.0, 800,
                 id="cron: what frees within a 10-minute deadline"),
    pytest.param(2000, 3600.0, 1200, [4000.0] * 1200, 600.0, 0.0, 800, id="cron: what is free"),
    pytest.param(2, 1.0, 2, [5.0, 6.0], 1.0, 0.0, 0, id="nothing frees in time"),
])
def test_sends_within(limit: int, span: float, held: int, earliest: list[float], seconds: float,
                      rtt: float, expected: int) -> None:
    assert sends_within(limit, span, held, earliest, seconds, 0.0, rtt) == expected


@pytest.mark.parametrize(("limit", "held", "count", "expected"), [
    (2, 0, 5, 0), (2, 2, 1, 1), (2, 2, 5, 2), (2000, 1990, 20, 10), (2000, 10, 20, 0),
    (2000, 1990, None, 1990),
])
def test_needed_expiries(limit: int, held: int, count: int | None, expected: int) -> None:
    assert needed_expiries(limit, held, count) == expected


def test_send_times_agrees_with_sends_within() -> None:
    earliest = [0.4, 0.9, 1.7]
    for count in range(1, 30):
        t = send_times(4, 1.0, 3, earliest, count, 0.0, 0.05)
        assert sends_within(4, 1.0, 3, earliest, t, 0.0, 0.05) >= count
        assert sends_within(4, 1.0, 3, earliest, t - 1e-6, 0.0, 0.05) < count
