"""The `bmctl` executable on a database it cannot use (issue 15, point 13): one line naming the
database and the problem, exit 2 (5 when locked), no traceback, nothing sent. Real processes:
what the operator's shell sees, and a lock held by another process for real (the busy timeout
is wall-clock time inside SQLite, so the locked case takes its 5 s)."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from bmctl.store.db import open_database
from tests.e2e.test_sandbox_e2e import bmctl_command, clean_env
from tests.store.test_db_problems import drop_file_privileges, make_read_only, random_bytes_file

LID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def closed_port() -> int:
    """Where requests would go: a loopback port nothing listens on, so a request that was sent
    would end in "cannot connect", not in the database's message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bmctl(db: Path, port: int, *args: str, privileged: bool = True) -> tuple[subprocess.CompletedProcess, float]:
    env = clean_env(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=f"http://127.0.0.1:{port}", BMCTL_DB=str(db))
    start = time.monotonic()
    result = subprocess.run([*bmctl_command(), *args], capture_output=True, text=True, timeout=60, env=env,
                            preexec_fn=None if privileged else drop_file_privileges)
    return result, time.monotonic() - start


def test_corrupt_database_one_line_exit_2_from_the_executable(tmp_path: Path, closed_port: int) -> None:
    db = random_bytes_file(tmp_path / "bmctl.db")
    expected = (f"bmctl: error: database {db} is corrupt: file is not a database; move it aside and "
                "rerun; bmctl creates a new one (the request log and history in it are lost)")
    for args in (["logs", "list"], ["history", LID], ["update-price", LID, "99.00"], ["competitors", LID]):
        result, _ = bmctl(db, closed_port, *args)
        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [expected], args
        assert result.stdout == ""
    verbose, _ = bmctl(db, closed_port, "--verbose", "logs", "list")
    assert verbose.stderr.splitlines() == [expected, "sqlite3.DatabaseError: file is not a database (SQLITE_NOTADB)"]


def test_read_only_database_readers_work_writers_refuse(tmp_path: Path, closed_port: int) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    db_path = folder / "bmctl.db"
    db = open_database(db_path)
    with db.conn:
        db.conn.execute("insert into runs (id, command, started_at) values"
                        " ('20261130T010000Z-abcdef', 'probe', '2026-11-30T01:00:00.000000Z')")
    db.close()
    (folder / "bmctl.db.setup.lock").unlink()
    make_read_only(db_path, folder)
    try:
        runs, _ = bmctl(db_path, closed_port, "logs", "runs", "--format", "csv", privileged=False)
        assert runs.returncode == 0, runs.stderr
        assert "20261130T010000Z-abcdef,probe," in runs.stdout
        # The first file bmctl cannot create beside the database names the problem: the run
        # lock of a writing command, else the set-up lock of opening it for writing.
        for args, first in ((["competitors", LID], ".setup.lock"), (["probe", LID], ".lock")):
            refused, _ = bmctl(db_path, closed_port, *args, privileged=False)
            assert refused.returncode == 2, refused.stderr
            assert refused.stderr.splitlines() == [
                f"bmctl: error: database {db_path} is read-only: permission denied ({db_path}{first}); "
                "check the file's and its directory's permissions, or use --db"]
    finally:
        folder.chmod(0o755)


def test_locked_database_exit_5_within_the_busy_timeout(tmp_path: Path, closed_port: int) -> None:
    db_path = tmp_path / "bmctl.db"
    open_database(db_path).close()
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("begin exclusive")
    other.execute("insert into runs (id) values ('theirs')")
    try:
        result, seconds = bmctl(db_path, closed_port, "update-price", LID, "99.00")
    finally:
        other.execute("rollback")
        other.close()
    assert result.returncode == 5, result.stderr
    assert result.stderr.splitlines() == [
        f"bmctl: error: database {db_path} is locked: database is locked (waited 5 s); another program "
        "holds it; retry, or wait longer with --lock-timeout SECONDS"]
    assert 4.5 < seconds < 30, seconds


def test_directory_as_db_from_the_executable(tmp_path: Path, closed_port: int) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    result, _ = bmctl(folder, closed_port, "probe", LID)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"bmctl: error: database {folder} is a directory; give a file path, e.g. --db {folder}/bmctl.db"]
