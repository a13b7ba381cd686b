"""Many probes in flight over one single-threaded traffic controller.

Each probe is a generator (``bmctl.pricing.probe``); the batch submits what it yields to the
controller and resumes it from the controller's callbacks, so that while one probe waits for
the Backbox to settle the others use the free slots."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Callable, Iterable, Iterator

from bmctl.pricing.probe import Probe
from bmctl.pricing.probe_types import ProbeResult, ProbeTarget, Send, Wait


@dataclass
class BatchSummary:
    """What a batch did, and why it stopped early if it did."""

    results: list[ProbeResult] = field(default_factory=list)
    not_started: list[ProbeTarget] = field(default_factory=list)
    stopped_by: str | None = None  # "deadline" | "breaker" | None

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if r.outcome == "error")


class Batch:
    """Drives probes through the controller: at most ``max_in_flight`` at once, new ones only
    while the deadline and the circuit breaker allow."""

    def __init__(
        self,
        controller: Any,
        make_probe: Callable[[ProbeTarget], Probe],
        *,
        on_result: Callable[[ProbeResult, Probe], None] | None = None,
        max_in_flight: int = 16,
        deadline: float | None = None,
        estimate_seconds: Callable[[int], float] | None = None,
        breaker_open: Callable[[], bool] = lambda: False,
    ) -> None:
        self.controller = controller
        self.make_probe = make_probe
        self.on_result = on_result
        self.max_in_flight = max(1, max_in_flight)
        self.deadline = deadline
        self.estimate_seconds = estimate_seconds
        self.breaker_open = breaker_open
        self.in_flight = 0
        self.summary = BatchSummary()
        self._targets: Iterator[ProbeTarget] = iter(())
        self._exhausted = False
        self.running: set[Probe] = set()  # started and not finished (abandoned when a run stops)

    def run(self, targets: Iterable[ProbeTarget]) -> BatchSummary:
        """Probe every target; returns when all started probes have finished."""
        self._targets = iter(targets)
        self._fill()
        self.controller.run(until=lambda: self.in_flight == 0 and self._exhausted)
        if not self._exhausted:
            self.summary.not_started.extend(self._targets)
        if self.summary.stopped_by is None and self.breaker_open():
            # Tripped by probes already in flight: nothing was left to stop, but the run must
            # still say why it skipped them (exit 1).
            self.summary.stopped_by = "breaker"
        return self.summary

    def _fill(self) -> None:
        while self.in_flight < self.max_in_flight and not self._exhausted:
            if self.breaker_open():
                self._stop("breaker")
                return
            if (self.deadline is not None and self.estimate_seconds is not None
                    and self.controller.now() + self.estimate_seconds(self.in_flight) > self.deadline):
                # Not now: while probes are in flight, one may fit once they finish (this runs
                # again each time one does); with none in flight, none ever will.
                if self.in_flight == 0:
                    self._stop("deadline")
                return
            target = next(self._targets, None)
            if target is None:
                self._exhausted = True
                return
            probe = self.make_probe(target)
            self.in_flight += 1
            self.running.add(probe)
            self._step(probe, probe.run(), None)

    def _stop(self, why: str) -> None:
        self.summary.stopped_by = why
        self.summary.not_started.extend(self._targets)
        self._exhausted = True

    def _step(self, probe: Probe, steps: Any, value: Any) -> None:
        """Resume one probe until it yields an action (submitted) or finishes."""
        try:
            action = steps.send(value)
        except StopIteration as done:
            self._take_spawned(probe)
            self._finish(probe, done.value)
            return
        if probe.spawned:
            self._take_spawned(probe)
            self._fill()
        if isinstance(action, Send):
            probe.call = self.controller.submit(
                action.request,
                action.priority,
                on_done=lambda call: self._step(probe, steps, call),
                reserve_exit=action.reserve_exit,
                reservation=action.reservation,
                accept=action.accept,
            )
        elif isinstance(action, Wait):
            self.controller.call_later(action.seconds, lambda: self._step(probe, steps, None))
        else:  # a programming error in a probe, not a user's
            raise TypeError(f"a probe yielded {action!r}")

    def _take_spawned(self, probe: Probe) -> None:
        """The other markets a discovering probe found go first in line (their competitors
        answer is fresh), or straight to ``not_started`` once the batch has stopped."""
        spawned, probe.spawned = probe.spawned, []
        if not spawned:
            return
        if self.summary.stopped_by is not None:
            self.summary.not_started.extend(spawned)
            return
        self._targets = chain(spawned, self._targets)
        self._exhausted = False

    def _finish(self, probe: Probe, result: ProbeResult) -> None:
        if probe.reservation is not None:
            self.controller.release(probe.reservation)
            probe.reservation = None
        self.in_flight -= 1
        self.running.discard(probe)
        self.summary.results.append(result)
        if self.on_result is not None:
            self.on_result(result, probe)
        self._fill()
