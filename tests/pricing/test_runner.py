"""A probe run stopped by Ctrl-C says what it restores and how long that takes, then how it
went (simulated time)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bmctl.errors import Interrupted
from bmctl.pricing.probe_types import ProbeParams, ProbeTarget
from bmctl.pricing.recovery import restore_seconds
from bmctl.pricing.runner import ProbeRun, ProbeRunOptions
from bmctl.sandbox.world import SimWorld
from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec
from bmctl.traffic.ledger import MemoryLedger
from tests.pricing.harness import listing, money


class StopAfterTheDip:
    """The world's wire, raising KeyboardInterrupt (what the signal handler does) once the
    first price write has been answered: the listing is dipped when the run stops."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.capacity = inner.capacity
        self.writes: set[Any] = set()
        self.dipped = False
        self.stopped = False

    def start(self, token: Any, request: Any, timeout: float) -> float:
        if request.method == "POST":
            self.writes.add(token)
        return float(self.inner.start(token, request, timeout))

    def poll(self) -> Any:
        if self.dipped and not self.stopped:
            self.stopped = True
            raise KeyboardInterrupt
        done = self.inner.poll()
        self.dipped = self.dipped or any(token in self.writes for token, _, _ in done)
        return done

    def wait(self, until: float) -> None:
        self.inner.wait(until)

    def close(self) -> None:
        self.inner.close()


def test_an_interrupted_run_says_what_it_restores_then_how_it_went(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], settle=2.0, latency=0.3)

    class Transport:
        def send(self, request: Any, timeout: float) -> Any:
            return world.transport.send(request, timeout)

        def wire(self, workers: int) -> StopAfterTheDip:
            return StopAfterTheDip(world.transport.wire(workers))

    warnings: list[str] = []
    with pytest.raises(Interrupted), world.runtime(tmp_path / "p.db", traffic_max_in_flight=8) as runtime:
        runtime.transport = Transport()
        runtime.warn = warnings.append
        run = ProbeRun(runtime, ProbeRunOptions(params=ProbeParams(settle=2.0)))
        run.run([ProbeTarget(spec.id, "fr-fr")])
    assert world.price(spec.id, "fr-fr") == money("100.00")
    assert warnings == [
        "bmctl: interrupted: restoring 1 listing(s) to their original price "
        "(about 1 s at the limits)...",
        "bmctl: restored 1 of 1 listing(s) to their original price",
    ]


def test_the_restore_estimate_counts_a_full_write_bucket() -> None:
    now = [0.0]
    specs = dict(DEFAULT_LIMITS)
    specs["listing_writes"] = LimitSpec(2, 3600.0)
    ledger = MemoryLedger(specs, lambda: now[0])
    buckets = ledger.buckets
    assert restore_seconds(buckets, 2) == 0.0
    for _ in range(2):
        buckets["listing_writes"].settle(buckets["listing_writes"].spend(), 0.0)
    assert restore_seconds(buckets, 1) == pytest.approx(3600.0, abs=1.0)
    buckets["global"].pause(30.0)  # a 429 pause counts too
    assert restore_seconds({"global": buckets["global"]}, 1) == pytest.approx(30.0)
