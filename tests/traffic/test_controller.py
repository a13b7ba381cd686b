"""TrafficController: dispatch order, the ledger's slots, reservations, 429s, retries, timers,
callbacks."""

from __future__ import annotations

import random
from email.utils import formatdate

import pytest

from bmctl.errors import ConfigError
from bmctl.traffic.admission import MIN_GUARD, hold_span
from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec
from bmctl.traffic.controller import (
    AttemptRecord,
    Call,
    TrafficController,
    TrafficStalled,
    parse_retry_after,
)
from bmctl.traffic.ledger import MemoryLedger
from bmctl.traffic.queue import Priority
from bmctl.traffic.routes import RouteMap
from bmctl.traffic.transport import HttpResponse, TransportError, UnusableAnswer

from .fakes import FakeTransport, RecordingClock, get, post

COMP = "/ws/backbox/v1/competitors/"
LIST = "/ws/listings/"
CAT = "/ws/catalog/"
OK = HttpResponse(200)
SPAN = 1.0 + MIN_GUARD  # a competitors slot is held this long after its answer


def make(answers=(), limits=None, *, latency: float = 0.0, claim_ttl: float = 180.0, **kw):
    """A controller on a recording SimClock and an in-memory ledger."""
    clock = RecordingClock()
    transport = FakeTransport(clock, answers, latency=latency)
    specs = dict(DEFAULT_LIMITS)
    specs.update(limits or {})
    records: list[AttemptRecord] = []
    kw.setdefault("rng", random.Random(7))
    ledger = MemoryLedger(specs, clock.monotonic, claim_ttl=claim_ttl)
    ctl = TrafficController(ledger, None, transport, clock=clock, on_attempt=records.append, **kw)
    return ctl, transport, clock, records


def claims(ctl: TrafficController, bucket: str) -> int:
    return sum(r["claims"] for r in ctl.ledger.holders() if r["bucket"] == bucket)


# -- order ------------------------------------------------------------------------------------
def test_priority_order_and_fifo_within_a_level() -> None:
    ctl, transport, _, _ = make(limits={"global": LimitSpec(1, 1.0)})
    for name, prio in [("l1", Priority.LOW), ("n1", Priority.NORMAL), ("c1", Priority.CRITICAL),
                       ("n2", Priority.NORMAL), ("h1", Priority.HIGH), ("c2", Priority.CRITICAL),
                       ("l2", Priority.LOW)]:
        ctl.submit(get(LIST + name), prio)
    ctl.run()
    assert [p.rsplit("/", 1)[1] for p in transport.paths()] == ["c1", "c2", "h1", "n1", "n2", "l1", "l2"]


def test_multi_bucket_all_or_nothing() -> None:
    ctl, transport, _, _ = make(limits={"global": LimitSpec(5, 100.0),
                                        "competitors": LimitSpec(1, 1.0)})
    glob = ctl.buckets["global"]
    seen: list[int] = []
    ctl.submit(get(COMP + "a"))
    ctl.submit(get(COMP + "b"))
    # While b waits for competitors, it must not hold a global slot.
    ctl.call_at(0.5, lambda: seen.append(glob.held()))
    ctl.run()
    assert seen == [1]
    assert transport.times() == pytest.approx([0.0, SPAN])
    assert glob.held() == 2  # both took a global slot, at send time


def test_disjoint_buckets_pass_a_blocked_request() -> None:
    ctl, transport, _, _ = make()
    ctl.buckets["catalog"].pause(5.0)
    ctl.submit(get(CAT + "high"), Priority.HIGH)  # blocked on catalog only
    ctl.submit(get(LIST + "low"), Priority.LOW)  # global has tokens: may pass
    ctl.run()
    assert transport.paths() == [LIST + "low", CAT + "high"]
    assert transport.times() == pytest.approx([0.0, 5.0])


def test_blocked_request_holds_back_lower_priority_on_its_short_bucket() -> None:
    ctl, transport, _, _ = make(limits={"global": LimitSpec(1, 1.0)})
    ctl.buckets["global"].pause(2.0)
    ctl.submit(get(COMP + "high"), Priority.HIGH)
    ctl.submit(get(LIST + "low"), Priority.LOW)
    ctl.submit(get(COMP + "normal"), Priority.NORMAL)
    ctl.run()
    assert transport.paths() == [COMP + "high", COMP + "normal", LIST + "low"]


def test_held_back_request_keeps_its_rank_on_its_own_buckets() -> None:
    # HIGH needs global (paused); NORMAL needs global+catalog (catalog paused too);
    # LOW needs catalog only: it must not overtake NORMAL on catalog.
    ctl, transport, _, _ = make()
    ctl.buckets["global"].pause(1.0)
    ctl.buckets["catalog"].pause(1.0)
    ctl.submit(get(LIST + "high"), Priority.HIGH)
    ctl.submit(get(CAT + "normal"), Priority.NORMAL)
    ctl.run()
    assert transport.paths() == [LIST + "high", CAT + "normal"]


# -- sleeping ---------------------------------------------------------------------------------
def test_sleeps_exactly_until_a_slot_frees() -> None:
    ctl, transport, clock, _ = make()
    for i in range(5):
        ctl.submit(get(COMP + str(i)))
    ctl.run()
    assert clock.sleeps == pytest.approx([SPAN, SPAN], rel=1e-12)
    assert transport.times() == pytest.approx([0.0, 0.0, SPAN, SPAN, 2 * SPAN])


def test_a_slot_is_held_from_send_until_a_window_after_the_answer() -> None:
    ctl, transport, clock, _ = make(latency=0.3)
    for i in range(4):
        ctl.submit(get(COMP + str(i)))
    ctl.run()
    # Sent at 0 and 0.3 (one at a time), answered at 0.3 and 0.6: free again a window later.
    assert transport.times() == pytest.approx([0.0, 0.3, 0.3 + SPAN, 0.6 + SPAN])


def test_timers_interleave_with_requests() -> None:
    ctl, transport, clock, _ = make()
    events: list[tuple[str, float]] = []
    for i in range(3):
        ctl.submit(get(COMP + str(i)), on_done=lambda c: events.append(("req", ctl.now())))
    ctl.call_at(0.3, lambda: events.append(("t1", ctl.now())))
    ctl.call_later(0.8, lambda: events.append(("t2", ctl.now())))
    cancelled = ctl.call_at(0.9, lambda: events.append(("never", ctl.now())))
    cancelled.cancel()
    ctl.run()
    assert [e[0] for e in events] == ["req", "req", "t1", "t2", "req"]
    assert clock.sleeps == pytest.approx([0.3, 0.5, SPAN - 0.8])


def test_callbacks_chain_new_work_and_run_until() -> None:
    ctl, transport, _, _ = make()
    steps: list[str] = []

    def step(call: Call) -> None:  # a tiny probe-like state machine
        steps.append(call.request.path)
        if len(steps) < 3:
            ctl.call_later(2.0, lambda: ctl.submit(get(COMP + str(len(steps))), Priority.HIGH,
                                                   on_done=step))

    ctl.submit(get(COMP + "0"), on_done=step)
    ctl.run(until=lambda: len(steps) >= 2)
    assert len(steps) == 2
    ctl.run()
    assert steps == [COMP + "0", COMP + "1", COMP + "2"]
    assert transport.times() == pytest.approx([0.0, 2.0, 4.0])


def test_exceptions_from_callbacks_propagate_and_the_loop_survives() -> None:
    ctl, transport, _, _ = make()

    def boom(call: Call) -> None:
        raise ValueError("boom")

    ctl.submit(get(LIST + "a"), on_done=boom)
    ctl.submit(get(LIST + "b"))
    with pytest.raises(ValueError, match="boom"):
        ctl.run()
    ctl.call_later(1.0, lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        ctl.run()
    ctl.run()
    assert transport.paths() == [LIST + "a", LIST + "b"]


class TogetherWire:
    """Several requests on the wire, all answered 200 in the same poll."""

    capacity = 4

    def __init__(self, clock: RecordingClock) -> None:
        self.clock = clock
        self.started: list[int] = []
        self.ready: list[tuple[int, HttpResponse, float]] = []

    def start(self, token, request, timeout):  # type: ignore[no-untyped-def]
        self.started.append(token)
        return self.clock.monotonic()

    def poll(self):  # type: ignore[no-untyped-def]
        done, self.ready = self.ready, []
        return done

    def wait(self, until: float) -> None:
        if self.started:
            self.ready += [(t, HttpResponse(200), self.clock.monotonic()) for t in self.started]
            self.started = []
        elif until != float("inf"):
            self.clock.advance(max(0.0, until - self.clock.monotonic()))

    def close(self) -> None:
        pass


def test_answers_polled_with_one_whose_callback_raises_are_not_lost() -> None:
    """A run-stopping error raised from one callback used to drop the answers polled with it:
    their slots stayed held, and drain() waited out its whole limit (30 s at the end of a run)."""
    clock = RecordingClock()
    records: list[AttemptRecord] = []
    ledger = MemoryLedger(DEFAULT_LIMITS, clock.monotonic)
    ctl = TrafficController(ledger, None, FakeTransport(clock), clock=clock, wire=TogetherWire(clock),
                            on_attempt=records.append)

    def boom(call: Call) -> None:
        raise ValueError("the run stops")

    ctl.submit(get(LIST + "a"), on_done=boom)
    second = ctl.submit(get(LIST + "b"))
    with pytest.raises(ValueError):
        ctl.run()
    ctl.drain(limit=clock.monotonic() + 30.0)
    assert ctl.in_flight() == 0 and clock.monotonic() == 0.0  # taken in at once
    assert [r.request.path for r in records] == [LIST + "a", LIST + "b"] and not second.done


# -- reservations -----------------------------------------------------------------------------
# listing_writes: 2 slots per 10 s.
RES_LIMITS = {"listing_writes": LimitSpec(2, 10.0)}
WSPAN = hold_span(10.0)


def test_reserve_exit_then_exit_spends_the_claimed_slot_before_others() -> None:
    ctl, transport, _, _ = make(limits=RES_LIMITS)
    writes = ctl.buckets["listing_writes"]
    dip = ctl.submit(post(LIST + "dip"), Priority.HIGH, reserve_exit=True)
    ctl.submit(post(LIST + "other"), Priority.NORMAL)
    ctl.run(until=lambda: dip.done)
    assert dip.reservation is not None and claims(ctl, "listing_writes") == 1
    # The slot left is the exit's claim: "other" may not take it.
    ctl.call_at(1.0, lambda: ctl.submit(post(LIST + "exit"), Priority.CRITICAL,
                                        reservation=dip.reservation))
    ctl.run()
    assert transport.paths() == [LIST + "dip", LIST + "exit", LIST + "other"]
    assert transport.times() == pytest.approx([0.0, 1.0, WSPAN])
    assert claims(ctl, "listing_writes") == 0 and not dip.reservation.active
    assert writes.held() == 2


def test_release_returns_the_claimed_slot() -> None:
    ctl, transport, _, _ = make(limits=RES_LIMITS)
    dip = ctl.submit(post(LIST + "dip"), Priority.HIGH, reserve_exit=True)
    ctl.submit(post(LIST + "other"), Priority.NORMAL)
    ctl.call_at(1.0, lambda: ctl.release(dip.reservation))
    ctl.run()
    assert transport.paths() == [LIST + "dip", LIST + "other"]
    assert transport.times() == pytest.approx([0.0, 1.0])
    assert claims(ctl, "listing_writes") == 0
    ctl.release(dip.reservation)  # idempotent
    assert claims(ctl, "listing_writes") == 0


def test_reserve_exit_is_atomic() -> None:
    ctl, transport, _, _ = make(limits=RES_LIMITS)
    glob = ctl.buckets["global"]
    d1 = ctl.submit(post(LIST + "d1"), Priority.HIGH, reserve_exit=True)
    d2 = ctl.submit(post(LIST + "d2"), Priority.HIGH, reserve_exit=True)
    seen: list[tuple[int, int, bool]] = []
    # One write slot is left but d2 needs two (its own and its exit's): it takes nothing.
    ctl.call_at(2.0, lambda: seen.append((glob.held(), ctl.buckets["listing_writes"].held(),
                                          d2.reservation is None)))
    ctl.call_at(3.0, lambda: ctl.submit(post(LIST + "x1"), Priority.CRITICAL,
                                        reservation=d1.reservation))
    ctl.run()
    assert seen == [(2, 2, True)]  # d1's global slot and claim only
    assert transport.paths() == [LIST + "d1", LIST + "x1", LIST + "d2"]
    # d2 waits for both write slots: d1's (free at WSPAN) and x1's (free at 3 + WSPAN).
    assert transport.times() == pytest.approx([0.0, 3.0, 3.0 + WSPAN])
    assert d2.reservation is not None and claims(ctl, "listing_writes") == 1


def test_retry_of_a_reserved_request_takes_a_free_slot() -> None:
    ctl, transport, _, records = make([HttpResponse(200), HttpResponse(503), HttpResponse(200)],
                                      limits=RES_LIMITS)
    dip = ctl.submit(post(LIST + "dip"), reserve_exit=True)
    ctl.run()
    exit_call = ctl.submit(post(LIST + "exit"), Priority.CRITICAL, reservation=dip.reservation)
    ctl.run()
    assert exit_call.attempts == 2 and exit_call.response.status == 200
    assert claims(ctl, "listing_writes") == 0
    assert [r.outcome for r in records] == ["ok", "retry", "ok"]
    assert transport.times()[2] == pytest.approx(WSPAN)  # the retry waited for the dip's slot


def test_a_lapsed_claim_still_lets_its_exit_through_when_a_slot_is_free() -> None:
    ctl, transport, clock, _ = make(limits=RES_LIMITS, claim_ttl=5.0)
    dip = ctl.submit(post(LIST + "dip"), reserve_exit=True)
    ctl.run()
    ctl.call_at(6.0, lambda: ctl.submit(post(LIST + "exit"), Priority.CRITICAL,
                                        reservation=dip.reservation))
    ctl.run()
    assert transport.times() == pytest.approx([0.0, 6.0])


def test_stalled_reservations_raise() -> None:
    ctl, _, _, _ = make(limits={"listing_writes": LimitSpec(1, 10.0)})
    ctl.submit(post(LIST + "dip"), reserve_exit=True)  # a dip and its exit need two slots of one
    with pytest.raises(TrafficStalled):
        ctl.run()


# -- 429 and retries --------------------------------------------------------------------------
def r429(retry_after: str | None = None) -> HttpResponse:
    return HttpResponse(429, {"retry-after": retry_after} if retry_after else {})


def test_429_with_retry_after_seconds() -> None:
    ctl, transport, clock, records = make([r429("3")])
    call = ctl.submit(get(COMP + "a"), Priority.HIGH)
    ctl.submit(get(LIST + "b"), Priority.LOW)  # global is paused too
    ctl.run()
    assert call.response.status == 200 and call.attempts == 2
    assert transport.paths() == [COMP + "a", COMP + "a", LIST + "b"]
    assert clock.sleeps == pytest.approx([3.0])
    assert transport.times() == pytest.approx([0.0, 3.0, 3.0])
    assert [(r.attempt, r.outcome, r.retry_after, r.status) for r in records[:2]] == [
        (1, "rate_limited", 3.0, 429), (2, "ok", None, 200)]
    assert records[1].queue_wait_ms == pytest.approx(3000.0)  # from the requeue


def test_429_with_retry_after_http_date() -> None:
    ctl, transport, clock, records = make([r429(formatdate(1_800_000_007, usegmt=True))])
    ctl.execute(get(COMP + "a"))
    assert clock.sleeps == [pytest.approx(7.0)]
    assert records[0].retry_after == pytest.approx(7.0)


def test_429_without_retry_after_uses_each_bucket_penalty() -> None:
    ctl, transport, clock, records = make(
        [r429()], limits={"competitors": LimitSpec(2, 1.0, penalty=4.0)})
    ctl.execute(get(COMP + "a"))
    assert ctl.buckets["global"].paused_until == pytest.approx(10.0)
    assert ctl.buckets["competitors"].paused_until == pytest.approx(4.0)
    assert clock.sleeps == [pytest.approx(10.0)]
    assert records[0].retry_after is None


def test_429_gives_up_after_max_attempts_returning_the_last_429() -> None:
    ctl, transport, _, records = make([r429("1")] * 10, max_attempts=3)
    response = ctl.execute(get(LIST + "a"))
    assert response.status == 429 and len(transport.sent) == 3
    assert [r.outcome for r in records] == ["rate_limited"] * 3


def test_5xx_retried_with_exponential_backoff_and_jitter() -> None:
    ctl, transport, clock, records = make([HttpResponse(503), HttpResponse(502)],
                                          backoff_base=0.5, rng=random.Random(3))
    response = ctl.execute(get(LIST + "a"))
    rng = random.Random(3)
    expected = [0.5 * (0.5 + 0.5 * rng.random()), 1.0 * (0.5 + 0.5 * rng.random())]
    assert response.status == 200
    assert clock.sleeps == pytest.approx(expected)
    assert [r.outcome for r in records] == ["retry", "retry", "ok"]
    assert ctl.queued() == 0


def test_backoff_is_capped() -> None:
    ctl, _, clock, _ = make([HttpResponse(500)] * 4, backoff_base=1.0, backoff_cap=2.0)
    ctl.execute(get(LIST + "a"))
    assert all(s <= 2.0 for s in clock.sleeps) and len(clock.sleeps) == 4


def test_timeouts_and_connection_errors_are_retried() -> None:
    ctl, _, _, records = make([TransportError("timeout", "read timed out"),
                               TransportError("connection", "reset")])
    assert ctl.execute(get(LIST + "a")).status == 200
    assert [(r.outcome, r.status, r.error) for r in records] == [
        ("timeout", None, "read timed out"), ("connection_error", None, "reset"), ("ok", 200, None)]


def test_http_errors_are_logged_with_status_reason_and_cf_ray() -> None:
    waf = HttpResponse(403, {"cf-ray": "8c1f2e3d4a5b6c7d-CDG"}, b"<html>Attention Required</html>")
    ctl, _, _, records = make([HttpResponse(503), r429("1"), HttpResponse(599), waf])
    ctl.execute(get(LIST + "a"))
    assert [r.error for r in records] == [
        "HTTP 503 Service Unavailable", "HTTP 429 Too Many Requests", "HTTP 599",
        "HTTP 403 Forbidden (cf-ray 8c1f2e3d4a5b6c7d-CDG)"]


def test_give_up_after_5xx_returns_the_last_answer() -> None:
    ctl, transport, _, records = make([HttpResponse(503)] * 5)
    assert ctl.execute(get(LIST + "a")).status == 503
    assert [r.outcome for r in records] == ["retry"] * 4 + ["http_error"]


def test_all_attempts_without_answer_raise_the_last_transport_error() -> None:
    ctl, _, _, _ = make([TransportError("connection", "refused")] * 2
                        + [TransportError("timeout", "last")], max_attempts=3)
    with pytest.raises(TransportError, match="last") as info:
        ctl.execute(get(LIST + "a"))
    assert info.value.kind == "timeout"


def test_an_earlier_http_answer_is_returned_when_later_attempts_time_out() -> None:
    ctl, _, _, _ = make([HttpResponse(502), TransportError("timeout", "t")], max_attempts=2)
    assert ctl.execute(get(LIST + "a")).status == 502


def test_a_call_answered_after_a_lost_attempt_carries_no_error() -> None:
    """The probe and update-price read ``call.error`` first: a read that timed out once and was
    then answered must not end them in ``error``."""
    ctl, _, _, _ = make([TransportError("timeout", "t")])
    call = ctl.submit(get(LIST + "a"))
    ctl.run()
    assert call.done and call.attempts == 2
    assert call.error is None and call.response is not None and call.response.status == 200


def test_no_retry_for_404() -> None:
    ctl, transport, _, records = make([HttpResponse(404)])
    call = ctl.submit(post(LIST + "a"))
    ctl.run()
    assert call.done and call.attempts == 1 and call.response.status == 404
    assert [r.outcome for r in records] == ["http_error"]


def parse_json(request, response):  # type: ignore[no-untyped-def]
    """An ``accept`` check as the client's parsers behave: the value, or UnusableAnswer."""
    import json

    try:
        return json.loads(response.body)
    except ValueError:
        error = UnusableAnswer("cut")
        error.reason = "not JSON (truncated)"
        raise error from None


TRUNCATED = HttpResponse(200, {}, b'{"price": "1')


def test_a_malformed_answer_to_a_read_is_retried_like_a_5xx() -> None:
    ctl, transport, clock, records = make([TRUNCATED], backoff_base=0.5, rng=random.Random(3))
    call = ctl.submit(get(LIST + "a"), Priority.HIGH, accept=parse_json)
    ctl.run()
    assert call.done and call.accepted and call.value == {} and call.attempts == 2
    assert clock.sleeps == pytest.approx([0.5 * (0.5 + 0.5 * random.Random(3).random())])
    assert [(r.outcome, r.status, r.error) for r in records] == [
        ("retry", 200, "malformed answer: not JSON (truncated)"), ("ok", 200, None)]
    assert [r.priority for r in records] == [Priority.HIGH] * 2
    assert ctl.execute(get(LIST + "b"), accept=parse_json).status == 200


def test_a_read_malformed_on_every_attempt_ends_with_its_last_answer_unaccepted() -> None:
    ctl, transport, _, records = make([TRUNCATED] * 3, max_attempts=3)
    call = ctl.submit(get(LIST + "a"), accept=parse_json)
    ctl.run()
    assert call.done and not call.accepted and call.error is None
    assert call.response is TRUNCATED and len(transport.sent) == 3
    assert [r.outcome for r in records] == ["retry", "retry", "malformed"]
    assert all(b'"price"' not in (r.error or "").encode() for r in records)  # never the body


def test_the_check_sees_only_2xx_answers_and_never_a_write() -> None:
    seen: list[int] = []

    def check(request, response):  # type: ignore[no-untyped-def]
        seen.append(response.status)
        return "fine"

    ctl, _, _, records = make([HttpResponse(503), HttpResponse(404)])
    call = ctl.submit(get(LIST + "a"), accept=check)
    ctl.run()
    assert seen == [] and not call.accepted and call.response.status == 404
    with pytest.raises(ValueError, match="idempotent"):
        ctl.submit(post(LIST + "a"), accept=check)


# -- records and plumbing ---------------------------------------------------------------------
def test_attempt_record_fields() -> None:
    ctl, _, clock, records = make(latency=0.04)
    ctl.submit(get(COMP + "a"), Priority.HIGH)
    ctl.submit(get(COMP + "b"), Priority.HIGH)
    ctl.run()
    first, second = records
    assert first.buckets == ("global", "competitors") and first.route == "competitors"
    assert first.priority is Priority.HIGH and first.attempt == 1 and first.call_id == 1
    assert first.sent_wall == pytest.approx(1_800_000_000.0)
    assert first.latency_ms == pytest.approx(40.0) and first.queue_wait_ms == 0.0
    assert second.queue_wait_ms == pytest.approx(40.0)  # behind the first, one at a time
    assert (second.status, second.outcome, second.error) == (200, "ok", None)


def test_queued_counts_waiting_requests() -> None:
    ctl, _, _, _ = make([HttpResponse(500)])
    ctl.submit(get(LIST + "a"))
    ctl.submit(get(LIST + "b"), 3)  # plain ints are accepted as priorities
    assert ctl.queued() == 2
    ctl.run(until=lambda: ctl.queued() < 2)
    ctl.run()
    assert ctl.queued() == 0


def test_unknown_bucket_in_routes_is_a_config_error() -> None:
    clock = RecordingClock()
    routes = RouteMap.from_config([("GET", "/x", ["nope"])])
    with pytest.raises(ConfigError, match="nope"):
        TrafficController(MemoryLedger(DEFAULT_LIMITS, clock.monotonic), routes, FakeTransport(clock),
                          clock=clock)


@pytest.mark.parametrize(("value", "expected"), [
    ("5", 5.0), ("0.25", 0.25), (" 12 ", 12.0), ("-3", None), ("nan", None), ("soon", None),
    (None, None), ("", None), ("Thu, 01 Jan 1970 00:00:10 GMT", 5.0),
    ("Thu, 01 Jan 1970 00:00:01 GMT", 0.0)])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, now_wall=5.0) == expected


def test_call_reservation_is_only_the_one_made_for_it() -> None:
    ctl, _, _, _ = make(limits=RES_LIMITS)
    dip = ctl.submit(post(LIST + "dip"), reserve_exit=True)
    ctl.run()
    exit_call = ctl.submit(post(LIST + "exit"), Priority.CRITICAL, reservation=dip.reservation)
    ctl.run()
    assert dip.reservation is not None and exit_call.reservation is None


def test_cancel_all_drops_work_and_releases_reservations() -> None:
    ctl, transport, _, _ = make([HttpResponse(200), HttpResponse(503)], limits=RES_LIMITS)
    done: list[Call] = []
    dip = ctl.submit(post(LIST + "dip"), reserve_exit=True)
    ctl.run(until=lambda: dip.done)
    ctl.submit(get(LIST + "retried"))  # 503: waits for a backoff retry
    ctl.run(until=lambda: ctl.queued() == 1 and len(transport.sent) == 2)
    ctl.submit(get(COMP + "a"), on_done=done.append)
    ctl.call_later(1.0, lambda: done.append("timer"))  # type: ignore[arg-type]
    assert claims(ctl, "listing_writes") == 1
    assert ctl.cancel_all() == 2
    assert ctl.queued() == 0 and claims(ctl, "listing_writes") == 0
    assert not dip.reservation.active
    ctl.run()
    assert done == [] and len(transport.sent) == 2
    assert ctl.execute(get(LIST + "after")).status == 200  # the controller is still usable


# -- the ledger's other tenants --------------------------------------------------------------
def test_two_controllers_on_one_ledger_share_the_slots_and_the_pauses() -> None:
    clock = RecordingClock()
    ledger = MemoryLedger(DEFAULT_LIMITS, clock.monotonic)
    first_transport = FakeTransport(clock, [r429("4")])
    first = TrafficController(ledger, None, first_transport, clock=clock)
    second_transport = FakeTransport(clock)
    second = TrafficController(ledger, None, second_transport, clock=clock)
    first.submit(get(COMP + "a"))
    first.run(until=lambda: len(first_transport.sent) == 1)  # the 429 is in
    # The pause is the ledger's: the other controller waits for it too.
    second.execute(get(LIST + "b"))
    assert second_transport.times() == pytest.approx([4.0])
    first.run()  # the retry of a, at 4
    first.execute(get(COMP + "d"))
    # first holds both competitors slots now: second waits a window for one.
    second.execute(get(COMP + "c"))
    assert second_transport.times() == pytest.approx([4.0, 4.0 + SPAN])


def test_an_unanswered_request_holds_its_slot_for_the_in_flight_bound() -> None:
    """Found by an audit: a server that counts a request after the client gave up on it (it sat
    in a queue there) met a retry sent a window after the give-up: 3 in a window of 2. A
    request with no answer keeps its slot as if its process had died with it on the wire."""
    ctl, transport, clock, _ = make(limits={"competitors": LimitSpec(1, 1.0)}, backoff_base=0.01)
    calls = iter([TransportError("timeout", "read timed out")])

    def slow(request):  # type: ignore[no-untyped-def]
        clock.advance(5.0)  # given up after 5 s
        raise next(calls)

    transport.answers.append(slow)
    ctl.execute(get(COMP + "a"))
    # MemoryLedger's default in_flight_bound is 60 s.
    assert transport.times() == pytest.approx([0.0, 60.0 + SPAN])


@pytest.mark.parametrize("kind", ["refused", "unresolved"])
def test_a_request_that_never_connected_is_not_retried_and_frees_its_slot_at_once(kind: str) -> None:
    """Issue 13, point 5: the host is down, so asking again only waits; and the server never
    saw the request, so its slot is held one window from the failure, not the no-answer bound."""
    ctl, transport, clock, records = make([TransportError(kind, "connection refused")],
                                          limits={"competitors": LimitSpec(1, 1.0)})
    call = ctl.submit(get(COMP + "a"))
    ctl.run()
    assert call.done and call.attempts == 1 and call.response is None
    assert call.error is not None and call.error.kind == kind and call.error.unreachable
    assert [(r.outcome, r.error) for r in records] == [("connection_error", "connection refused")]
    assert clock.sleeps == []  # no backoff
    ctl.execute(get(COMP + "b"))
    assert transport.times() == pytest.approx([0.0, SPAN])  # not 60 s + a window


def test_a_call_that_never_connected_on_its_last_attempt_ends_with_that_error() -> None:
    """An earlier 503 does not hide that the host is now down: the run must stop."""
    ctl, transport, _, _ = make([HttpResponse(503), TransportError("refused", "connection refused")])
    with pytest.raises(TransportError) as caught:
        ctl.execute(get(LIST + "a"))
    assert caught.value.kind == "refused" and len(transport.sent) == 2


def test_a_cancelled_request_that_never_connected_frees_its_slot_too() -> None:
    clock = RecordingClock()
    ledger = MemoryLedger({**DEFAULT_LIMITS, "competitors": LimitSpec(1, 1.0)}, clock.monotonic)
    wire = TogetherWire(clock)
    ctl = TrafficController(ledger, None, FakeTransport(clock), clock=clock, wire=wire)
    ctl.submit(get(COMP + "a"))
    ctl.run(until=lambda: ctl.in_flight() == 1)
    ctl.cancel_all()
    wire.started = []
    wire.ready = [(1, TransportError("refused", "connection refused"), 0.0)]  # type: ignore[list-item]
    ctl.drain()
    assert ctl.buckets["competitors"].time_to_send(1) == pytest.approx(SPAN)
