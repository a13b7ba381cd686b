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


def test_budget_carries_over_between_two_runs_sharing_one_database(tmp_path: Path) -> None:
    """Back-to-back runs against the sandbox never put more than the limit in any window:
    the second run's buckets start from what the first run's log says it spent."""
    from bmctl.traffic.routes import RouteMap

    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], latency=0.0)
    sends: list[tuple[float, str]] = []
    inner = world.transport

    class Spy:
        def send(self, request, timeout):  # type: ignore[no-untyped-def]
            sends.append((world.clock.monotonic(), request.path))
            return inner.send(request, timeout)

    for _ in range(2):
        runtime = world.runtime(tmp_path / "c.db", command="competitors", writing=False)
        runtime.transport = Spy()
        with runtime:
            for _ in range(5):
                runtime.client.competitors(spec.id, market="fr-fr")
    routes = RouteMap.default()
    times = [t for t, path in sends if "competitors" in routes.lookup("GET", path)]
    assert len(times) == 10
    span = 1.0 + 0.05  # competitors: 2 per (window + jitter)
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + span) <= 2
    from bmctl.store.db import open_database

    db = open_database(tmp_path / "c.db")
    assert db.execute("select count(*) from rate_limit_logs where status = 429").fetchone()[0] == 0
    assert db.execute("select count(distinct run_id) from rate_limit_logs").fetchone()[0] == 2


def test_user_agent_is_built_from_company_and_email_and_warns_only_without_them() -> None:
    from bmctl.config import Settings
    from bmctl.runtime import resolve_user_agent

    warnings: list[str] = []
    agent = resolve_user_agent(Settings(company="Acme", email="ops@acme.test"), warnings.append)
    assert agent == "BM-Acme-bmctl;ops@acme.test" and warnings == []
    resolve_user_agent(Settings(), warnings.append)
    assert len(warnings) == 1 and "user_agent" in warnings[0]
    assert resolve_user_agent(Settings(user_agent="BM-X-Y;z@x.test"), warnings.append) == "BM-X-Y;z@x.test"
    assert len(warnings) == 1


def test_user_agent_warning_also_through_a_proxy_but_not_for_the_local_sandbox() -> None:
    from bmctl.config import Settings
    from bmctl.runtime import resolve_user_agent

    warnings: list[str] = []
    resolve_user_agent(Settings(base_url="https://proxy.example.com"), warnings.append)
    assert len(warnings) == 1
    for local in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        resolve_user_agent(Settings(base_url=local), warnings.append)
    assert len(warnings) == 1
