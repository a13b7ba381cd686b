"""Opening the bmctl database: folder, WAL, pragmas and numbered migrations; UTC time helpers.

Only commands that use the store import this module, so importing sqlite_utils at the top is fine."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import sqlite_utils

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


def open_database(path: str | Path) -> sqlite_utils.Database:
    """Open (creating folder and file if needed) the bmctl database, in WAL mode, fully migrated."""
    memory = str(path) == ":memory:"
    if not memory:
        path = Path(path).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(str(path))
    # Wait for another process's write instead of failing at once (runs overlap with `logs`).
    db.conn.execute(f"pragma busy_timeout = {BUSY_TIMEOUT_MS}")
    with _setup_lock(None if memory else Path(path)):
        _set_up(db, memory)
    return db


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
