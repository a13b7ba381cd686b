"""Opening the bmctl database: folder, WAL, pragmas and numbered migrations; UTC time helpers.

Only commands that use the store import this module, so importing sqlite_utils at the top is fine."""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import weakref
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlite_utils

from bmctl.errors import DatabaseLocked, DatabaseProblem, DatabaseUnusable

MIGRATION_SET = "bmctl"
BUSY_TIMEOUT_MS = 5000
CACHE_KIB = 32 * 1024
WAL_AUTOCHECKPOINT_PAGES = 16384
WAL_SIZE_LIMIT = 64 * 1024 * 1024

# --- time --------------------------------------------------------------------------------------

# One-entry cache of the formatted second: the log writer formats thousands of timestamps that
# share their second, and time.strftime is most of the cost of a row.
_last_second: tuple[int, str] = (-1, "")


def utc_iso(wall: float) -> str:
    """UTC epoch seconds -> ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (fixed width, so text order is time order)."""
    global _last_second
    # Integer microseconds first, so rounding can never produce ".1000000".
    seconds, micros = divmod(round(wall * 1_000_000), 1_000_000)
    cached_second, prefix = _last_second
    if seconds != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, prefix)
    return f"{prefix}.{micros:06d}Z"


def parse_utc(text: str) -> float:
    """ISO-8601 date or date-time -> UTC epoch seconds; ``Z`` or an offset is honoured, naive means UTC."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


# --- migrations --------------------------------------------------------------------------------

# Numbered migrations, applied in order, each in its own transaction together with its record.
# Never edit a migration that has shipped: add the next number instead.

_MIGRATION_1 = [
    """create table if not exists rate_limit_logs (
        id integer primary key,
        run_id text,
        ts text not null,
        method text,
        route text,
        path text,
        listing_id text,
        market text,
        buckets text,
        priority text,
        attempt integer,
        status integer,
        outcome text,
        queue_wait_ms real,
        latency_ms real,
        retry_after real,
        error text
    )""",
    "create index if not exists idx_rate_limit_logs_ts on rate_limit_logs (ts)",
    "create index if not exists idx_rate_limit_logs_run_id on rate_limit_logs (run_id)",
    # No index on listing_id: listing ids are random UUIDs, so every row would insert into a
    # random leaf of that index, which alone cut the writer from ~80,000 to ~40,000 rows/s.
    # `logs --listing` walks the ts index newest first instead (bounded by --since).
    """create table if not exists runs (
        id text primary key,
        command text,
        argv text,
        started_at text,
        finished_at text,
        duration_s real,
        exit_code integer,
        requests integer,
        pid integer,
        version text
    )""",
    """create table if not exists probes (
        id integer primary key,
        run_id text,
        listing_id text,
        market text,
        currency text,
        state text not null default 'open',
        original_price text,
        floor text,
        ceiling text,
        start_price text,
        dip_price text,
        current_price text,
        final_price text,
        outcome text,
        reason text,
        writes integer default 0,
        dip_seconds real,
        started_at text,
        updated_at text,
        finished_at text
    )""",
    "create index if not exists idx_probes_state on probes (state)",
    """create table if not exists price_changes (
        id integer primary key,
        run_id text,
        probe_id integer,
        ts text,
        listing_id text,
        market text,
        currency text,
        old_price text,
        new_price text,
        reason text,
        snapshot text,
        request_id text,
        status text
    )""",
    "create index if not exists idx_price_changes_listing_id_ts on price_changes (listing_id, ts)",
]


_MIGRATION_2 = [
    # The budget ledger (bmctl.store.ledger): one row per slot or claim held, on the ledger
    # clock of `boot`, with the same moment in UTC for a later boot to carry it over.
    """create table if not exists budget_holds (
        id integer primary key,
        bucket text not null,
        kind text not null,
        expires real not null,
        expires_wall real not null,
        boot text not null,
        taken_at real,
        run_id text,
        pid integer
    )""",
    "create index if not exists idx_budget_holds_bucket_expires on budget_holds (bucket, expires)",
    "create index if not exists idx_budget_holds_expires on budget_holds (expires)",
    """create table if not exists budget_pauses (
        bucket text primary key,
        until real not null,
        until_wall real not null,
        boot text not null
    )""",
]


def _run_statements(statements: list[str]) -> Callable[[sqlite_utils.Database], None]:
    def migrate(db: sqlite_utils.Database) -> None:
        # Statement by statement on the connection: executescript() would commit the
        # transaction the migration runner opened.
        for statement in statements:
            db.conn.execute(statement)

    return migrate


#: (name, function) in order; the number prefix is what makes the order visible in the record.
MIGRATIONS: list[tuple[str, Callable[[sqlite_utils.Database], None]]] = [
    ("0001_initial", _run_statements(_MIGRATION_1)),
    ("0002_budget_ledger", _run_statements(_MIGRATION_2)),
]


def build_migrations() -> Any:
    """The bmctl migration set (``sqlite_utils.migrations.Migrations``: one transaction per
    migration, recorded in ``_sqlite_migrations``)."""
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for name, fn in MIGRATIONS:
        migrations(name=name)(fn)
    return migrations


def _migrate(db: sqlite_utils.Database) -> None:
    migrations = build_migrations()
    if not migrations.pending(db):
        return  # the common case: a read-only check, no write lock taken
    try:
        migrations.apply(db)
    except sqlite3.DatabaseError:
        # Two processes opening a fresh database at once: the loser's CREATE or its migration
        # record collides with the winner's. That is fine if the winner applied everything.
        if db.conn.in_transaction:
            db.conn.rollback()
        if migrations.pending(db):
            raise


def open_database(path: str | Path, *, readonly: bool = False,
                  wait: float | None = None) -> sqlite_utils.Database:
    """Open (creating folder and file if needed) the bmctl database, in WAL mode, fully migrated
    and checked writable. ``readonly``: the caller only reads, so an existing database whose
    migrations are current is opened read-only (it works on a file this process cannot write).
    ``wait``: seconds to wait for another program's write lock (--lock-timeout; at least the
    default busy timeout). A database that cannot be used raises a ``DatabaseUnusable`` naming
    it (corrupt, locked, read-only, a directory, cannot be created), never a raw sqlite3 error."""
    busy_ms = BUSY_TIMEOUT_MS if wait is None else max(BUSY_TIMEOUT_MS, int(wait * 1000))
    if str(path) == ":memory:":
        db = sqlite_utils.Database(":memory:")
        _set_up(db, memory=True)
        return db
    path = Path(path).expanduser()
    with database_errors(path, waited=busy_ms / 1000, lock_option=wait is not None):
        if path.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if path.exists() and not path.is_file():  # /dev/null, a FIFO (opening one would block)
            raise DatabaseProblem(str(path), "not-a-file", "is not a regular file", NOT_A_FILE_HINT,
                                  detail=f"{path}: mode {oct(path.stat().st_mode)}")
        if readonly and path.exists():
            db = _open_read_only(path, busy_ms)
            applied = set(applied_migrations(db))
            pending = [name for name, _ in MIGRATIONS if name not in applied]
            if pending:
                db.close()
                db = _open_to_migrate(path, busy_ms, pending)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = _open_writable(path, busy_ms)
    # A longer wait (--lock-timeout) is for opening; later, a busy database must not stall the
    # run's traffic for that long (the log writer keeps its rows and retries instead).
    db.conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
    return db


def _open_writable(path: Path, busy_ms: int) -> sqlite_utils.Database:
    with _setup_lock(path):  # first: in a directory that cannot be written, "permission denied"
        db = sqlite_utils.Database(str(path))
        try:
            # Wait for another process's write instead of failing at once (runs overlap with `logs`).
            db.conn.execute(f"pragma busy_timeout = {busy_ms}")
            _set_up(db, memory=False)
            _check_writable(db)
        except BaseException:
            db.close()
            raise
    _label(db, path, read_only=False)
    return db


def _open_to_migrate(path: Path, busy_ms: int, pending: list[str]) -> sqlite_utils.Database:
    """A reader met a database of an older bmctl: migrate it if it can be written, else say so."""
    try:
        return _open_writable(path, busy_ms)
    except (sqlite3.Error, OSError) as error:
        problem = database_problem(path, error)
        if problem is None or problem.kind != "read-only":
            raise
        raise DatabaseProblem(
            str(path), "read-only", f"is read-only and needs migrating ({', '.join(pending)} pending)",
            MIGRATE_HINT, detail=problem.detail) from error


def _open_read_only(path: Path, busy_ms: int) -> sqlite_utils.Database:
    """Open with SQLite's ``mode=ro``: no write, no lock file, no migration."""
    db = sqlite_utils.Database(connect_read_only(path, busy_ms))
    _label(db, path, read_only=True)
    return db


def connect_read_only(path: str | Path, busy_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``) that has read the schema, so a corrupt file says so now."""
    from urllib.parse import quote

    uri = f"file:{quote(str(Path(path).absolute()))}?mode=ro"
    conn = _connect_checked(uri, busy_ms)
    if isinstance(conn, sqlite3.Error):
        # In a directory this process cannot write, a WAL database without its -shm file cannot
        # be read the shared way. With no -wal file either, the main file holds everything
        # committed: read it as immutable (no shared memory, no locks).
        if not is_read_only_error(conn) or Path(f"{path}-wal").exists():
            raise conn
        conn = _connect_checked(uri + "&immutable=1", busy_ms)
        if isinstance(conn, sqlite3.Error):
            raise conn
    return conn


def is_read_only_error(error: sqlite3.Error) -> bool:
    """SQLite refused to write (or to create the WAL's shared-memory file) for lack of permission."""
    return _code_of(error) in (_READONLY, _CANTOPEN, _PERM)


def _connect_checked(uri: str, busy_ms: int) -> sqlite3.Connection | sqlite3.Error:
    """A connection that has read the schema (SQLite opens lazily), or the error reading it."""
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    try:
        conn.execute(f"pragma busy_timeout = {busy_ms}")
        conn.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.Error as error:
        conn.close()
        return error
    return conn


def _check_writable(db: sqlite_utils.Database) -> None:
    """Fail now, before any request is sent, on a database that cannot be written: SQLite opens
    a write-protected file read-only without a word, and ``begin immediate`` succeeds on it;
    only a write says so. Rewriting ``user_version`` and rolling back changes nothing."""
    conn = db.conn
    conn.execute("begin immediate")  # waits busy_timeout for another writer, then "locked"
    try:
        (version,) = conn.execute("pragma user_version").fetchone()
        conn.execute(f"pragma user_version = {int(version)}")
    finally:
        conn.execute("rollback")


# Where each database open_database returned lives, and whether it was opened read-only.
_OPENED: "weakref.WeakKeyDictionary[sqlite_utils.Database, tuple[str, bool]]" = weakref.WeakKeyDictionary()


_last_opened: list[str] = []  # the file open_database opened last in this process


def _label(db: sqlite_utils.Database, path: Path, *, read_only: bool) -> None:
    _OPENED[db] = (str(path), read_only)
    _last_opened[:] = [str(path)]


def problem_of_last_database(error: BaseException) -> DatabaseUnusable | None:
    """A sqlite3 error no store function translated (a query met a corrupt page after the
    database opened fine) as the problem of the database this process opened last; None if
    it is not about a database file, or none was opened."""
    return database_problem(_last_opened[0], error) if _last_opened else None


def database_path(db: Any) -> str:
    """The file a database opened by :func:`open_database` lives in (for error messages)."""
    return _OPENED.get(db, ("(unknown)", False))[0]


def is_read_only(db: Any) -> bool:
    """True for a database :func:`open_database` opened read-only."""
    return _OPENED.get(db, ("", False))[1]


# --- problems with the database file ------------------------------------------------------------

# SQLite's primary result codes (sqlite3.h) that describe the database file, not a statement.
_PERM, _BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 3, 5, 6, 8, 10, 11, 13, 14, 26
CORRUPT_HINT = "move it aside and rerun; bmctl creates a new one (the request log and history in it are lost)"
READ_ONLY_HINT = "check the file's and its directory's permissions, or use --db"
MIGRATE_HINT = "run any bmctl command once with write access to it, or use --db"
DIRECTORY_HINT = "give a file path, e.g. --db {path}/bmctl.db"
CREATE_HINT = "check the directory's permissions, or use --db"
NOT_A_FOLDER_HINT = "give --db a path inside a directory"
NOT_A_FILE_HINT = "give --db the path of a database file"
FULL_HINT = "free some disk space, or use --db"
LOCKED_HINT = "another program holds it; retry"


def _code_of(error: sqlite3.Error) -> int | None:
    code = getattr(error, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def database_problem(path: str | Path, error: BaseException, *, waited: float | None = None,
                     lock_option: bool = False) -> DatabaseUnusable | None:
    """What ``error`` (sqlite3 or OS) says about the database at ``path``, as the error a user
    sees; None when it is not about the database file (a bug, an SQL error)."""
    where = str(path)
    if isinstance(error, sqlite3.Error):
        code = _code_of(error)
        reason = str(error)
        detail = f"sqlite3.{type(error).__name__}: {error} ({getattr(error, 'sqlite_errorname', '?')})"
    elif isinstance(error, OSError):
        code = None
        reason = (error.strerror or str(error)).lower()
        if error.filename is not None and str(error.filename) != where:
            reason += f" ({error.filename})"
        detail = f"{type(error).__name__}: {error}"
    else:
        return None
    exists = os.path.lexists(where)
    if os.path.isdir(where):
        return DatabaseProblem(where, "directory", "is a directory", DIRECTORY_HINT.format(path=where), detail=detail)
    if code in (_BUSY, _LOCKED):
        hint = LOCKED_HINT + (", or wait longer with --lock-timeout SECONDS" if lock_option else "")
        if waited is not None:
            reason += f" (waited {waited:g} s)"
        return DatabaseLocked(where, "locked", f"is locked: {reason}", hint, detail=detail)
    if code in (_CORRUPT, _NOTADB):
        return DatabaseProblem(where, "corrupt", f"is corrupt: {reason}", CORRUPT_HINT, detail=detail)
    if code == _FULL or getattr(error, "errno", None) == errno.ENOSPC:
        return DatabaseProblem(where, "full", f"cannot be written: {reason}", FULL_HINT, detail=detail)
    denied = code in (_READONLY, _PERM, _CANTOPEN) or getattr(error, "errno", None) in (
        errno.EACCES, errno.EPERM, errno.EROFS)
    if denied and exists:
        return DatabaseProblem(where, "read-only", f"is read-only: {reason}", READ_ONLY_HINT, detail=detail)
    if denied or getattr(error, "errno", None) in (errno.ENOTDIR, errno.EEXIST, errno.ENOENT):
        hint = CREATE_HINT
        if isinstance(error, OSError) and error.errno in (errno.ENOTDIR, errno.EEXIST):
            reason, hint = f"{error.filename} is not a directory", NOT_A_FOLDER_HINT
        return DatabaseProblem(where, "cannot-create", f"cannot be created: {reason}", hint, detail=detail)
    if code == _IOERR or isinstance(error, OSError):
        return DatabaseProblem(where, "io", f"cannot be read or written: {reason}", READ_ONLY_HINT, detail=detail)
    return None


@contextmanager
def database_errors(path: str | Path, *, waited: float | None = None, lock_option: bool = False) -> Iterator[None]:
    """Turn a sqlite3 or OS error about the database at ``path`` into the one-line error that
    names it (:func:`database_problem`); any other error passes unchanged."""
    try:
        yield
    except (sqlite3.Error, OSError) as error:
        problem = database_problem(path, error, waited=waited, lock_option=lock_option)
        if problem is None:
            raise
        raise problem from error


@contextmanager
def _setup_lock(path: Path | None) -> Iterator[None]:
    """Serialise opening among processes (``<db>.setup.lock``): several commands started at
    once on a fresh database would otherwise race to switch it to WAL and migrate it, and the
    losers' upgrades from a read to a write fail at once with "database is locked"."""
    if path is None:
        yield
        return
    import fcntl

    fd = os.open(f"{path}.setup.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _set_up(db: sqlite_utils.Database, memory: bool) -> None:
    if not memory:
        # WAL: readers (`bmctl logs`) never block the writing run, and commits are cheap.
        db.enable_wal()
    # NORMAL is durable across process crashes in WAL mode; only a power cut can lose the last
    # commits, which is the right trade for a request log written in batches.
    db.conn.execute("pragma synchronous = NORMAL")
    # Fewer checkpoints (each one fsyncs) and a page cache that holds the hot index pages: both
    # measured to roughly double the log writer's rows/s. The WAL is truncated back after a
    # checkpoint so it does not stay at its high-water mark.
    db.conn.execute(f"pragma cache_size = -{CACHE_KIB}")
    db.conn.execute(f"pragma wal_autocheckpoint = {WAL_AUTOCHECKPOINT_PAGES}")
    db.conn.execute(f"pragma journal_size_limit = {WAL_SIZE_LIMIT}")
    _migrate(db)


def applied_migrations(db: sqlite_utils.Database) -> list[str]:
    """Names of the bmctl migrations recorded in the database, in the order they were applied."""
    return [m.name for m in build_migrations().applied(db)]
