"""``bmctl doctor``'s checks (issue 15, point 6): each finds what it checks for, says it in one
line with a hint, and none raises whatever is broken."""

from __future__ import annotations

import os
import socket
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from bmctl.commands.doctor import (
    FAIL,
    OK,
    SKIPPED,
    WARN,
    Check,
    Database,
    DoctorRequest,
    LockState,
    check_config,
    check_database,
    check_host,
    check_lock,
    check_migrations,
    check_open_probes,
    check_token,
    check_user_agent,
    doctor,
    exit_code,
    load,
    read_lock,
)
from bmctl.config import Settings
from bmctl.pricing.journal import Journal
from bmctl.sandbox.world import SimWorld
from bmctl.store.db import open_database
from bmctl.store.lock import RunLock
from tests.pricing.harness import listing, money

SECRET = "tok-Zq9-DISTINCTIVE-4f1c"  # a token no message could contain by chance
GOOD_UA = "BM-Acme-bmctl;ops@acme.example"


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def write_config(path: Path, text: str, mode: int) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def opened(path: Path) -> Database:
    return check_database(path)[1]


# --- the config file ------------------------------------------------------------------------


def test_no_config_file_is_fine_and_says_so() -> None:
    check = check_config(load(None, {}, {}))
    assert (check.status, check.detail) == (OK, "no file: defaults and environment")


def test_a_file_holding_a_token_readable_by_others_fails_with_chmod_600(tmp_path: Path) -> None:
    config = write_config(tmp_path / "bmctl.toml", f'token = "{SECRET}"\n', 0o644)
    check = check_config(load(str(config), {}, {}))
    assert check.status == FAIL
    assert "0644" in check.detail and str(config) in check.detail
    assert check.hint == f"chmod 600 {config}"
    assert SECRET not in check.detail + check.hint


@pytest.mark.parametrize(("text", "mode"), [(f'token = "{SECRET}"\n', 0o600), ('market = "fr-fr"\n', 0o644)])
def test_a_private_file_or_one_without_token_passes(tmp_path: Path, text: str, mode: int) -> None:
    config = write_config(tmp_path / "bmctl.toml", text, mode)
    check = check_config(load(str(config), {}, {}))
    assert check.status == OK
    assert check.detail == f"{config} (mode {mode:04o})"


@pytest.mark.parametrize("content", [b"token = [unclosed\n", b'market = "fr-fr"\nnonsense = 1\n',
                                     'company = "Caf\u00e9"\n'.encode("latin-1")])
def test_a_broken_config_file_is_a_failed_check_and_the_rest_still_runs(tmp_path: Path, content: bytes) -> None:
    config = tmp_path / "bmctl.toml"
    config.write_bytes(content)
    checks = by_name(doctor(DoctorRequest(config=str(config), environ={"BMCTL_DB": str(tmp_path / "x.db")})))
    assert checks["config"].status == FAIL
    assert str(config) in checks["config"].detail
    # Settings without the file still tell where the database is.
    assert checks["database"].status == OK and str(tmp_path / "x.db") in checks["database"].detail
    assert checks["lock"].status == OK


def test_a_config_file_that_does_not_exist_fails(tmp_path: Path) -> None:
    check = check_config(load(str(tmp_path / "nope.toml"), {}, {}))
    assert check.status == FAIL and "does not exist" in check.detail


# --- token and User-Agent ---------------------------------------------------------------------


def test_the_token_is_shown_masked_and_never_whole() -> None:
    check = check_token(replace(Settings(token=SECRET), sources={"token": "env BMCTL_TOKEN"}))
    assert check.status == OK
    assert check.detail == f"present (***, {len(SECRET)} characters, from BMCTL_TOKEN)"
    assert not any(SECRET[-n:] in check.detail for n in range(2, len(SECRET)))  # not even its end


def test_no_token_fails_with_a_hint() -> None:
    check = check_token(Settings())
    assert check.status == FAIL and "BMCTL_TOKEN" in check.hint


def test_a_valid_user_agent_passes_and_a_built_one_is_slugified() -> None:
    assert check_user_agent(Settings(user_agent=GOOD_UA)) == Check("user_agent", OK, GOOD_UA)
    built = check_user_agent(Settings(company="Acme Corp", email="ops@acme.example"))
    assert (built.status, built.detail) == (OK, "BM-Acme_Corp-bmctl;ops@acme.example")


def test_an_invalid_user_agent_fails_against_back_market_and_warns_elsewhere() -> None:
    against_bm = check_user_agent(Settings())
    assert against_bm.status == FAIL and "company and email" in against_bm.detail
    assert "BM-<Company>-<Integration>;<email>" in against_bm.hint
    sandbox = check_user_agent(Settings(base_url="http://127.0.0.1:8765", user_agent="curl/8"))
    assert sandbox.status == WARN and "http://127.0.0.1:8765" in sandbox.detail


# --- the host: one cheap authenticated read ---------------------------------------------------


def world_settings(world: SimWorld, db: Path, **overrides: object) -> Settings:
    return world.settings(db, **overrides)  # type: ignore[no-any-return]


def test_a_reachable_host_accepting_the_token_is_one_logged_read(tmp_path: Path) -> None:
    world = SimWorld([listing("100.00", ["95.00"]), listing("50.00", [])])
    db = tmp_path / "b.db"
    check = check_host(world_settings(world, db), usable_db=True, clock=world.clock,
                       transport=world.transport, argv=["doctor"])
    assert check.status == OK, check
    assert "reachable, token accepted (2 listings" in check.detail
    conn = sqlite3.connect(db)
    logged = conn.execute("select method, path, status, run_id from rate_limit_logs").fetchall()
    runs = conn.execute("select id, command from runs").fetchall()
    assert [(m, p, s) for m, p, s, _ in logged] == [("GET", "/ws/listings", 200)]
    assert runs == [(logged[0][3], "doctor")]  # a run of its own, in the log like any other


def test_a_refused_token_is_told_apart(tmp_path: Path) -> None:
    world = SimWorld([listing("100.00", ["95.00"])])
    check = check_host(world_settings(world, tmp_path / "b.db", token=SECRET), usable_db=True,
                       clock=world.clock, transport=world.transport)
    assert check.status == FAIL
    assert check.detail == "http://sandbox.invalid answered: token refused (HTTP 401)"
    assert SECRET not in check.detail + check.hint


def test_a_closed_port_is_unreachable(tmp_path: Path) -> None:
    with socket.socket() as sock:  # bound, noted, closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(token=SECRET, base_url=f"http://127.0.0.1:{port}", db=str(tmp_path / "b.db"),
                        user_agent=GOOD_UA)
    check = check_host(settings, usable_db=True)
    assert check.status == FAIL
    assert check.detail == f"cannot connect to http://127.0.0.1:{port} (connection refused)"
    assert "base_url" in check.hint


def test_the_host_is_skipped_without_a_token_an_acceptable_user_agent_or_a_database(tmp_path: Path) -> None:
    world = SimWorld([listing("100.00", ["95.00"])])
    db = tmp_path / "b.db"
    no_token = check_host(world_settings(world, db, token=""), usable_db=True, clock=world.clock,
                          transport=world.transport)
    refused_ua = check_host(Settings(token=SECRET, db=str(db)), usable_db=True)  # Back Market, no UA
    no_db = check_host(world_settings(world, db), usable_db=False, clock=world.clock,
                       transport=world.transport)
    assert [c.status for c in (no_token, refused_ua, no_db)] == [SKIPPED] * 3
    assert "token" in no_token.hint and "user_agent" in refused_ua.hint and "database" in no_db.hint
    assert not db.exists()  # no runtime opened: nothing sent, nothing created


def test_a_bad_base_url_is_a_failed_check() -> None:
    check = check_host(Settings(token=SECRET, base_url="http://"), usable_db=True)
    assert check.status == FAIL and "base_url" in check.detail


# --- the database ------------------------------------------------------------------------------


def test_a_healthy_database_passes_every_local_check(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    open_database(path).conn.close()
    check, db = check_database(path)
    assert check.status == OK and check.detail.startswith(f"{path} (writable, ")
    assert check_migrations(db) == Check("migrations", OK, "current (0002_budget_ledger)")
    assert check_open_probes(db, LockState()).status == OK
    db.close()


def test_a_database_not_created_yet_is_fine_where_it_can_be_created(tmp_path: Path) -> None:
    check, db = check_database(tmp_path / "new" / "deeper" / "b.db")
    assert check.status == OK and "not created yet" in check.detail
    assert check_migrations(db).status == SKIPPED
    blocked = tmp_path / "a-file"
    blocked.write_text("x")
    check, _ = check_database(blocked / "b.db")
    assert check.status == FAIL and f"{blocked} is not a folder" in check.detail


def test_a_directory_is_not_a_database(tmp_path: Path) -> None:
    check, db = check_database(tmp_path)
    assert check.status == FAIL and check.detail == f"{tmp_path} is a directory, not a database file"
    assert check_migrations(db).status == SKIPPED


def test_a_corrupt_database_fails_with_a_clear_detail(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    path.write_bytes(b"this is not a database at all" * 200)
    check, db = check_database(path)
    assert check.status == FAIL and check.detail.startswith(f"{path} is corrupt")
    assert "move it aside" in check.hint  # the words every command uses for it
    assert check_open_probes(db, LockState()).status == SKIPPED


def test_a_read_only_database_fails(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    open_database(path).conn.close()
    os.chmod(path, 0o444)
    check, db = check_database(path)
    assert check.status == FAIL
    assert check.detail.startswith(f"{path} is read-only (mode 0444")
    assert "read-only commands" in check.hint
    db.close()


def test_migrations_pending_or_unknown(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    open_database(path).conn.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("delete from _sqlite_migrations where name = '0002_budget_ledger'")
    db = opened(path)
    pending = check_migrations(db)
    assert pending.status == WARN and "1 pending (0002_budget_ledger)" in pending.detail
    db.close()
    with conn:
        conn.execute("insert into _sqlite_migrations (migration_set, name, applied_at)"
                     " values ('bmctl', '0002_budget_ledger', 'x'), ('bmctl', '0099_future', 'x')")
    conn.close()
    db = opened(path)
    unknown = check_migrations(db)
    assert unknown.status == FAIL and "0099_future" in unknown.detail and unknown.hint == "upgrade bmctl"
    db.close()


# --- open probes and the lock -------------------------------------------------------------------


def test_open_probes_fail_with_the_recover_hint_unless_a_run_holds_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    store = open_database(path)
    journal = Journal(store, "killed-run", lambda: 0.0)
    for _ in range(2):
        journal.open_probe(listing_id=listing("100.00", []).id, market="fr-fr",
                           original_price=money("100.00"), floor=money("50.00"), ceiling=money("200.00"))
    store.conn.close()
    db = opened(path)
    left = check_open_probes(db, LockState())
    assert left.status == FAIL and left.detail.startswith("2 open probes left by a killed run")
    assert "bmctl recover" in left.hint
    running = check_open_probes(db, LockState(holder="4242"))
    assert running.status == WARN and "4242" in running.detail
    db.close()


def test_the_lock_is_free_or_held_by_a_pid(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    assert check_lock(read_lock(path)) == Check("lock", OK, "free")
    with RunLock(str(path), holder="bmctl probe, started 2026-11-30 01:02:03 UTC"):
        held = check_lock(read_lock(path))
        assert held.status == WARN
        assert held.detail == (f"held by pid {os.getpid()} (bmctl probe, started 2026-11-30 01:02:03"
                               " UTC): a writing run is in progress")
        assert "--lock-timeout" in held.hint
    assert check_lock(read_lock(path)).status == OK  # looking did not keep it


# --- all of them --------------------------------------------------------------------------------


def test_doctor_never_raises_whatever_is_broken(tmp_path: Path) -> None:
    config = tmp_path / "bmctl.toml"
    config.write_bytes(b"\xff\xfe not utf-8 [[[")
    os.chmod(config, 0o644)
    checks = doctor(DoctorRequest(config=str(config), environ={
        "BMCTL_TOKEN": SECRET, "BMCTL_DB": str(tmp_path), "BMCTL_BASE_URL": "http://"}))
    assert [c.name for c in checks] == ["config", "token", "user_agent", "host", "database",
                                        "migrations", "open_probes", "lock", "ledger"]
    found = by_name(checks)
    assert found["config"].status == found["database"].status == found["host"].status == FAIL
    assert exit_code(checks) == 1
    assert all(SECRET not in c.detail + c.hint for c in checks)


@pytest.mark.parametrize("with_file", [False, True])
def test_settings_unusable_even_without_the_file_skip_the_rest(tmp_path: Path, with_file: bool) -> None:
    config = write_config(tmp_path / "elsewhere.toml", 'market = "fr-fr"\n', 0o600)
    checks = doctor(DoctorRequest(config=str(config) if with_file else None,
                                  environ={"BMCTL_MARKET": "xx-xx", "BMCTL_TOKEN": SECRET}))
    assert checks[0].status == FAIL and "xx-xx" in checks[0].detail
    assert str(config) not in checks[0].detail  # the file is not what is wrong
    assert "BMCTL_" in checks[0].hint
    assert {c.status for c in checks[1:]} == {SKIPPED}


def test_only_a_failure_fails() -> None:
    assert exit_code([Check("a", OK, ""), Check("b", WARN, ""), Check("c", SKIPPED, "")]) == 0
    assert exit_code([Check("a", OK, ""), Check("b", FAIL, "")]) == 1
