"""Several requests on the wire: they overlap, answers come back in time order, priorities
decide who gets a free place on the wire, the limits hold whatever the delays, and a
cancelled request on the wire is still logged and settled."""

from __future__ import annotations

import heapq
import random
import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmctl.traffic.admission import MIN_GUARD
from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec
from bmctl.traffic.clock import SimClock, SystemClock
from bmctl.traffic.controller import AttemptRecord, TrafficController
from bmctl.traffic.ledger import MemoryLedger
from bmctl.traffic.queue import Priority
from bmctl.traffic.routes import RouteMap
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError
from bmctl.traffic.wire import ThreadWire

from .fakes import get, max_in_window

LIST = "/ws/listings/"
COMP = "/ws/backbox/v1/competitors/"


class DelayWire:
    """A simulated wire: each request reaches the server after ``up`` and is answered after
    ``up + down`` (drawn per request), or given up at the timeout — the server may still count
    it up to twice the timeout after it left. Records arrivals per path and overlaps."""

    def __init__(self, clock: SimClock, capacity: int, delays: Any, buckets_of: Any = None) -> None:
        self.clock = clock
        self.capacity = capacity
        self.delays = delays  # request -> (up, down)
        self.buckets_of = buckets_of or (lambda request: ["global"])
        self.events: list[tuple[float, int, Any]] = []
        self.seq = 0
        self.done: list[tuple[Any, Any, float]] = []
        self.arrivals: dict[str, list[float]] = {}
        self.sent: list[tuple[float, str]] = []
        self.on_wire = 0
        self.most_on_wire = 0

    def _at(self, when: float, item: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (when, self.seq, item))

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        now = self.clock.monotonic()
        self.sent.append((now, request.path))
        self.on_wire += 1
        self.most_on_wire = max(self.most_on_wire, self.on_wire)
        up, down = self.delays(request)
        if up <= 2 * timeout:
            self._at(now + up, ("arrive", request))
        if up + down > timeout:
            self._at(now + timeout, ("done", token, TransportError("timeout", "no answer in time")))
        else:
            self._at(now + up + down, ("done", token, HttpResponse(200)))
        return now

    def _play(self, until: float) -> bool:
        finished = False
        while self.events and self.events[0][0] <= until:
            when, _, item = heapq.heappop(self.events)
            self.clock.advance(when - self.clock.monotonic())
            if item[0] == "arrive":
                for name in self.buckets_of(item[1]):
                    self.arrivals.setdefault(name, []).append(when)
            else:
                self.done.append((item[1], item[2], when))
                self.on_wire -= 1
                finished = True
        return finished

    def poll(self) -> list[Any]:
        self._play(self.clock.monotonic())
        done, self.done = self.done, []
        return done

    def wait(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            if self._play(self.events[0][0]):
                return
        if until != float("inf") and until > self.clock.monotonic():
            self.clock.sleep(until - self.clock.monotonic())

    def close(self) -> None:
        pass


def controller(wire: DelayWire, clock: SimClock, limits: dict[str, LimitSpec] | None = None,
               **kw: Any) -> tuple[TrafficController, list[AttemptRecord]]:
    specs = dict(DEFAULT_LIMITS)
    specs.update(limits or {})
    records: list[AttemptRecord] = []
    ctl = TrafficController(MemoryLedger(specs, clock.monotonic), None, None, clock=clock,  # type: ignore[arg-type]
                            wire=wire, on_attempt=records.append, rng=random.Random(1), **kw)
    return ctl, records


def test_requests_overlap_on_the_wire_and_answers_come_back_in_time_order() -> None:
    clock = SimClock()
    delays = {LIST + "slow": (0.5, 0.5), LIST + "fast": (0.05, 0.05)}
    wire = DelayWire(clock, 4, lambda r: delays.get(r.path, (0.15, 0.15)))
    ctl, records = controller(wire, clock)
    order: list[str] = []
    for name in ("slow", "a", "fast", "b"):
        ctl.submit(get(LIST + name), on_done=lambda call: order.append(call.request.path))
    ctl.run()
    assert [t for t, _ in wire.sent] == [0.0] * 4  # all four left at once
    assert wire.most_on_wire == 4
    assert order == [LIST + "fast", LIST + "a", LIST + "b", LIST + "slow"]
    assert clock.monotonic() == pytest.approx(1.0)  # the slowest answer, not the sum (1.7 s)
    assert [r.latency_ms for r in records if r.request.path == LIST + "slow"] == [pytest.approx(1000.0)]


def test_max_in_flight_caps_the_wire() -> None:
    clock = SimClock()
    wire = DelayWire(clock, 8, lambda r: (0.1, 0.1))
    ctl, _ = controller(wire, clock, max_in_flight=3)
    for i in range(9):
        ctl.submit(get(LIST + str(i)))
    ctl.run()
    assert wire.most_on_wire == 3
    assert clock.monotonic() == pytest.approx(0.6)  # three rounds of 0.2 s


def test_a_free_place_on_the_wire_goes_to_the_best_priority() -> None:
    """The wire is full of slow LOW page reads; a CRITICAL write queued meanwhile takes the
    first place that frees, before the LOW reads queued before it."""
    clock = SimClock()
    wire = DelayWire(clock, 2, lambda r: (0.5, 0.5) if "page" in r.path else (0.01, 0.01))
    ctl, _ = controller(wire, clock, max_in_flight=2)
    for i in range(6):
        ctl.submit(get(LIST + f"page{i}"), Priority.LOW)
    ctl.call_at(0.1, lambda: ctl.submit(get(LIST + "exit"), Priority.CRITICAL))
    ctl.run()
    paths = [path for _, path in wire.sent]
    assert paths.index(LIST + "exit") == 2  # right after the two on the wire
    assert dict((path, t) for t, path in wire.sent)[LIST + "exit"] == pytest.approx(1.0)


def test_a_cancelled_request_on_the_wire_is_still_logged_and_settled() -> None:
    clock = SimClock()
    wire = DelayWire(clock, 4, lambda r: (0.2, 0.2))
    ctl, records = controller(wire, clock, limits={"competitors": LimitSpec(1, 1.0)})
    done: list[Any] = []
    ctl.submit(get(COMP + "a"), on_done=done.append)
    ctl.run(until=lambda: ctl.in_flight() == 1)
    ctl.cancel_all()  # Ctrl-C while it is on the wire
    ctl.drain()
    assert done == [] and len(records) == 1 and records[0].status == 200
    # Its slot was settled at its answer (0.4 s): the next read waits a window past that.
    ctl.execute(get(COMP + "b"))
    assert wire.sent[-1][0] == pytest.approx(0.4 + 1.0 + MIN_GUARD)


ROUTES = RouteMap.from_config([("GET", r"/b", ["x"], "b"), ("GET", r"/a", [], "a")])


@settings(max_examples=60, deadline=None)
@given(limit=st.integers(1, 5), window=st.sampled_from([0.3, 1.0, 2.5]), capacity=st.integers(1, 8),
       seed=st.integers(0, 10**6), spread=st.sampled_from([0.0, 0.05, 0.5, 3.0]),
       pattern=st.lists(st.tuples(st.floats(0.0, 10.0, allow_nan=False), st.sampled_from(["/a", "/b"]),
                                  st.sampled_from(list(Priority))), min_size=1, max_size=40))
def test_the_limits_hold_with_many_requests_on_the_wire(limit, window, capacity, seed, spread, pattern) -> None:
    clock = SimClock()
    rng = random.Random(seed)
    wire = DelayWire(clock, capacity, lambda r: (rng.uniform(0, spread), rng.uniform(0, spread)),
                     buckets_of=lambda r: ["global", "x"] if r.path == "/b" else ["global"])
    specs = {"global": LimitSpec(limit + 2, window), "x": LimitSpec(limit, window)}
    ctl = TrafficController(MemoryLedger(specs, clock.monotonic, in_flight_bound=4.0), ROUTES, None,  # type: ignore[arg-type]
                            clock=clock, wire=wire, timeout=2.0, max_attempts=2, rng=random.Random(seed))
    for t, path, prio in pattern:
        ctl.call_at(t, lambda path=path, prio=prio: ctl.submit(get(path), prio))
    ctl.run()
    assert ctl.queued() == 0 and ctl.in_flight() == 0
    for name, spec in specs.items():
        assert max_in_window(wire.arrivals.get(name, []), spec.window, closed=True) <= spec.limit


def test_a_thread_wire_keeps_several_requests_on_the_wire() -> None:
    """Real threads, each with its own transport: four 0.2 s requests take 0.2 s, not 0.8 s."""
    lock = threading.Lock()
    on_wire = [0, 0]  # now, most

    class Slow:
        def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
            with lock:
                on_wire[0] += 1
                on_wire[1] = max(on_wire[1], on_wire[0])
            time.sleep(0.2)
            with lock:
                on_wire[0] -= 1
            return HttpResponse(200)

    clock = SystemClock()
    wire = ThreadWire(Slow, 4, clock.monotonic)
    ctl = TrafficController(MemoryLedger(DEFAULT_LIMITS, clock.monotonic), None, None,  # type: ignore[arg-type]
                            clock=clock, wire=wire)
    started = time.monotonic()
    calls = [ctl.submit(get(LIST + str(i))) for i in range(4)]
    ctl.run()
    elapsed = time.monotonic() - started
    ctl.close()
    assert all(c.response is not None and c.response.status == 200 for c in calls)
    assert on_wire[1] == 4 and elapsed < 0.6


def test_a_thread_wire_opens_workers_only_as_the_work_needs_them() -> None:
    """A default of 32 places costs nothing when a run keeps one request on the wire: each
    worker brings its own connections, so one at a time makes one worker."""
    made: list[object] = []

    class Quick:
        def __init__(self) -> None:
            made.append(self)

        def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
            return HttpResponse(200)

    clock = SystemClock()
    wire = ThreadWire(Quick, 32, clock.monotonic)
    ctl = TrafficController(MemoryLedger(DEFAULT_LIMITS, clock.monotonic), None, None,  # type: ignore[arg-type]
                            clock=clock, wire=wire)
    for i in range(5):  # one after the other: the next is submitted once the last is answered
        call = ctl.submit(get(LIST + str(i)))
        ctl.run()
        assert call.response is not None and call.response.status == 200
    assert len(made) == 1
    calls = [ctl.submit(get(LIST + str(i))) for i in range(3)]
    ctl.run()
    ctl.close()
    assert all(c.response is not None for c in calls)
    assert 1 < len(made) <= 3


def test_a_stop_signal_inside_a_blocking_send_ends_that_flight_as_unanswered() -> None:
    """With one request at a time the send blocks the loop's thread; Ctrl-C/SIGTERM/SIGHUP
    there must not leave the flight on the wire forever (the restore would wait for it): it
    comes back as a request that got no answer (its slots stay held as such)."""
    from bmctl.traffic.wire import SyncWire

    class Interrupted:
        def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
            raise KeyboardInterrupt

    clock = SimClock()
    wire = SyncWire(Interrupted(), clock.monotonic)
    with pytest.raises(KeyboardInterrupt):
        wire.start(7, get(LIST + "a"), 30.0)
    ((token, result, _),) = wire.poll()
    assert token == 7 and isinstance(result, TransportError) and result.kind == "connection"
