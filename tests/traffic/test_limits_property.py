"""The contract's core promise as properties: whatever the network does, no window at the server
ever counts more than a bucket's limit of arrivals — and the ledger still sends near the limit.

The first properties drive the ledger directly in a discrete-event simulation: several
processes share one ledger, each request's way to the server and back takes a random time (any
spread, up to several seconds, so arrivals are reordered), some are given up on timeout (and
may or may not have arrived), some processes die with requests on the wire and claims held.
The server counts arrivals in *closed* windows (the strictest reading). The last ones run the
real controller over a transport with random delays."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bmctl.traffic.admission import hold_span
from bmctl.traffic.buckets import DEFAULT_LIMITS, Claim, LimitSpec
from bmctl.traffic.clock import SimClock
from bmctl.traffic.controller import TrafficController
from bmctl.traffic.ledger import Ledger, MemoryLedger
from bmctl.traffic.queue import Priority
from bmctl.traffic.routes import DEFAULT_ROUTES, RouteMap
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError

from .fakes import FakeTransport, RecordingClock, get, max_in_window, post

INF = float("inf")


@dataclass
class Req:
    at: float  # when the process wants to send it
    uses_x: bool
    reserve: bool  # claims a slot for an exit request sent `exit_after` after its answer
    exit_after: float
    up: float  # one-way delay to the server
    down: float  # and back


@dataclass
class Proc:
    requests: list[Req]
    dies_at: float = INF
    ledger: Ledger | None = None
    dead: bool = False
    claims: list[tuple[Claim, ...]] = field(default_factory=list)


@st.composite
def spec(draw: st.DrawFn) -> LimitSpec:
    return LimitSpec(draw(st.integers(1, 6)), draw(st.sampled_from([0.05, 0.3, 1.0, 2.5, 5.0])))


def delays(draw: st.DrawFn) -> float:
    # Any spread: mostly short, sometimes seconds (reorders arrivals), sometimes exactly 0.
    kind = draw(st.sampled_from(["zero", "short", "long"]))
    if kind == "zero":
        return 0.0
    return draw(st.floats(0.0, 0.2 if kind == "short" else 6.0, allow_nan=False))


@st.composite
def request(draw: st.DrawFn) -> Req:
    return Req(at=draw(st.floats(0.0, 15.0, allow_nan=False)), uses_x=draw(st.booleans()),
               reserve=draw(st.booleans()), exit_after=draw(st.floats(0.0, 4.0, allow_nan=False)),
               up=delays(draw), down=delays(draw))


@st.composite
def processes(draw: st.DrawFn) -> list[Proc]:
    n = draw(st.integers(1, 4))
    return [Proc(sorted(draw(st.lists(request(), min_size=1, max_size=14)), key=lambda r: r.at),
                 dies_at=draw(st.one_of(st.just(INF), st.floats(0.0, 20.0, allow_nan=False))))
            for _ in range(n)]


def simulate(procs: list[Proc], specs: dict[str, LimitSpec], timeout: float,
             make_ledger: Callable[[SimClock], Ledger]) -> tuple[dict[str, list[float]], int]:
    """Play the processes against ledgers from ``make_ledger``; returns the server's arrival
    times per bucket and the number of requests sent."""
    clock = SimClock()
    for proc in procs:
        proc.ledger = make_ledger(clock)
    arrivals: dict[str, list[float]] = {name: [] for name in specs}
    events: list[tuple[float, int, str, Any]] = []
    seq = 0

    def at(when: float, kind: str, data: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (when, seq, kind, data))

    for index, proc in enumerate(procs):
        for req in proc.requests:
            at(req.at, "try", (index, req, None))
        if proc.dies_at < INF:
            at(proc.dies_at, "die", index)
    sent = 0
    while events:
        when, _, kind, data = heapq.heappop(events)
        clock.advance(when - clock.monotonic())
        if kind == "die":
            procs[data].dead = True  # in-flight requests never settle; claims are never released
            continue
        if kind == "arrive":
            for name in data:
                arrivals[name].append(when)
            continue
        index, req, claim = data
        proc = procs[index]
        if proc.dead:
            continue
        ledger = proc.ledger
        assert ledger is not None
        if kind == "settle":
            for bucket, key in req:
                bucket.settle(key, when)
            ledger.flush()
            continue
        if kind == "release":
            for c in claim:
                c.bucket.release_reservation(c)
            ledger.flush()
            continue
        # kind == "try": admit now or come back when the ledger says
        names = ["global", "x"] if req.uses_x else ["global"]
        buckets = [ledger.buckets[n] for n in names]
        own = {c.bucket.name: c for c in claim} if claim else {}
        need = 2 if req.reserve and claim is None else 1
        with ledger.transaction():
            ready = max(b.ready_at(need, own.get(b.name), when) for b in buckets)
            if ready <= when + 1e-9:
                slots = [(b, b.spend_reserved(own[b.name]) if b.name in own else b.spend()) for b in buckets]
                new_claims = tuple(b.reserve() for b in buckets) if need == 2 else None
        if ready > when + 1e-9:
            if ready < INF:
                at(ready, "try", (index, req, claim))
            continue
        sent += 1
        bound = 2 * timeout  # the ledger's in_flight_bound: the latest an unanswered request counts
        answered = when + req.up + req.down
        if answered <= when + timeout:
            at(when + req.up, "arrive", names)
            at(answered, "settle", (index, slots, None))
        elif req.up <= bound:  # given up on at `timeout`, yet counted later by the server
            at(when + req.up, "arrive", names)
        if new_claims is not None:
            follow = Req(at=0, uses_x=req.uses_x, reserve=False, exit_after=0, up=req.down, down=req.up)
            exit_at = min(answered, when + timeout) + req.exit_after
            if req.exit_after > 3.5:  # sometimes the exit is not needed: the claim is released
                at(exit_at, "release", (index, None, new_claims))
            else:
                at(exit_at, "try", (index, follow, new_claims))
    for proc in procs:
        if proc.ledger is not None:
            proc.ledger.close()
    return arrivals, sent


def assert_within_limits(arrivals: dict[str, list[float]], specs: dict[str, LimitSpec]) -> None:
    for name, s in specs.items():
        assert max_in_window(arrivals[name], s.window, closed=True) <= s.limit, (name, s, sorted(arrivals[name]))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(g=spec(), x=spec(), procs=processes(), timeout=st.sampled_from([0.5, 2.0, 5.0]),
       claim_ttl=st.sampled_from([1.0, 30.0]))
def test_no_server_window_ever_counts_more_than_the_limit(g, x, procs, timeout, claim_ttl) -> None:
    specs = {"global": g, "x": x}
    shared: list[MemoryLedger] = []

    def make_ledger(clock: SimClock) -> Ledger:  # one store for every process
        if not shared:
            shared.append(MemoryLedger(specs, clock.monotonic, in_flight_bound=2 * timeout,
                                       claim_ttl=claim_ttl))
        return shared[0]

    arrivals, sent = simulate(procs, specs, timeout, make_ledger)
    assert_within_limits(arrivals, specs)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(g=spec(), x=spec(), procs=processes(), timeout=st.sampled_from([0.5, 5.0]))
def test_no_server_window_ever_counts_more_than_the_limit_with_the_sqlite_ledger(
        tmp_path_factory: pytest.TempPathFactory, g, x, procs, timeout) -> None:
    """Each process with its own connection to one database: the cross-process ledger."""
    from bmctl.store.db import open_database
    from bmctl.store.ledger import SqliteLedger

    specs = {"global": g, "x": x}
    path = tmp_path_factory.mktemp("ledger") / "l.db"
    open_database(path).conn.close()
    counter = iter(range(10**6))

    def make_ledger(clock: SimClock) -> Ledger:
        n = next(counter)
        return SqliteLedger(path, specs, clock, run_id=f"run{n}", pid=10**7 + n, poll_interval=None,
                            in_flight_bound=2 * timeout, claim_ttl=30.0)

    arrivals, sent = simulate(procs, specs, timeout, make_ledger)
    assert_within_limits(arrivals, specs)


# --- the real controller over a network with random delays ------------------------------------

ROUTES = RouteMap.from_config([("GET", r"/b", ["x"], "b"), ("GET", r"/a", [], "a")])


class RandomDelayTransport:
    """Each request reaches the server after a random delay and its answer comes back after
    another; answers slower than the timeout are given up (a TransportError), though the server
    may count the request after that, up to twice the timeout after the send."""

    def __init__(self, clock: SimClock, rng: random.Random, spread: float,
                 buckets_of: Callable[[HttpRequest], list[str]]) -> None:
        self.clock = clock
        self.rng = rng
        self.spread = spread
        self.buckets_of = buckets_of
        self.arrivals: dict[str, list[float]] = {}

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        up = self.rng.uniform(0, self.spread)
        down = self.rng.uniform(0, self.spread)
        if up <= 2 * timeout:  # unanswered, it may still be counted up to in_flight_bound later
            for name in self.buckets_of(request):
                self.arrivals.setdefault(name, []).append(self.clock.monotonic() + up)
        if up + down > timeout:
            self.clock.advance(timeout)
            raise TransportError("timeout", "no answer in time")
        self.clock.advance(up + down)
        return HttpResponse(200)


@settings(max_examples=60, deadline=None)
@given(g=spec(), x=spec(), seed=st.integers(0, 10**6), spread=st.sampled_from([0.0, 0.05, 0.4, 3.0]),
       pattern=st.lists(st.tuples(st.floats(0.0, 20.0, allow_nan=False), st.sampled_from(["/a", "/b"]),
                                  st.sampled_from(list(Priority))), min_size=1, max_size=50))
def test_the_controller_keeps_the_limits_whatever_the_delays(g, x, seed, spread, pattern) -> None:
    specs = {"global": g, "x": x}
    clock = RecordingClock()
    transport = RandomDelayTransport(clock, random.Random(seed), spread,
                                     lambda r: ["global", "x"] if r.path == "/b" else ["global"])
    ctl = TrafficController(MemoryLedger(specs, clock.monotonic, in_flight_bound=4.0), ROUTES, transport,
                            clock=clock, timeout=2.0, max_attempts=2, rng=random.Random(seed))
    for t, path, prio in pattern:
        ctl.call_at(t, lambda path=path, prio=prio: ctl.submit(get(path), prio))
    ctl.run()
    assert ctl.queued() == 0
    for name, s in specs.items():
        assert max_in_window(transport.arrivals.get(name, []), s.window, closed=True) <= s.limit


def test_saturated_buckets_run_at_the_limit_when_answers_are_instant() -> None:
    """Ten windows of back-to-back traffic per default bucket: at least 99.8 % of the limit
    (the clock guard costs 0.1 % on a 1 s window), and never over it."""
    requests = {
        "global": get("/ws/listings/abc"),
        "catalog": get("/ws/catalog/abc"),
        "competitors": get("/ws/backbox/v1/competitors/abc"),
        "listing_writes": post("/ws/listings/abc"),
    }
    for name, request in requests.items():
        spec_ = DEFAULT_LIMITS[name]
        clock = RecordingClock()
        transport = FakeTransport(clock)
        ctl = TrafficController(MemoryLedger(DEFAULT_LIMITS, clock.monotonic), DEFAULT_ROUTES, transport,
                                clock=clock)
        n = 10 * spec_.limit + 1
        for _ in range(n):
            ctl.submit(request, Priority.LOW)
        ctl.run()
        times = transport.times()
        assert times[-1] - times[0] == pytest.approx(10 * hold_span(spec_.window)), name
        assert 10 * spec_.window / (times[-1] - times[0]) >= 0.998
        assert max_in_window(times, spec_.window, closed=True) <= spec_.limit


def test_a_wall_clock_step_changes_nothing(tmp_path: Path) -> None:
    """NTP steps the wall clock by an hour either way between admissions: the SQLite ledger
    reads the monotonic clock, so what it admits and when is exactly what it would be without."""
    from bmctl.store.db import open_database
    from bmctl.store.ledger import SqliteLedger

    def run(steps: list[float]) -> list[float]:
        path = tmp_path / f"step{len(steps)}{sum(steps)}.db"
        open_database(path).conn.close()
        clock = RecordingClock()
        ledger = SqliteLedger(path, DEFAULT_LIMITS, clock, run_id="r", poll_interval=None)
        transport = FakeTransport(clock, latency=0.1)
        ctl = TrafficController(ledger, DEFAULT_ROUTES, transport, clock=clock)
        for step in steps:
            for _ in range(3):
                ctl.execute(get("/ws/backbox/v1/competitors/abc"))
            clock.step_wall(step)
        ledger.close()
        return transport.times()

    assert run([0.0, 0.0, 0.0]) == run([3600.0, -7200.0, 5.0])
