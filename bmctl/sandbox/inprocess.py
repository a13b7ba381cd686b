"""A Transport that calls the sandbox app directly, in simulated time: no threads, no sockets."""

from __future__ import annotations

import heapq
from typing import Any

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

    def wire(self, workers: int) -> "SimWire":
        """A wire carrying up to ``workers`` requests at once over the same app and clock."""
        return SimWire(self.app, self.clock, self.latency, workers)

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


class SimWire:
    """Several requests on the wire at once, in simulated time: each reaches the marketplace
    half its latency after it left and is answered at its full latency (or times out), and
    everything happens in time order as the controller waits (see ``bmctl.traffic.wire``)."""

    def __init__(self, app: SandboxApp, clock: SimClock, latency: float = 0.0, workers: int = 8) -> None:
        self.app = app
        self.clock = clock
        self.latency = latency
        self.capacity = workers
        self.sent = 0
        self._events: list[tuple[float, int, str, Any]] = []
        self._seq = 0
        self._done: list[tuple[Any, HttpResponse | TransportError, float]] = []

    def _at(self, when: float, kind: str, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (when, self._seq, kind, payload))

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        now = self.clock.monotonic()
        self.sent += 1
        decision = self.app.decide(request)
        total = self.latency + decision.latency
        if decision.fault == "timeout":
            self._at(now + timeout, "done", (token, TransportError(
                "timeout", f"sandbox: no answer within {timeout:g} s (injected fault)")))
            return now
        first = min(total / 2, timeout)
        if decision.fault == "drop":
            self._at(now + first, "done", (token, TransportError(
                "connection", "sandbox: connection closed without an answer (injected fault)")))
            return now
        self._at(now + first, "arrive", (token, request, decision, now, total, timeout))
        return now

    def _run_due(self, until: float) -> bool:
        """Play the events due by ``until`` in time order; True once a request finished."""
        finished = False
        while self._events and self._events[0][0] <= until:
            when, _, kind, payload = heapq.heappop(self._events)
            self.clock.advance(when - self.clock.monotonic())
            if kind == "arrive":
                token, request, decision, sent, total, timeout = payload
                response = self.app.respond(request, decision)
                if total > timeout:  # served, but the answer is lost (a write may have landed)
                    self._at(sent + timeout, "done", (token, TransportError(
                        "timeout", f"sandbox: no answer within {timeout:g} s")))
                else:
                    self._at(sent + total, "done", (token, response))
            else:
                token, result = payload
                self._done.append((token, result, when))
                finished = True
        return finished

    def poll(self) -> list[tuple[Any, HttpResponse | TransportError, float]]:
        self._run_due(self.clock.monotonic())
        done, self._done = self._done, []
        return done

    def wait(self, until: float) -> None:
        while self._events and self._events[0][0] <= until:
            if self._run_due(self._events[0][0]):
                return
        if until != float("inf") and until > self.clock.monotonic():
            self.clock.sleep(until - self.clock.monotonic())

    def close(self) -> None:
        return None
