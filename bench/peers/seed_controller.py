"""A MODEL of the seed's own TrafficController, written from its description, not from its code.

This is not bmctl code and not the seed's code: it is what bench/rate.py runs as the row
"model of the seed's controller", built from the one description the issue gives of it:

    a fixed-window bucket refilled whole each interval, its default safety margins of 150/200
    global and 15/20 catalog, polling every 100 ms, 429 retried after 2/4/8 s.

Read literally, that is:

- one fixed-window counter per limit, holding ``capacity`` tokens and refilled *whole* (back to
  ``capacity``, whatever is left) at every boundary ``start + k * window``, the windows aligned
  on the controller's creation; the window is the published one;
- capacities with the safety margins: global 150 (of 200) per 10 s, catalog 15 (of 20) per 10 s;
  the description names no margin for the other limits, so they get the published figure:
  competitors 2 per 1 s, listing_writes 2000 per 3600 s;
- a request spends one token of every limit its route names (bmctl's ``RouteMap.default()``:
  a competitors read spends global and competitors); while any of them is empty the controller
  sleeps 100 ms and looks again (polling, not sleeping until the refill);
- a 429 is retried after 2 s, then 4 s, then 8 s, each retry spending tokens again like any send;
  after the third retry the request is given up (the description does not say the seed reads
  ``Retry-After``; the sandbox sends none anyway);
- one request at a time, like bmctl (the description says nothing of concurrency).
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

from bmctl.traffic.clock import Clock
from bmctl.traffic.routes import RouteMap
from bmctl.traffic.transport import HttpRequest, HttpResponse, Transport, TransportError

#: (capacity per window, window seconds): the margins the description gives, else the limit.
SEED_LIMITS: Mapping[str, tuple[int, float]] = {
    "global": (150, 10.0),
    "catalog": (15, 10.0),
    "competitors": (2, 1.0),
    "listing_writes": (2000, 3600.0),
}
POLL_INTERVAL = 0.1
RETRY_429_AFTER = (2.0, 4.0, 8.0)


class FixedWindowBucket:
    """``capacity`` tokens per fixed window, refilled whole at each window boundary."""

    __slots__ = ("name", "capacity", "window", "tokens", "_window_start")

    def __init__(self, name: str, capacity: int, window: float, now: float) -> None:
        self.name = name
        self.capacity = capacity
        self.window = window
        self.tokens = capacity
        self._window_start = now

    def _refill(self, now: float) -> None:
        if now >= self._window_start + self.window:
            windows = math.floor((now - self._window_start) / self.window)
            self._window_start += windows * self.window
            self.tokens = self.capacity

    def has_token(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= 1

    def take(self) -> None:
        self.tokens -= 1


class SeedTrafficController:
    """Sends one request at a time through fixed-window buckets (see the module docstring)."""

    def __init__(self, routes: RouteMap, transport: Transport, *, clock: Clock,
                 limits: Mapping[str, tuple[int, float]] = SEED_LIMITS, timeout: float = 30.0,
                 on_attempt: Callable[[HttpRequest, float, int | None], None] | None = None) -> None:
        now = clock.monotonic()
        self.buckets = {name: FixedWindowBucket(name, cap, window, now)
                        for name, (cap, window) in limits.items()}
        self.routes = routes
        self.transport = transport
        self.clock = clock
        self.timeout = timeout
        self.on_attempt = on_attempt  # (request, latency seconds, status or None)

    def execute(self, request: HttpRequest,
                stop: Callable[[], bool] = lambda: False) -> HttpResponse | None:
        """Send ``request`` (retrying 429s after 2/4/8 s); the last answer, or ``None`` when it
        got no HTTP answer or ``stop()`` turned true while it waited."""
        buckets = [self.buckets[name] for name in self.routes.lookup(request.method, request.path)]
        clock = self.clock
        retries = 0
        while True:
            while not all(b.has_token(clock.monotonic()) for b in buckets):
                if stop():
                    return None
                clock.sleep(POLL_INTERVAL)
            if stop():
                return None
            for b in buckets:
                b.take()
            t0 = clock.monotonic()
            try:
                response = self.transport.send(request, self.timeout)
            except TransportError:
                if self.on_attempt is not None:
                    self.on_attempt(request, clock.monotonic() - t0, None)
                return None
            if self.on_attempt is not None:
                self.on_attempt(request, clock.monotonic() - t0, response.status)
            if response.status != 429 or retries >= len(RETRY_429_AFTER):
                return response
            clock.sleep(RETRY_429_AFTER[retries])
            retries += 1
