"""Real processes sharing one budget through Redis: four ``bmctl competitors`` at once, each on
its own database (as on four hosts), with one ``BMCTL_BUDGET_URL``, against a sandbox that
enforces the published limits on arrival times with answers taking 0–200 ms (the same set-up
as tests/e2e/test_shared_budget.py, whose control shows separate budgets do breach)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bmctl.config import BudgetSettings, Settings
from bmctl.runtime import ledger_holders
from bmctl.traffic.clock import SystemClock
from tests.cli.sandbox_helpers import JP, LID, TWO
from tests.e2e.test_kill import Sandbox, base_env, bmctl, client_env, free_port, journal_states, wait_for_dip, winnable
from tests.e2e.test_shared_budget import COMPETITORS, serve
from tests.traffic.fakes import max_in_window
from tests.traffic.redis_fixture import RedisServer

#: Runs bmctl with this process's clocks (wall and monotonic) read ``sys.argv[1]`` seconds off:
#: a host whose clock is set wrong.
SKEWED = """
import sys, time
offset = float(sys.argv.pop(1))
wall, mono = time.time, time.monotonic
time.time = lambda: wall() + offset
time.monotonic = lambda: mono() + offset
from bmctl.cli.entry import run
sys.argv[0] = "bmctl"
run()
"""


@pytest.mark.parametrize("skew", [0.0, 30.0])
def test_four_processes_on_four_databases_share_one_budget_through_redis(
        tmp_path: Path, redis_server: RedisServer, skew: float) -> None:
    """With ``skew``, the first process's clocks are that far off: it still shares the window."""
    server, app, url = serve()
    processes = []
    try:
        for i in range(4):
            env = base_env(tmp_path)
            env.update(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=url, BMCTL_DB=str(tmp_path / f"host{i}.db"),
                       BMCTL_USER_AGENT="BM-tests-bmctl;tests@example.com", BMCTL_BUDGET_URL=redis_server.url)
            command = [sys.executable, "-c", SKEWED, str(skew)] if skew and i == 0 else bmctl()
            processes.append(subprocess.Popen([*command, "competitors", LID, TWO, "--format", "json"],
                                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = [process.communicate(timeout=120) for process in processes]
    finally:
        server.stop()
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err
        assert len(json.loads(out)) == 3  # TWO competes in two markets
    reads = [(at, status) for at, path, status in app.arrivals if path.startswith(COMPETITORS)]
    assert len(reads) == 8
    assert [status for _, status in reads] == [200] * 8  # not one 429 at the server
    assert max_in_window([at for at, _ in reads], 1.0, closed=True) <= 2
    assert redis_server.client().keys("bmctl:{prod:127.0.0.1:*")  # the budget was in Redis


def test_an_unreachable_store_sends_nothing_and_exits_4(tmp_path: Path) -> None:
    server, app, url = serve()
    port = free_port()  # nothing listens there
    env = base_env(tmp_path)
    env.update(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=url, BMCTL_DB=str(tmp_path / "h.db"),
               BMCTL_USER_AGENT="BM-tests-bmctl;tests@example.com",
               BMCTL_BUDGET_URL=f"redis://:hunter2@127.0.0.1:{port}/0")
    try:
        result = subprocess.run([*bmctl(), "competitors", LID, TWO, JP, "--format", "json"], env=env,
                                capture_output=True, text=True, timeout=60)
    finally:
        server.stop()
    assert result.returncode == 4, result.stderr
    assert app.arrivals == []  # nothing was sent
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"bmctl: error: budget store redis://127.0.0.1:{port}/0 unreachable: ")
               for line in lines), result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr


def test_a_store_lost_during_a_dip_leaves_the_journal_and_the_next_run_restores(tmp_path: Path,
                                                                                redis_server: RedisServer) -> None:
    served = Sandbox(tmp_path, winnable(1))
    listing_id = served.specs[0].id
    db = tmp_path / "bmctl.db"
    env = client_env(tmp_path, served)
    env["BMCTL_BUDGET_URL"] = redis_server.url
    try:
        process = subprocess.Popen([*bmctl(), "--format", "json", "probe", listing_id, "--settle", "3"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_dip(served, listing_id, process, db)
        redis_server.stop()  # the shared budget is gone mid-probe
        _, err = process.communicate(timeout=60)
        assert process.returncode == 4, err
        assert "budget store" in err and "unreachable" in err
        assert served.price(listing_id) == "94.99"  # nothing sent without the budget...
        assert journal_states(db) == ["dip"]  # ... and the journal keeps the probe open

        down = subprocess.run([*bmctl(), "--format", "json", "recover"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert down.returncode == 4 and "unreachable" in down.stderr
        assert journal_states(db) == ["dip"]

        redis_server.restart()
        done = subprocess.run([*bmctl(), "--format", "json", "recover"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert [item["status"] for item in json.loads(done.stdout)] == ["restored"]
        assert served.price(listing_id) == "100.00"
        assert journal_states(db) == ["closed"]
    finally:
        served.stop()


def test_doctor_and_logs_stats_say_the_ledger_is_in_redis_and_whether_it_answers(
        tmp_path: Path, redis_server: RedisServer) -> None:
    env = base_env(tmp_path)
    env.update(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=f"http://127.0.0.1:{free_port()}",
               BMCTL_DB=str(tmp_path / "h.db"), BMCTL_USER_AGENT="BM-tests-bmctl;tests@example.com",
               BMCTL_BUDGET_URL=redis_server.url)

    def bmctl_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*bmctl(), *args], env=env, capture_output=True, text=True, timeout=60)

    def ledger_check() -> dict[str, str]:
        checks = json.loads(bmctl_run("--format", "json", "doctor").stdout)
        return next(check for check in checks if check["check"] == "ledger")

    check = ledger_check()
    assert check["status"] == "ok" and check["detail"].startswith(f"redis {redis_server.url} ")
    assert "answers PING" in check["detail"]
    stats = bmctl_run("logs", "stats", "--format", "json")
    assert stats.returncode == 0, stats.stderr
    # What `logs stats` titles its table with (on a terminal), and its holders column.
    settings = Settings(token="sandbox", db=str(tmp_path / "h.db"), base_url=env["BMCTL_BASE_URL"],
                        budget=BudgetSettings(url=redis_server.url))
    holders, where = ledger_holders(settings, SystemClock())
    assert where.split(" (")[0] == f"redis {redis_server.url}"
    assert [row["bucket"] for row in holders] == ["global"]  # doctor's read of the host, held

    redis_server.stop()
    check = ledger_check()
    assert check["status"] == "fail" and "unreachable" in check["detail"]
    assert "not answering" in ledger_holders(settings, SystemClock())[1]
