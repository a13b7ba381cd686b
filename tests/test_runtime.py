"""The run's wiring: log rows reach the database before the controller idles."""

from __future__ import annotations

from pathlib import Path

from bmctl.runtime import FlushingClock
from bmctl.sandbox.world import SimWorld
from bmctl.traffic.clock import SimClock
from tests.pricing.harness import listing


class FakeLog:
    def __init__(self) -> None:
        self.calls: list[bool] = []

    def flush_if_due(self, *, force: bool = False) -> bool:
        self.calls.append(force)
        return force


def test_long_waits_flush_at_once_short_ones_when_due() -> None:
    log = FakeLog()
    clock = FlushingClock(SimClock(), log)
    clock.sleep(0.5)
    clock.sleep(0.05)
    assert log.calls == [True, False]
    assert clock.monotonic() == 0.55


def test_rows_are_on_disk_before_a_long_wait_even_if_the_run_never_closes(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec])
    runtime = world.runtime(tmp_path / "r.db", command="competitors", writing=False)
    runtime.__enter__()  # deliberately never exited: a killed process closes nothing
    client = runtime.client
    client.competitors(spec.id, market="fr-fr")
    runtime.controller.call_later(5.0, lambda: None)
    runtime.controller.run()  # idles 5 s: the buffered row must be flushed first
    from bmctl.store.db import open_database

    rows = open_database(tmp_path / "r.db").execute("select count(*) from rate_limit_logs").fetchone()[0]
    assert rows == 1
