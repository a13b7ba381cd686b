"""The `bmctl` executable against a port where nothing listens (issue 13, point 5): one clear
line, exit 1, at once, and no retries; the raw exception only with --verbose."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.test_sandbox_e2e import bmctl_command, clean_env

IDS = [f"{n}{n}{n}{n}{n}{n}{n}{n}-{n}{n}{n}{n}-4{n}{n}{n}-8{n}{n}{n}-{str(n) * 12}" for n in range(1, 7)]


@pytest.fixture
def closed_port() -> int:
    """A loopback port that refuses connections: bound, noted, closed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run_against(port: int, home: Path, *args: str) -> tuple[subprocess.CompletedProcess, float]:
    env = clean_env(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=f"http://127.0.0.1:{port}",
                    BMCTL_DB=str(home / "bmctl.db"), HOME=str(home), XDG_CONFIG_HOME=str(home / "cfg"),
                    XDG_DATA_HOME=str(home / "data"))
    start = time.monotonic()
    result = subprocess.run([*bmctl_command(), *args], capture_output=True, text=True, timeout=60,
                            env=env)
    return result, time.monotonic() - start


def attempts(home: Path) -> list[tuple[str, int, str]]:
    conn = sqlite3.connect(home / "bmctl.db")
    try:
        return conn.execute("select path, attempt, outcome from rate_limit_logs order by id").fetchall()
    finally:
        conn.close()


def test_competitors_of_six_ids_against_a_closed_port_stop_at_once(closed_port: int, tmp_path: Path) -> None:
    result, seconds = run_against(closed_port, tmp_path, "competitors", *IDS, "--format", "json")
    assert result.returncode == 1
    assert seconds < 5, seconds  # it took ~39 s of retries, and far longer behind the ledger
    assert result.stderr.splitlines() == [
        f"bmctl: error: cannot connect to http://127.0.0.1:{closed_port} (connection refused)"]
    assert "Traceback" not in result.stderr
    assert attempts(tmp_path) == [(f"/ws/backbox/v1/competitors/{IDS[0]}", 1, "connection_error")]

    verbose, _ = run_against(closed_port, tmp_path, "--verbose", "competitors", *IDS)
    assert verbose.returncode == 1 and "Traceback" not in verbose.stderr
    assert f"cannot connect to http://127.0.0.1:{closed_port} (connection refused)" in verbose.stderr
    assert "HTTPConnectionPool" in verbose.stderr and "Connection refused" in verbose.stderr
    assert "sandbox" not in verbose.stderr.replace("/ws/", "")  # the token never shows


def test_a_probe_batch_against_a_closed_port_stops_after_the_first_refusal(
        closed_port: int, tmp_path: Path) -> None:
    result, seconds = run_against(closed_port, tmp_path, "probe", *IDS, "--format", "json")
    assert result.returncode == 1 and seconds < 5, (result.stderr, seconds)
    assert result.stderr.splitlines()[-1] == (
        f"bmctl: error: cannot connect to http://127.0.0.1:{closed_port} (connection refused)")
    assert "HTTPConnectionPool" not in result.stderr and "Traceback" not in result.stderr
    rows = attempts(tmp_path)
    # The first reads of the probes already on the wire may all have gone out; none is retried
    # and no probe goes further.
    assert 1 <= len(rows) <= len(IDS) and all(attempt == 1 for _, attempt, _ in rows)
    assert all(path.startswith("/ws/listings/") for path, _, _ in rows)
