from __future__ import annotations

import json
import os
import re

from bmctl import __version__
from bmctl.store.log_writer import LogWriter
from bmctl.store.logs import list_runs
from bmctl.store.runs import finish_run, new_run_id, redact_argv, start_run

from .conftest import WALL0, attempt


def test_run_ids_sort_by_time_and_are_unique() -> None:
    first = new_run_id(WALL0)
    assert re.fullmatch(r"20270115T080000Z-[0-9a-f]{6}", first)
    assert new_run_id(WALL0 + 1) > first
    assert len({new_run_id(WALL0) for _ in range(50)}) == 50


def test_start_and_finish_run(db) -> None:  # type: ignore[no-untyped-def]
    run_id = start_run(db, "probe", ["probe", "L1", "--floor", "9.99"], wall=WALL0)
    row = db["runs"].get(run_id)
    assert row["command"] == "probe"
    assert json.loads(row["argv"]) == ["probe", "L1", "--floor", "9.99"]
    assert row["started_at"] == "2027-01-15T08:00:00.000000Z"
    assert row["pid"] == os.getpid() and row["version"] == __version__
    assert row["finished_at"] is None
    [live] = list_runs(db)
    assert live["requests"] == 0
    with LogWriter(db, run_id) as log:
        for _ in range(3):
            log.record(attempt())
    with LogWriter(db, "other-run") as log:
        log.record(attempt())
    assert list_runs(db)[0]["requests"] == 3  # counted live while the run has not finished
    finish_run(db, run_id, 4, wall=WALL0 + 12.5)
    row = db["runs"].get(run_id)
    assert row["finished_at"] == "2027-01-15T08:00:12.500000Z"
    assert row["duration_s"] == 12.5 and row["exit_code"] == 4 and row["requests"] == 3


def test_list_runs_newest_first_with_limit(db) -> None:  # type: ignore[no-untyped-def]
    ids = [start_run(db, f"cmd{i}", [], wall=WALL0 + i) for i in range(5)]
    runs = list_runs(db, limit=3)
    assert [r["id"] for r in runs] == ids[::-1][:3]
    assert set(runs[0]) >= {"id", "command", "started_at", "duration_s", "requests", "exit_code"}


def test_secrets_never_stored(db) -> None:  # type: ignore[no-untyped-def]
    token = "s3cr3t-T0KEN"
    argv = ["--token", "other-secret", "--token=abc", f"--header=Authorization: Basic {token}",
            token, "--api-key", "k", "probe", "L1"]
    run_id = start_run(db, "probe", argv, redact=[token, ""])
    stored = db["runs"].get(run_id)["argv"]
    assert token not in stored and "other-secret" not in stored and "abc" not in stored
    assert json.loads(stored) == ["--token", "***", "--token=***",
                                  "--header=Authorization: Basic ***", "***", "--api-key", "***",
                                  "probe", "L1"]


def test_redact_longest_secret_first() -> None:
    assert redact_argv(["abcdef"], ["abc", "abcdef"]) == ["***"]
