"""Database problems are named (issue 15, point 13): a corrupt, locked, read-only or directory
``--db`` is one line ``database PATH is ...; hint`` with exit 2 (5 when locked), never an
internal error, and nothing is sent; commands that only read work on a read-only database.

Read-only, honestly, as root: root ignores permission bits through CAP_DAC_OVERRIDE (and
CAP_DAC_READ_SEARCH), so ``chmod 444`` alone proves nothing in this sandbox. The read-only cases
run in a forked child that drops those two capabilities (prctl(2) and capset(2)):
the kernel then applies the file's and the directory's mode bits to it as to any user, and
SQLite meets the same EACCES / SQLITE_READONLY an operator's account would. Run as an ordinary
user, the child has nothing to drop and the mode bits apply anyway."""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import sqlite3
import traceback
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import pytest

import bmctl.store.db as store_db
from bmctl.errors import DatabaseLocked, DatabaseProblem, ExitCode
from bmctl.store.db import database_problem, is_read_only, open_database
from tests.cli.sandbox_helpers import LID, Sandbox, start_sandbox

T = TypeVar("T")

_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
_CAPABILITY_VERSION_3 = 0x20080522
_PR_CAPBSET_DROP = 24


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_file_privileges() -> None:
    """Make this process, and any program it executes, subject to file mode bits even as
    root: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set (execve gives root
    every capability of that set again) and from the effective and permitted sets. A no-op for
    other users."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")
    header = _CapHeader(_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    mask = ~((1 << _CAP_DAC_OVERRIDE) | (1 << _CAP_DAC_READ_SEARCH)) & 0xFFFFFFFF
    data[0].effective &= mask
    data[0].permitted &= mask
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def without_file_privileges(fn: Callable[[], T]) -> T:
    """``fn()`` in a forked child bound by file permissions (see the module docstring); its
    result (or its exception, as text) comes back pickled."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        os.close(read_end)
        try:
            drop_file_privileges()
            payload = pickle.dumps(("ok", fn()))
        except BaseException:  # noqa: BLE001 - reported to the parent, which fails the test
            payload = pickle.dumps(("error", traceback.format_exc()))
        with os.fdopen(write_end, "wb") as out:
            out.write(payload)
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as source:
        data = source.read()
    os.waitpid(pid, 0)
    status, value = pickle.loads(data)
    if status != "ok":
        pytest.fail(f"in the unprivileged child:\n{value}")
    return value  # type: ignore[no-any-return]


def make_read_only(*paths: Path) -> None:
    for path in paths:
        path.chmod(0o555 if path.is_dir() else 0o444)


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder (mode 755 now) the test fills, then makes read-only; writable again afterwards."""
    folder = tmp_path / "ro"
    folder.mkdir()
    yield folder
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)


def random_bytes_file(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 16)  # 4 KiB that are no SQLite header
    return path


CORRUPT = ("is corrupt: file is not a database; move it aside and rerun; bmctl creates a new "
           "one (the request log and history in it are lost)")
READ_ONLY_HINT = "check the file's and its directory's permissions, or use --db"


def error_line(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("bmctl: ")]
    assert len(lines) == 1, result.stderr
    return str(lines[0])


# --- the store: open_database names each problem ----------------------------------------------

def test_a_file_of_random_bytes_is_corrupt_for_readers_and_writers(tmp_path: Path) -> None:
    path = random_bytes_file(tmp_path / "bmctl.db")
    for readonly in (False, True):
        with pytest.raises(DatabaseProblem) as caught:
            open_database(path, readonly=readonly)
        assert caught.value.message == f"database {path} {CORRUPT}"
        assert caught.value.kind == "corrupt" and caught.value.exit_code == ExitCode.BAD_INPUT
        assert caught.value.detail == "sqlite3.DatabaseError: file is not a database (SQLITE_NOTADB)"


def test_a_directory_and_a_path_under_a_file_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "dir.db"
    folder.mkdir()
    with pytest.raises(DatabaseProblem) as directory:
        open_database(folder)
    assert directory.value.message == f"database {folder} is a directory; give a file path, e.g. --db {folder}/bmctl.db"
    fifo = tmp_path / "fifo.db"
    os.mkfifo(fifo)  # opening it would block: refused before SQLite sees it
    with pytest.raises(DatabaseProblem) as special:
        open_database(fifo, readonly=True)
    assert special.value.message == f"database {fifo} is not a regular file; give --db the path of a database file"
    plain = tmp_path / "plain"
    plain.write_text("x")
    with pytest.raises(DatabaseProblem) as caught:
        open_database(plain / "bmctl.db", readonly=True)
    assert caught.value.message == (f"database {plain}/bmctl.db cannot be created: {plain} is not a "
                                    "directory; give --db a path inside a directory")


def test_a_database_another_program_holds_is_locked_exit_5_within_the_busy_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "bmctl.db"
    open_database(path).close()
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 50)  # real milliseconds: keep them few
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("begin exclusive")
    other.execute("insert into runs (id) values ('theirs')")
    try:
        with pytest.raises(DatabaseLocked) as caught:
            open_database(path)
        assert caught.value.exit_code == ExitCode.LOCKED
        assert caught.value.message == (f"database {path} is locked: database is locked (waited 0.05 s); "
                                        "another program holds it; retry")
        with pytest.raises(DatabaseLocked, match=r"\(waited 0\.2 s\).*wait longer with --lock-timeout SECONDS$"):
            open_database(path, wait=0.2)
        # WAL: a reader is not blocked by a writer, and sees what was committed.
        reader = open_database(path, readonly=True)
        assert reader.execute("select count(*) from runs").fetchone() == (0,)
    finally:
        other.execute("rollback")
        other.close()


def test_an_exclusive_lock_in_rollback_journal_mode_blocks_readers_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "other.db"
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(path, isolation_level=None)  # journal_mode=delete, as sqlite3's shell
    other.execute("create table t (a)")
    other.execute("begin exclusive")
    other.execute("insert into t values (1)")
    try:
        for readonly in (True, False):
            with pytest.raises(DatabaseLocked, match=r"is locked: database is locked"):
                open_database(path, readonly=readonly)
    finally:
        other.execute("rollback")
        other.close()


def test_errors_that_are_not_about_the_file_pass_unchanged(tmp_path: Path) -> None:
    assert database_problem(tmp_path / "x.db", sqlite3.IntegrityError("UNIQUE constraint failed")) is None
    assert database_problem(tmp_path / "x.db", ValueError("no")) is None


def test_read_only_file_in_read_only_folder_opens_for_readers_and_is_refused_to_writers(
        read_only_folder: Path) -> None:
    path = read_only_folder / "bmctl.db"
    db = open_database(path)
    db.conn.execute("insert into runs (id, command) values ('r1', 'probe')")
    db.conn.commit()
    db.close()  # the last connection: the -wal and -shm files go away
    (read_only_folder / "bmctl.db.setup.lock").unlink()
    make_read_only(path, read_only_folder)

    def attempt() -> tuple[bool, list[Any], str, str, str]:
        reader = open_database(path, readonly=True)
        rows = reader.execute("select id, command from runs").fetchall()
        with pytest.raises(DatabaseProblem) as writer:
            open_database(path)
        with pytest.raises(DatabaseProblem) as fresh:
            open_database(read_only_folder / "new.db")
        return is_read_only(reader), rows, writer.value.message, writer.value.kind, fresh.value.message

    read_only, rows, message, kind, fresh = without_file_privileges(attempt)
    assert read_only and rows == [("r1", "probe")]
    assert kind == "read-only"
    assert message == (f"database {path} is read-only: permission denied ({path}.setup.lock); "
                       f"{READ_ONLY_HINT}")
    assert fresh == (f"database {read_only_folder}/new.db cannot be created: permission denied "
                     f"({read_only_folder}/new.db.setup.lock); check the directory's permissions, or use --db")
    assert sorted(p.name for p in read_only_folder.iterdir()) == ["bmctl.db"]  # nothing written


def test_read_only_file_in_a_writable_folder_is_refused_by_sqlite_itself(tmp_path: Path) -> None:
    path = tmp_path / "bmctl.db"
    open_database(path).close()
    make_read_only(path)

    def attempt() -> tuple[str, str | None, bool]:
        with pytest.raises(DatabaseProblem) as writer:
            open_database(path)
        return writer.value.message, writer.value.detail, is_read_only(open_database(path, readonly=True))

    message, detail, reader_ok = without_file_privileges(attempt)
    # SQLite opened the write-protected file read-only without a word: the check's write says so.
    assert message == f"database {path} is read-only: attempt to write a readonly database; {READ_ONLY_HINT}"
    assert detail is not None and "SQLITE_READONLY" in detail
    assert reader_ok


def test_a_read_only_database_with_migrations_pending_says_so(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = open_database(path)
    with db.conn:
        db.conn.execute("delete from _sqlite_migrations where name = '0002_budget_ledger'")
    db.close()
    make_read_only(path)

    def attempt() -> tuple[int, str]:
        with pytest.raises(DatabaseProblem) as caught:
            open_database(path, readonly=True)
        return caught.value.exit_code, caught.value.message

    code, message = without_file_privileges(attempt)
    assert code == ExitCode.BAD_INPUT
    assert message == (f"database {path} is read-only and needs migrating (0002_budget_ledger "
                               "pending); run any bmctl command once with write access to it, or use --db")
    path.chmod(0o644)  # writable again: a reader migrates it, as before
    assert "0002_budget_ledger" in store_db.applied_migrations(open_database(path, readonly=True))


# --- the real CLI, in-process -------------------------------------------------------------------

@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return start_sandbox(tmp_path / "world")


WRITERS = [
    ["update-price", LID, "99.00"],
    ["probe", LID],
    ["competitors", LID],
    ["listings"],
    ["recover"],
]
READERS = [
    ["logs", "list"], ["logs", "stats"], ["logs", "runs"], ["history", LID], ["report"], ["config", "show"],
    ["recover", "--dry-run"],
]


def test_cli_corrupt_database_every_command_one_line_exit_2_nothing_sent(sandbox: Sandbox) -> None:
    random_bytes_file(sandbox.db)
    for args in [*WRITERS, *READERS[:-2], ["recover", "--dry-run"], ["logs", "prune", "--older-than", "1d"]]:
        result = sandbox.run(*args)
        assert result.exit_code == 2, (args, result.stderr)
        assert error_line(result) == f"bmctl: error: database {sandbox.db} {CORRUPT}", args
        assert result.stdout == ""
    assert sandbox.seen == []
    verbose = sandbox.run("--verbose", "logs", "list")
    assert verbose.stderr.splitlines()[1] == "sqlite3.DatabaseError: file is not a database (SQLITE_NOTADB)"
    assert "internal error" not in "".join(sandbox.outputs)


def test_cli_directory_as_db(sandbox: Sandbox) -> None:
    sandbox.db.mkdir()
    for args in (["probe", LID], ["logs", "list"], ["history", LID]):
        result = sandbox.run(*args)
        assert result.exit_code == 2, result.stderr
        assert error_line(result) == (f"bmctl: error: database {sandbox.db} is a directory; "
                                      f"give a file path, e.g. --db {sandbox.db}/bmctl.db")
    assert sandbox.seen == []


def test_cli_locked_database_writers_exit_5_readers_still_read(
        sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    assert sandbox.run("listings").exit_code == 0
    sent = len(sandbox.seen)
    monkeypatch.setattr(store_db, "BUSY_TIMEOUT_MS", 50)
    other = sqlite3.connect(sandbox.db, isolation_level=None)
    other.execute("begin exclusive")
    other.execute("insert into runs (id) values ('theirs')")
    try:
        result = sandbox.run("update-price", LID, "99.00")
        assert result.exit_code == 5, result.stderr
        assert error_line(result) == (f"bmctl: error: database {sandbox.db} is locked: database is locked "
                                      "(waited 0.05 s); another program holds it; retry, or wait longer "
                                      "with --lock-timeout SECONDS")
        assert len(sandbox.seen) == sent  # nothing sent
        listed = sandbox.run("logs", "list", "--format", "json")
        assert listed.exit_code == 0 and '"outcome"' in listed.stdout
    finally:
        other.execute("rollback")
        other.close()


def _read_only_world(sandbox: Sandbox) -> None:
    """A database with a run, log rows and a price change in it; then the file and its folder
    are made read-only."""
    assert sandbox.run("update-price", LID, "99.00").exit_code == 0
    gc.collect()  # the command's connections close: the WAL is checkpointed into the file
    for leftover in sandbox.db.parent.glob("bmctl.db.*lock"):
        leftover.unlink()
    make_read_only(sandbox.db, sandbox.db.parent)


def test_cli_read_only_database_readers_work_writers_refuse_before_sending(sandbox: Sandbox) -> None:
    _read_only_world(sandbox)
    try:
        before = sandbox.db.read_bytes()
        sent = len(sandbox.seen)

        def attempt() -> dict[str, Any]:
            results: dict[str, Any] = {}
            for args in [*READERS, *WRITERS, ["logs", "prune", "--older-than", "1d"]]:
                result = sandbox.run(*args, "--format", "json")
                results[" ".join(args)] = (result.exit_code, result.stdout, result.stderr)
            results["sent"] = len(sandbox.seen)
            return results

        results = without_file_privileges(attempt)
        for args in READERS:
            code, stdout, stderr = results[" ".join(args)]
            assert code == 0, (args, stderr)
        assert "99.00" in results[f"history {LID}"][1]
        assert '"command": "update-price"' in results["logs runs"][1]
        assert '"status": 200' in results["logs list"][1]
        for args in [*WRITERS, ["logs", "prune", "--older-than", "1d"]]:
            code, stdout, stderr = results[" ".join(args)]
            assert code == 2, (args, stderr)
            assert stderr.startswith(f"bmctl: error: database {sandbox.db} is read-only: "), (args, stderr)
            assert stderr.rstrip().endswith(READ_ONLY_HINT) and stdout == ""
        assert results["sent"] == sent  # refused before any request
        assert sandbox.db.read_bytes() == before
    finally:
        sandbox.db.parent.chmod(0o755)


def test_cli_a_corrupt_page_met_by_a_query_after_a_clean_open_is_named_too(tmp_path: Path) -> None:
    from tests.cli.helpers import invoke

    path = tmp_path / "bmctl.db"
    db = open_database(path)
    with db.conn:
        db.conn.executemany("insert into rate_limit_logs (ts, path, error) values (?, ?, ?)",
                        [("2026-11-30T00:00:00.000000Z", f"/ws/x/{n}", "e" * 200) for n in range(3000)])
    db.close()
    with path.open("r+b") as raw:  # the header and the schema stay intact: opening works
        raw.seek(4096 * 3)
        raw.write(b"\xff" * 4096 * 20)
    for args in (["logs", "list"], ["logs", "runs"], ["history", LID]):
        result = invoke(["--db", str(path), *args])
        assert result.exit_code == 2, result.stderr
        assert result.stderr == (f"bmctl: error: database {path} is corrupt: database disk image is malformed; "
                                 "move it aside and rerun; bmctl creates a new one (the request log and "
                                 "history in it are lost)\n"), args


def test_the_ledger_reads_a_read_only_database_by_wall_clock(tmp_path: Path) -> None:
    from bmctl.store.ledger import SqliteLedger
    from bmctl.traffic.buckets import DEFAULT_LIMITS
    from bmctl.traffic.clock import SimClock

    path = tmp_path / "bmctl.db"
    db = open_database(path)
    with db.conn:  # another boot's holds: one still held (by its UTC expiry), one long gone
        db.conn.executemany(
            "insert into budget_holds (bucket, kind, expires, expires_wall, boot, run_id, pid)"
            " values ('global', 'sent', 5.0, ?, 'earlier-boot', ?, 1)",
            [(1_800_000_030.0, "held"), (1_799_999_000.0, "gone")])
    db.close()
    make_read_only(path)

    def attempt() -> tuple[bool, list[Any]]:
        with SqliteLedger(path, DEFAULT_LIMITS, SimClock(wall_start=1_800_000_000.0), poll_interval=None) as ledger:
            return ledger.read_only, ledger.holders()

    read_only, holders = without_file_privileges(attempt)
    assert read_only
    assert holders == [{"bucket": "global", "run_id": "held", "pid": 1, "slots": 1, "claims": 0, "until_s": 30.0}]
