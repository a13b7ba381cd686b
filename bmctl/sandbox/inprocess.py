"""A Transport that calls the sandbox app directly, in simulated time: no threads, no sockets."""

from __future__ import annotations

from bmctl.sandbox.app import SandboxApp
from bmctl.traffic.clock import SimClock
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError


class InProcessTransport:
    """``Transport.send`` over a :class:`SandboxApp`; latency advances the SimClock.

    Half of the latency passes before the marketplace sees the request and half after, like a
    network round trip (so jitter spreads arrival times the way a real network does). An answer
    slower than ``timeout`` is lost after the marketplace served it (a write may have landed)."""

    def __init__(self, app: SandboxApp, clock: SimClock, latency: float = 0.0) -> None:
        self.app = app
        self.clock = clock
        self.latency = latency
        self.sent = 0

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.sent += 1
        decision = self.app.decide(request)
        total = self.latency + decision.latency
        if decision.fault == "timeout":
            self.clock.advance(timeout)
            raise TransportError("timeout", f"sandbox: no answer within {timeout:g} s (injected fault)")
        first = min(total / 2, timeout)
        self.clock.advance(first)
        if decision.fault == "drop":
            raise TransportError("connection", "sandbox: connection closed without an answer (injected fault)")
        response = self.app.respond(request, decision)
        if total > timeout:
            self.clock.advance(timeout - first)
            raise TransportError("timeout", f"sandbox: no answer within {timeout:g} s")
        self.clock.advance(total - first)
        return response
