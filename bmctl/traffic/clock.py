"""Clocks: the real one, and a simulated one that lets tests run hours in milliseconds."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the controller needs of time: a monotonic reading, a sleep, and UTC wall time."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wall(self) -> float:
        """Seconds since the Unix epoch, UTC (persisted timestamps use this)."""
        ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wall(self) -> float:
        return time.time()


class SimClock:
    """Simulated time: ``sleep`` advances the clock at once; wall time moves with it."""

    def __init__(self, start: float = 0.0, wall_start: float = 1_800_000_000.0) -> None:
        self._now = start
        self._wall_offset = wall_start - start
        self.slept = 0.0

    def monotonic(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds
            self.slept += seconds

    def advance(self, seconds: float) -> None:
        """Move time forward without counting it as sleep (e.g. simulated network latency)."""
        if seconds > 0:
            self._now += seconds

    def wall(self) -> float:
        return self._now + self._wall_offset
