"""Test doubles for the traffic package: a sleep-recording SimClock and a scripted transport."""

from __future__ import annotations

from collections import deque
from typing import Callable, Iterable

from bmctl.traffic.clock import SimClock
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError

Answer = HttpResponse | TransportError | Callable[[HttpRequest], HttpResponse]


class RecordingClock(SimClock):
    """SimClock that remembers every sleep, to assert the loop sleeps exactly to the next event."""

    def __init__(self, start: float = 0.0, wall_start: float = 1_800_000_000.0) -> None:
        super().__init__(start, wall_start)
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        super().sleep(seconds)


class FakeTransport:
    """Answers from a queue of scripted answers (then ``default``); records every send."""

    def __init__(self, clock: SimClock, answers: Iterable[Answer] = (),
                 default: HttpResponse | None = None, latency: float = 0.0) -> None:
        self.clock = clock
        self.answers: deque[Answer] = deque(answers)
        self.default = default or HttpResponse(200, {}, b"{}")
        self.latency = latency
        self.sent: list[tuple[float, float, HttpRequest]] = []  # (monotonic, wall, request)

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.sent.append((self.clock.monotonic(), self.clock.wall(), request))
        self.clock.advance(self.latency)
        answer = self.answers.popleft() if self.answers else self.default
        if isinstance(answer, TransportError):
            raise answer
        if callable(answer):
            return answer(request)
        return answer

    def times(self, path_prefix: str = "") -> list[float]:
        """Monotonic send times, optionally only for paths starting with ``path_prefix``."""
        return [t for t, _, r in self.sent if r.path.startswith(path_prefix)]

    def paths(self) -> list[str]:
        return [r.path for _, _, r in self.sent]


def max_in_window(times: list[float], span: float, *, closed: bool = False) -> int:
    """Most events inside any interval of length ``span``: half-open ``[t, t + span)``, or
    closed ``[t, t + span]`` (the stricter count) with ``closed`` (two pointers over sorted times)."""
    times = sorted(times)
    best = 0
    lo = 0
    for hi, t in enumerate(times):
        while (t - times[lo] > span) if closed else (t - times[lo] >= span):
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def get(path: str) -> HttpRequest:
    return HttpRequest("GET", path)


def post(path: str) -> HttpRequest:
    return HttpRequest("POST", path, body=b"{}")
