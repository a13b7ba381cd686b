"""The run's wiring: log rows reach the database before the controller idles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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


class SpyTransport:
    """Records when each request reached the marketplace (the sandbox app)."""

    def __init__(self, world: SimWorld) -> None:
        self.world = world
        self.inner = world.transport
        self.arrivals: list[tuple[float, str]] = []
        app = world.app
        original = app.respond

        def respond(request, decision):  # type: ignore[no-untyped-def]
            self.arrivals.append((world.clock.monotonic(), request.path))
            return original(request, decision)

        app.respond = respond  # type: ignore[method-assign]

    def send(self, request, timeout):  # type: ignore[no-untyped-def]
        return self.inner.send(request, timeout)


def competitors_arrivals(spy: SpyTransport) -> list[float]:
    from bmctl.traffic.routes import RouteMap

    routes = RouteMap.default()
    return sorted(t for t, path in spy.arrivals if "competitors" in routes.lookup("GET", path))


def test_back_to_back_runs_sharing_one_database_share_one_budget(tmp_path: Path) -> None:
    """The second run's first requests wait for the slots the first run still holds: no
    window of 1 s at the marketplace ever sees more than 2 competitors reads."""
    from tests.traffic.fakes import max_in_window

    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], latency=0.0)
    spy = SpyTransport(world)
    for _ in range(2):
        runtime = world.runtime(tmp_path / "c.db", command="competitors", writing=False)
        runtime.transport = spy
        with runtime:
            for _ in range(5):
                runtime.client.competitors(spec.id, market="fr-fr")
    times = competitors_arrivals(spy)
    assert len(times) == 10
    assert max_in_window(times, 1.0, closed=True) <= 2
    assert times[-1] - times[0] < 5.1  # and no slower than the limit allows
    from bmctl.store.db import open_database

    db = open_database(tmp_path / "c.db")
    assert db.execute("select count(*) from rate_limit_logs where status = 429").fetchone()[0] == 0
    assert db.execute("select count(distinct run_id) from rate_limit_logs").fetchone()[0] == 2


def test_two_runs_open_at_once_share_one_budget(tmp_path: Path) -> None:
    """Two runtimes on one database at the same time (two processes in one simulated world):
    their requests interleave and together stay within the limit."""
    from tests.traffic.fakes import max_in_window

    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], latency=0.05)
    spy = SpyTransport(world)
    runtimes = [world.runtime(tmp_path / "c.db", command="competitors", writing=False) for _ in range(2)]
    for runtime in runtimes:
        runtime.transport = spy
        runtime.__enter__()
    try:
        for _ in range(6):
            for runtime in runtimes:
                runtime.client.competitors(spec.id, market="fr-fr")
    finally:
        for runtime in runtimes:
            runtime.__exit__(None, None, None)
    times = competitors_arrivals(spy)
    assert len(times) == 12
    assert max_in_window(times, 1.0, closed=True) <= 2
    from bmctl.store.db import open_database

    db = open_database(tmp_path / "c.db")
    statuses = [row[0] for row in db.execute("select status from rate_limit_logs")]
    assert statuses == [200] * 12


def test_user_agent_is_built_from_a_company_slug_and_email() -> None:
    from bmctl.config import Settings
    from bmctl.runtime import resolve_user_agent

    agent = resolve_user_agent(Settings(company="Acme", email="ops@acme.test"))
    assert agent == "BM-Acme-bmctl;ops@acme.test"
    agent = resolve_user_agent(Settings(company="Acme Corp-EU", email="ops@acme.test"))
    assert agent == "BM-Acme_Corp_EU-bmctl;ops@acme.test"
    assert resolve_user_agent(Settings(user_agent="BM-X-Y;z@x.test")) == "BM-X-Y;z@x.test"


@pytest.mark.parametrize("settings", [
    {},  # nothing set: no more BM-unknown-bmctl;unknown
    {"company": "Acme"},
    {"company": "Acme", "email": "ops"},
    {"company": "Acme", "email": "ops@localhost"},
    {"company": "!!", "email": "ops@acme.test"},
    {"user_agent": "Mozilla/5.0"},
    {"user_agent": "BM-Acme Corp-bmctl;ops@acme.test"},
    {"user_agent": "BM-Acme-bmctl;ops@acme.test", "base_url": "https://proxy.example.com", "email": "x"},
])
def test_an_invalid_user_agent_is_refused_for_a_real_host(settings: dict[str, str]) -> None:
    from bmctl.config import Settings
    from bmctl.errors import ExitCode, UsageError
    from bmctl.runtime import resolve_user_agent

    if settings.get("user_agent") == "BM-Acme-bmctl;ops@acme.test":  # valid: passes, proxy or not
        assert resolve_user_agent(Settings(**settings)) == settings["user_agent"]
        return
    for where in ({}, {"env": "preprod"}, {"market": "en-us"}, {"base_url": "https://www.backmarket.co.jp"}):
        with pytest.raises(UsageError) as raised:
            resolve_user_agent(Settings(**{**settings, **where}))
        assert raised.value.exit_code == ExitCode.BAD_INPUT
        assert "User-Agent" in raised.value.message and "company and email" in raised.value.message
        assert "\n" not in raised.value.message
    # Another remote host (a proxy, a stand-in) passes it on as it is: a warning, not a refusal.
    warnings: list[str] = []
    resolve_user_agent(Settings(**{**settings, "base_url": "https://proxy.example.com"}), warnings.append)
    assert len(warnings) == 1 and "User-Agent" in warnings[0]


def test_the_local_sandbox_takes_any_user_agent() -> None:
    from bmctl.config import Settings
    from bmctl.runtime import resolve_user_agent

    for local in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765"):
        assert resolve_user_agent(Settings(base_url=local)) == "BM-unknown-bmctl;unknown"
        assert resolve_user_agent(Settings(base_url=local, user_agent="curl")) == "curl"


def timed_listings(specs: Any, tmp_path: Path, workers: int, read: Any) -> tuple[Any, float]:
    """What ``read(client)`` returns over a world answering in 0.3 s with ``workers`` requests
    on the wire, and the simulated seconds it took."""
    world = SimWorld(specs, latency=0.3)
    with world.runtime(tmp_path / f"l{workers}.db", command="listings", writing=False,
                       traffic_max_in_flight=workers) as runtime:
        start = world.clock.monotonic()
        result = read(runtime.client)
        return result, world.clock.monotonic() - start


def test_listing_pages_are_asked_for_several_at_a_time_and_come_out_in_order(tmp_path: Path) -> None:
    from bmctl.sandbox.catalogue import generate_catalogue

    specs = generate_catalogue(480, markets=("fr-fr",), seed=2)  # ten pages of 50 (the last 30)
    (one_by_one, slow), (ahead, fast) = [
        timed_listings(specs, tmp_path, workers,
                       lambda client: [listing.id for listing in client.iter_listings(market="fr-fr")])
        for workers in (1, 8)]
    assert ahead == one_by_one and len(ahead) == 480
    assert slow == pytest.approx(10 * 0.3, abs=0.05)
    assert fast < 3 * 0.3 + 0.05  # the first page, then the other nine at once (8 on the wire)


def test_a_malformed_listing_page_is_asked_for_again_while_pages_go_ahead(tmp_path: Path) -> None:
    """Issue 13, point 4, on the pipelined path: page 3 comes back truncated once."""
    from bmctl.sandbox.catalogue import generate_catalogue
    from tests.pricing.harness import fault_once

    specs = generate_catalogue(480, markets=("fr-fr",), seed=2)
    world = SimWorld(specs, latency=0.3)
    hit = fault_once(world, "malformed", lambda r: ("page", "3") in r.query)
    with world.runtime(tmp_path / "m.db", command="listings", writing=False,
                       traffic_max_in_flight=8) as runtime:
        ids = [listing.id for listing in runtime.client.iter_listings(market="fr-fr")]
    assert len(hit) == 1
    assert len(ids) == 480 and set(ids) == {s.id for s in specs}


def test_the_first_listing_page_of_every_market_is_asked_for_at_once(tmp_path: Path) -> None:
    from bmctl.api.markets import platform_markets
    from bmctl.sandbox.catalogue import generate_catalogue

    markets = platform_markets("fr-fr")  # the 13 European markets
    specs = generate_catalogue(60, markets=("fr-fr", "de-de", "en-gb"), seed=3)
    (one_by_one, slow), (together, fast) = [
        timed_listings(specs, tmp_path, workers,
                       lambda client: list(client.iter_listings_by_market(markets, min_quantity=1)))
        for workers in (1, 32)]
    assert together == one_by_one and {m for m, _ in together} == {"fr-fr", "de-de", "en-gb"}
    assert slow == pytest.approx(13 * 0.3, abs=0.05)  # one page per market, one after the other
    assert fast < 3 * 0.3  # every market's first page on the wire together, then the rest


def test_an_error_after_the_core_decided_is_the_exit_code_the_run_keeps(tmp_path: Path) -> None:
    """``--format json`` writes its array after the batch: a closed pipe there is exit 130,
    and the run record must say 130, not the batch's code."""
    from bmctl.store.db import open_database

    world = SimWorld([listing("100.00", ["95.00"])])
    with pytest.raises(BrokenPipeError), world.runtime(tmp_path / "x.db", command="probe") as runtime:
        runtime.exit_code = 0
        raise BrokenPipeError
    row = open_database(tmp_path / "x.db").execute("select exit_code from runs").fetchone()
    assert row[0] == 130
