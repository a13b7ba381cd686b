from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bmctl.store import db as dbmod
from bmctl.store.db import applied_migrations, open_database, parse_utc, utc_iso


def test_creates_folder_wal_and_tables(db_path: Path) -> None:
    assert not db_path.parent.exists()
    db = open_database(db_path)
    assert db_path.exists()
    assert db.journal_mode == "wal"
    assert db.conn.execute("pragma synchronous").fetchone()[0] == 1  # NORMAL
    assert db.conn.execute("pragma busy_timeout").fetchone()[0] >= 1000
    assert {"rate_limit_logs", "runs", "probes", "price_changes"} <= set(db.table_names())


def test_contract_columns(db) -> None:  # type: ignore[no-untyped-def]
    columns = {t: {c.name: c.type.upper() for c in db[t].columns} for t in
               ("rate_limit_logs", "runs", "probes", "price_changes")}
    assert list(columns["rate_limit_logs"]) == [
        "id", "run_id", "ts", "method", "route", "path", "listing_id", "market", "buckets",
        "priority", "attempt", "status", "outcome", "queue_wait_ms", "latency_ms", "retry_after",
        "error"]
    assert list(columns["runs"]) == [
        "id", "command", "argv", "started_at", "finished_at", "duration_s", "exit_code",
        "requests", "pid", "version"]
    assert db["runs"].pks == ["id"]
    for name in ("original_price", "floor", "ceiling", "start_price", "dip_price",
                 "current_price", "final_price"):
        assert columns["probes"][name] == "TEXT"
    for name in ("old_price", "new_price", "snapshot"):
        assert columns["price_changes"][name] == "TEXT"
    indexed = {t: {tuple(i.columns) for i in db[t].indexes} for t in
               ("rate_limit_logs", "probes", "price_changes")}
    assert {("ts",), ("run_id",)} <= indexed["rate_limit_logs"]
    assert ("listing_id",) not in indexed["rate_limit_logs"]  # measured: halves the writer
    assert ("state",) in indexed["probes"]
    assert ("listing_id", "ts") in indexed["price_changes"]


def test_migrations_recorded_and_idempotent(db_path: Path) -> None:
    db = open_database(db_path)
    assert applied_migrations(db) == [name for name, _ in dbmod.MIGRATIONS]
    db.conn.execute("insert into runs (id, command) values ('r1', 'probe')")
    db.conn.commit()
    db.close()
    again = open_database(db_path)
    assert applied_migrations(again) == [name for name, _ in dbmod.MIGRATIONS]
    assert again.conn.execute("select count(*) from runs").fetchone()[0] == 1
    assert not dbmod.build_migrations().pending(again)


def test_a_new_migration_is_applied_once(db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_database(db_path).close()
    calls = []

    def m2(db) -> None:  # type: ignore[no-untyped-def]
        calls.append(1)
        db.conn.execute("alter table runs add column host text")

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*dbmod.MIGRATIONS, ("0002_host", m2)])
    db = open_database(db_path)
    open_database(db_path).close()
    assert calls == [1]
    assert applied_migrations(db)[-1] == "0002_host"
    assert "host" in db["runs"].columns_dict


def test_failed_migration_rolls_back_and_stays_pending(db_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    open_database(db_path).close()

    def broken(db) -> None:  # type: ignore[no-untyped-def]
        db.conn.execute("create table half_done (x)")
        raise RuntimeError("boom")

    monkeypatch.setattr(dbmod, "MIGRATIONS", [*dbmod.MIGRATIONS, ("0002_broken", broken)])
    with pytest.raises(RuntimeError):
        open_database(db_path)
    raw = sqlite3.connect(db_path)
    assert raw.execute("select count(*) from sqlite_master where name = 'half_done'").fetchone()[0] == 0


def test_utc_iso_format_and_round_trip() -> None:
    assert utc_iso(0) == "1970-01-01T00:00:00.000000Z"
    assert utc_iso(1_800_000_000.25) == "2027-01-15T08:00:00.250000Z"
    # rounding up to the next second carries over instead of printing .1000000
    assert utc_iso(1_799_999_999.9999996) == "2027-01-15T08:00:00.000000Z"
    for wall in (1_800_000_000.123456, 1_700_000_000.5, 86_400.000001):
        assert parse_utc(utc_iso(wall)) == pytest.approx(wall, abs=1e-6)
    assert sorted([utc_iso(w) for w in (3.0, 1.5, 2.25)]) == [utc_iso(w) for w in (1.5, 2.25, 3.0)]


def test_parse_utc_variants() -> None:
    assert parse_utc("2027-01-15") == 1_799_971_200.0
    assert parse_utc("2027-01-15T08:00:00") == 1_800_000_000.0
    assert parse_utc("2027-01-15T09:00:00+01:00") == 1_800_000_000.0
    assert parse_utc("2027-01-15T08:00:00.5Z") == 1_800_000_000.5


def test_processes_opening_a_fresh_database_at_once_all_succeed(tmp_path: Path) -> None:
    """Was a bug: commands started together on a new database raced to switch it to WAL and
    migrate it, and a loser failed at once with "database is locked"."""
    import subprocess
    import sys
    import time

    code = ("import sys, time; from bmctl.store.db import open_database; "
            "t = float(sys.argv[2]);\nwhile time.time() < t: pass\nopen_database(sys.argv[1])")
    for attempt in range(2):
        path = tmp_path / f"fresh{attempt}.db"
        start = time.time() + 1.0
        procs = [subprocess.Popen([sys.executable, "-c", code, str(path), str(start)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(6)]
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0] * 6, errors
        assert dbmod.applied_migrations(dbmod.open_database(path)) == [name for name, _ in dbmod.MIGRATIONS]
