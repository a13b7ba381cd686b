"""Run records (``runs``): one row per bmctl command that touched the store."""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from typing import Any, Iterable, Sequence

from bmctl.store.db import database_errors, database_path, parse_utc, utc_iso

REDACTED = "***"
# Options whose value is a secret whatever it is: `--token X` / `--token=X` never reach the table
# even when the caller forgot to pass the token in `redact`.
_SECRET_OPTION = re.compile(r"^--?(token|password|passwd|secret|api[-_]?key|auth(orization)?)$", re.I)
_SECRET_ASSIGN = re.compile(r"^(--?(?:token|password|passwd|secret|api[-_]?key|auth(?:orization)?)=).+$", re.I)


def new_run_id(wall: float | None = None) -> str:
    """A run id that sorts by start time: ``20261128T015300Z-3f9a1c`` (UTC second + 6 random hex)."""
    seconds = int(time.time() if wall is None else wall)
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds)) + "-" + secrets.token_hex(3)


RUN_ID_PATTERN = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{6}$")


def validate_run_id(text: str) -> str:
    """``text`` if it is a run id as ``new_run_id`` makes them; bad usage (exit 2) otherwise."""
    value = text.strip()
    if not RUN_ID_PATTERN.match(value):
        from bmctl.errors import UsageError

        raise UsageError(f"bad run id {text!r}: a run id looks like 20261128T015300Z-3f9a1c"
                         " (see bmctl logs runs)")
    return value


def redact_argv(argv: Sequence[str], redact: Iterable[str] = ()) -> list[str]:
    """``argv`` with every secret string, and the value of any token-like option, replaced by ``***``."""
    # Longest first, so a secret that contains another is replaced whole.
    secrets_ = sorted({s for s in redact if s}, key=len, reverse=True)
    out: list[str] = []
    hide_next = False
    for raw in argv:
        arg = str(raw)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        for secret in secrets_:
            arg = arg.replace(secret, REDACTED)
        if _SECRET_OPTION.match(arg):
            hide_next = True
        else:
            arg = _SECRET_ASSIGN.sub(lambda m: m.group(1) + REDACTED, arg)
        out.append(arg)
    return out


def start_run(
    db: Any,
    command: str,
    argv: Sequence[str],
    wall: float | None = None,
    redact: Iterable[str] = (),
) -> str:
    """Record the start of a run (argv as JSON, secrets replaced by ``***``); returns its run id."""
    from bmctl import __version__

    wall = time.time() if wall is None else wall
    run_id = new_run_id(wall)
    with database_errors(database_path(db)), db.conn:
        db.conn.execute(
            "insert into runs (id, command, argv, started_at, pid, version) values (?, ?, ?, ?, ?, ?)",
            (run_id, command, json.dumps(redact_argv(argv, redact)), utc_iso(wall), os.getpid(),
             __version__),
        )
    return run_id


def finish_run(db: Any, run_id: str, exit_code: int, wall: float | None = None) -> None:
    """Close a run: finish time, duration, exit code and the number of log rows it wrote."""
    wall = time.time() if wall is None else wall
    with database_errors(database_path(db)), db.conn:
        row = db.conn.execute("select started_at from runs where id = ?", (run_id,)).fetchone()
        duration = None
        if row is not None and row[0]:
            duration = round(max(0.0, wall - parse_utc(row[0])), 6)
        db.conn.execute(
            "update runs set finished_at = ?, duration_s = ?, exit_code = ?,"
            " requests = (select count(*) from rate_limit_logs where run_id = ?) where id = ?",
            (utc_iso(wall), duration, int(exit_code), run_id, run_id),
        )


ABANDONED = -1  # exit code recorded for a run whose process died without closing its record


def unfinished_runs(db: Any, since_wall: float, exclude: str) -> list[tuple[str, int | None]]:
    """Runs started since ``since_wall`` that never recorded their end: still going, or killed."""
    rows = db.conn.execute(
        "select id, pid from runs where finished_at is null and id != ? and started_at >= ?",
        (exclude, utc_iso(since_wall)),
    ).fetchall()
    return [(row[0], row[1]) for row in rows]


def close_dead_runs(db: Any, runs: list[tuple[str, int | None]], wall: float | None = None) -> list[str]:
    """Record the end of runs whose process is gone (exit code ``ABANDONED``): ``logs runs``
    then tells a killed run from one still going."""
    closed = []
    for run_id, pid in runs:
        if pid is not None and (pid == os.getpid() or process_alive(pid)):
            continue
        finish_run(db, run_id, ABANDONED, wall)
        closed.append(run_id)
    return closed


def process_alive(pid: int) -> bool:
    """True while a process with this pid exists on this host (someone else's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True
