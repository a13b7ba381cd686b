"""The in-process transport: simulated latency, timeouts, and the TrafficController on top."""

from __future__ import annotations

import random

import pytest

from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.inprocess import InProcessTransport
from bmctl.traffic.transport import TransportError
from tests.sandbox.helpers import LID, body, market, req, spec

ONE = f"/ws/listings/{LID}"


def test_latency_advances_sim_clock_half_before_half_after() -> None:
    mp, clock = market(spec(), settle=0)
    seen = []
    app = SandboxApp(mp, faults=Faults(latency=100), limits=None)
    original = app.respond
    app.respond = lambda r, d: (seen.append(clock.monotonic()), original(r, d))[1]  # type: ignore
    transport = InProcessTransport(app, clock, latency=0.02)
    r = transport.send(req("GET", ONE), timeout=5.0)
    assert r.status == 200 and body(r)["id"] == LID
    assert seen == [pytest.approx(0.06)] and clock.monotonic() == pytest.approx(0.12)
    assert clock.slept == 0  # latency is not sleep


def test_slow_answer_times_out_after_the_write_landed() -> None:
    mp, clock = market(spec(), settle=0)
    transport = InProcessTransport(SandboxApp(mp, limits=None), clock, latency=3.0)
    with pytest.raises(TransportError) as info:
        transport.send(req("POST", ONE, {"price": "90.00"}), timeout=2.0)
    assert info.value.kind == "timeout" and clock.monotonic() == pytest.approx(2.0)
    assert mp.offer(LID, "fr-fr").price == 90


def test_deterministic_run() -> None:
    def run() -> list[int]:
        mp, clock = market(spec(), settle=0)
        app = SandboxApp(mp, faults=Faults(latency=30, jitter=20, error=0.3), rng=random.Random(8))
        t = InProcessTransport(app, clock)
        return [t.send(req("GET", ONE), 5.0).status for _ in range(100)] + [int(clock.monotonic() * 1e6)]
    assert run() == run()


def test_traffic_controller_never_meets_429_on_the_sandbox() -> None:
    from bmctl.traffic.buckets import DEFAULT_LIMITS
    from bmctl.traffic.controller import TrafficController
    from bmctl.traffic.ledger import MemoryLedger
    from bmctl.traffic.routes import DEFAULT_ROUTES

    mp, clock = market(spec(), settle=0)
    app = SandboxApp(mp, faults=Faults(latency=50, jitter=25), rng=random.Random(4))
    transport = InProcessTransport(app, clock)
    controller = TrafficController(MemoryLedger(DEFAULT_LIMITS, clock.monotonic), DEFAULT_ROUTES,
                                   transport, clock=clock)
    calls = [controller.submit(req("GET", f"/ws/backbox/v1/competitors/{LID}")) for _ in range(40)]
    controller.run()
    statuses = [c.response.status for c in calls]
    assert statuses == [200] * 40
    # 40 reads on 2 slots: 19 reuses of each, each a window plus a round trip after the last.
    assert clock.monotonic() >= 19 * 1.0
