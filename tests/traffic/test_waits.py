"""Long waits are said once, when they start: a 429 pause, a full bucket, another process's
pause; short ones (the competitors bucket's spacing) say nothing. Simulated time throughout."""

from __future__ import annotations

import heapq
import random
from typing import Any, Callable

import pytest

from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec
from bmctl.traffic.clock import SimClock
from bmctl.traffic.controller import AttemptRecord, TrafficController
from bmctl.traffic.ledger import MemoryLedger
from bmctl.traffic.transport import HttpRequest, HttpResponse
from bmctl.traffic.waits import LONG_WAIT, duration_text

from .fakes import FakeTransport, RecordingClock, get, post

COMP = "/ws/backbox/v1/competitors/"
LIST = "/ws/listings/"
CAT = "/ws/catalog/"
OK = HttpResponse(200)


def too_many(retry_after: str | None = "10") -> HttpResponse:
    return HttpResponse(429, {"retry-after": retry_after} if retry_after is not None else {})


class Heard:
    """The notice and debug channels, as lists."""

    def __init__(self) -> None:
        self.notices: list[str] = []
        self.debug: list[str] = []


def make(answers: Any = (), limits: dict[str, LimitSpec] | None = None, *, debug: bool = False,
         wire: Any = None, clock: SimClock | None = None
         ) -> tuple[TrafficController, RecordingClock, Heard, list[AttemptRecord]]:
    clock = clock or RecordingClock()
    specs = dict(DEFAULT_LIMITS)
    specs.update(limits or {})
    heard = Heard()
    records: list[AttemptRecord] = []
    transport = FakeTransport(clock, answers, latency=0.05)
    ctl = TrafficController(MemoryLedger(specs, clock.monotonic), None, transport, clock=clock,
                            on_attempt=records.append, rng=random.Random(7), wire=wire,
                            notice=heard.notices.append,
                            debug=heard.debug.append if debug else None)
    return ctl, clock, heard, records  # type: ignore[return-value]


class AnswerWire:
    """Up to ``capacity`` requests on the wire at once, each answered ``latency`` after it left
    by ``answer(request, n)`` (``n``: its send number), in simulated time."""

    def __init__(self, clock: SimClock, answer: Callable[[HttpRequest, int], HttpResponse],
                 capacity: int = 8, latency: float = 0.1) -> None:
        self.clock = clock
        self.answer = answer
        self.capacity = capacity
        self.latency = latency
        self.sent: list[float] = []
        self._events: list[tuple[float, int, Any, HttpResponse]] = []

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        now = self.clock.monotonic()
        self.sent.append(now)
        heapq.heappush(self._events, (now + self.latency, len(self.sent), token,
                                      self.answer(request, len(self.sent))))
        return now

    def poll(self) -> list[Any]:
        done = []
        while self._events and self._events[0][0] <= self.clock.monotonic():
            when, _, token, response = heapq.heappop(self._events)
            done.append((token, response, when))
        return done

    def wait(self, until: float) -> None:
        if self._events and self._events[0][0] <= until:
            until = self._events[0][0]
        if until != float("inf"):
            self.clock.sleep(until - self.clock.monotonic())

    def close(self) -> None:
        pass


# -- 429 pauses -------------------------------------------------------------------------------
def test_a_429_with_retry_after_is_said_once_with_the_bucket_and_the_pause() -> None:
    ctl, clock, heard, _ = make([too_many("10")])
    ctl.execute(get(COMP + "a"))
    (notice,) = heard.notices
    assert "429" in notice and "competitors" in notice and "10 s" in notice
    assert "Retry-After" in notice
    assert clock.monotonic() >= 10.0  # it did wait


def test_a_429_without_retry_after_names_the_default_pause() -> None:
    ctl, _, heard, _ = make([too_many(None)], {"competitors": LimitSpec(2, 1.0, penalty=12.0)})
    ctl.execute(get(COMP + "a"))
    (notice,) = heard.notices
    assert "12 s" in notice and "default pause" in notice


def test_many_requests_answered_429_within_one_pause_make_one_notice() -> None:
    clock = RecordingClock()
    # Every request sent in the first second is refused: six are on the wire together.
    wire = AnswerWire(clock, lambda request, n: too_many("10") if clock.monotonic() < 1.0 else OK)
    ctl, _, heard, records = make(clock=clock, wire=wire)
    calls = [ctl.submit(get(LIST + str(i))) for i in range(6)]
    ctl.run()
    assert all(call.done and call.response is not None and call.response.status == 200
               for call in calls)
    assert sum(r.outcome == "rate_limited" for r in records) == 6
    assert len(heard.notices) == 1 and "10 s" in heard.notices[0]


def test_a_second_pause_after_the_first_ended_is_a_new_notice() -> None:
    ctl, _, heard, _ = make([too_many("10"), too_many("10"), OK])
    ctl.execute(get(COMP + "a"))
    assert len(heard.notices) == 2


def test_a_short_429_pause_says_nothing() -> None:
    ctl, _, heard, records = make([too_many("1")], debug=True)
    ctl.execute(get(COMP + "a"))
    assert heard.notices == [] and heard.debug == []
    assert records[0].retry_in == pytest.approx(1.0)  # -v's per-attempt line has it


def test_a_pause_another_process_started_is_said_once() -> None:
    ctl, _, heard, _ = make()
    ctl.buckets["competitors"].pause(8.0)  # what another process's 429 leaves in the ledger
    for i in range(3):
        ctl.submit(get(COMP + str(i)))
    ctl.run()
    (notice,) = heard.notices
    assert "competitors" in notice and "another bmctl run" in notice and "8 s" in notice


# -- waiting for budget -----------------------------------------------------------------------
def test_short_waits_for_the_competitors_bucket_say_nothing() -> None:
    ctl, clock, heard, _ = make(debug=True)
    for i in range(12):
        ctl.submit(get(COMP + str(i)))
    ctl.run()
    assert clock.monotonic() > 4.0  # it waited, a second at a time
    assert heard.notices == [] and heard.debug == []


def test_slots_held_by_requests_on_the_wire_are_not_a_long_wait() -> None:
    clock = RecordingClock()
    # Two competitors reads on the wire hold their slots as if never answered (a minute and
    # more) until their answers come, 0.5 s later: the others wait about a second, not that.
    wire = AnswerWire(clock, lambda request, n: OK, latency=0.5)
    ctl, _, heard, _ = make(clock=clock, wire=wire, debug=True)
    for i in range(6):
        ctl.submit(get(COMP + str(i)))
    ctl.run()
    assert heard.notices == [] and heard.debug == []


def test_a_full_hourly_bucket_is_said_once_in_minutes() -> None:
    ctl, clock, heard, _ = make(limits={"listing_writes": LimitSpec(2, 3600.0)})
    for i in range(3):
        ctl.submit(post(LIST + str(i)))
    ctl.call_at(600.0, lambda: None)  # the loop wakes meanwhile: still one notice
    ctl.run()
    assert clock.monotonic() > 3600.0
    (notice,) = heard.notices
    assert "listing_writes" in notice and "2 requests per hour" in notice
    assert "60 min" in notice


def test_steady_throttling_on_one_bucket_is_said_once_and_each_wait_under_verbose() -> None:
    ctl, _, heard, _ = make(limits={"catalog": LimitSpec(2, 10.0)}, debug=True)
    for i in range(8):
        ctl.submit(get(CAT + str(i)))
    ctl.run()
    (notice,) = heard.notices
    assert "catalog" in notice and "10 s" in notice
    assert len(heard.debug) == 2  # the two later waits (four windows, three waits)
    assert all("catalog" in line for line in heard.debug)


def test_nobody_listening_costs_nothing() -> None:
    clock = RecordingClock()
    ctl = TrafficController(MemoryLedger(dict(DEFAULT_LIMITS), clock.monotonic), None,
                            FakeTransport(clock, [too_many("10")]), clock=clock)
    assert ctl._waits is None
    ctl.execute(get(COMP + "a"))


# -- per-attempt detail (-v) ------------------------------------------------------------------
def test_each_attempt_says_when_the_next_one_goes() -> None:
    ctl, _, _, records = make([HttpResponse(503), too_many("10"), OK])
    ctl.execute(get(COMP + "a"))
    retry, limited, ok = records
    assert retry.outcome == "retry" and retry.retry_in is not None and 0 < retry.retry_in <= 0.5
    assert limited.outcome == "rate_limited" and limited.retry_in == pytest.approx(10.0)
    assert ok.retry_in is None


@pytest.mark.parametrize("seconds, text", [
    (0.2, "1 s"), (2.0, "2 s"), (10.0, "10 s"), (10.01, "11 s"), (89.0, "89 s"), (90.0, "2 min"),
    (600.0, "10 min"), (3600.0, "60 min"), (5400.0, "1 h 30 min"), (7200.0, "2 h"),
])
def test_durations_read_as_an_operator_would(seconds: float, text: str) -> None:
    assert duration_text(seconds) == text


def test_the_threshold_is_above_the_competitors_spacing() -> None:
    spec = DEFAULT_LIMITS["competitors"]
    assert spec.window / spec.limit < LONG_WAIT and spec.window < LONG_WAIT
