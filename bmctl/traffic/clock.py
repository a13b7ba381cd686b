"""Clocks: the real one, and a simulated one that lets tests run hours in milliseconds."""

from __future__ import annotations

import time
from typing import Protocol

_BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id"


class Clock(Protocol):
    """What the controller needs of time: a monotonic reading, a sleep, and UTC wall time."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def wall(self) -> float:
        """Seconds since the Unix epoch, UTC (persisted timestamps use this)."""
        ...


def boot_id() -> str:
    """Which boot of this host the monotonic clock counts from: the kernel's boot id on Linux,
    else the boot time it implies (wall − monotonic, to the minute)."""
    try:
        with open(_BOOT_ID_FILE, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return f"boot@{round((time.time() - time.monotonic()) / 60)}"


class SystemClock:
    """The real clock. ``monotonic`` is the host's (CLOCK_MONOTONIC on Linux): every process of
    one boot reads the same clock, which no wall-clock step (NTP, DST, an operator) moves."""

    #: Other processes run while this one sleeps (they may free budget meanwhile).
    simulated = False

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wall(self) -> float:
        return time.time()

    def boot_id(self) -> str:
        return boot_id()


class SimClock:
    """Simulated time: ``sleep`` advances the clock at once; wall time moves with it."""

    #: Nothing else runs while a simulated process sleeps.
    simulated = True

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

    def step_wall(self, seconds: float) -> None:
        """Step the wall clock (NTP, an operator) without moving monotonic time."""
        self._wall_offset += seconds

    def boot_id(self) -> str:
        return "simulated"
