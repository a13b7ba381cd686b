"""Real processes sharing one budget: several ``bmctl competitors`` at once on one database
against a sandbox that enforces the published limits on arrival times, with answers taking
0–200 ms. The ledger in the database keeps them together inside the limits; the control —
the same processes on separate databases — shows the server does catch a breach."""

from __future__ import annotations

import json
import random
import subprocess
import time
from pathlib import Path
from typing import Any

from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.limits import DEFAULT_LIMITS
from bmctl.sandbox.model import Marketplace
from bmctl.sandbox.server import start_in_thread
from tests.cli.sandbox_helpers import JP, LID, TWO, small_catalogue
from tests.e2e.test_kill import base_env, bmctl
from tests.traffic.fakes import max_in_window

COMPETITORS = "/ws/backbox/v1/competitors/"


class ArrivalsApp(SandboxApp):
    """Records when each request reached the marketplace, and its status."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: list[tuple[float, str, int]] = []

    def respond(self, request: Any, decision: Any = None) -> Any:  # type: ignore[override]
        at = time.monotonic()
        response = super().respond(request, decision) if decision is not None else super().respond(request)
        self.arrivals.append((at, request.path, response.status))
        return response


def serve() -> tuple[Any, ArrivalsApp, str]:
    marketplace = Marketplace(time.monotonic, settle=0.0, rng=random.Random(1))
    marketplace.load(small_catalogue())
    app = ArrivalsApp(marketplace, "sandbox", faults=Faults(latency=100, jitter=100),
                      limits=DEFAULT_LIMITS, rng=random.Random(2))
    server, url = start_in_thread(app)
    return server, app, url


def competitors_runs(tmp: Path, url: str, databases: list[Path],
                     config: Path | None = None) -> list[subprocess.CompletedProcess[str]]:
    """One ``bmctl competitors`` of three reads per database path, all started together."""
    processes = []
    for db in databases:
        env = base_env(tmp)
        env.update(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=url, BMCTL_DB=str(db),
                   BMCTL_USER_AGENT="BM-tests-bmctl;tests@example.com")
        if config is not None:
            env["BMCTL_CONFIG"] = str(config)
        processes.append(subprocess.Popen(
            [*bmctl(), "competitors", LID, TWO, JP, "--format", "json"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, out, err))
    return results


def test_three_processes_on_one_database_stay_inside_the_limits_together(tmp_path: Path) -> None:
    server, app, url = serve()
    try:
        results = competitors_runs(tmp_path, url, [tmp_path / "shared.db"] * 3)
    finally:
        server.stop()
    for result in results:
        assert result.returncode == 0, result.stderr
        assert len(json.loads(result.stdout)) == 4  # TWO competes in two markets
    reads = [(at, status) for at, path, status in app.arrivals if path.startswith(COMPETITORS)]
    assert len(reads) == 9
    assert [status for _, status in reads] == [200] * 9  # not one 429 at the server
    assert max_in_window([at for at, _ in reads], 1.0, closed=True) <= 2


def test_the_control_on_separate_databases_breaches_the_limit(tmp_path: Path) -> None:
    server, app, url = serve()
    config = tmp_path / "once.toml"
    # A 429 ends the item at once, and pauses nothing: no 10 s block to sit out.
    config.write_text("max_attempts = 1\n[limits.global]\npenalty = 0\n[limits.competitors]\npenalty = 0\n")
    try:
        competitors_runs(tmp_path, url, [tmp_path / f"own{i}.db" for i in range(3)], config)
    finally:
        server.stop()
    statuses = [status for _, path, status in app.arrivals if path.startswith(COMPETITORS)]
    assert 429 in statuses, "three processes with three budgets never met the server's limit"
