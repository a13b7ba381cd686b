"""Long waits are said on stderr, once, and --quiet hides them: the real CLI in-process over
the sandbox, in simulated time."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bmctl.traffic.transport import HttpResponse
from tests.cli.sandbox_helpers import LID, Sandbox, start_sandbox


def refuse_the_first_competitors_read(box: Sandbox) -> None:
    """The sandbox answers the first competitors request 429 with ``Retry-After: 10``."""
    respond = box.app.respond
    refused: list[Any] = []

    def first_refused(request: Any, *args: Any) -> Any:
        if not refused and "/competitors/" in request.path:
            refused.append(request)
            return HttpResponse(429, {"retry-after": "10", "content-type": "application/json"},
                                b'{"error": {"code": "too_many_requests"}}')
        return respond(request, *args)

    box.app.respond = first_refused  # type: ignore[method-assign]


def test_a_429_pause_is_said_on_stderr_and_quiet_hides_it(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path / "a")
    refuse_the_first_competitors_read(box)
    result = box.run("competitors", LID, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1  # stdout is the data, nothing else
    (line,) = [line for line in result.stderr.splitlines() if "429" in line]
    assert "competitors" in line and "10 s" in line and "Retry-After" in line

    box = start_sandbox(tmp_path / "b")
    refuse_the_first_competitors_read(box)
    quiet = box.run("--quiet", "competitors", LID, "--format", "json")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert quiet.stdout == result.stdout


def test_verbose_adds_when_the_next_attempt_goes(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path)
    refuse_the_first_competitors_read(box)
    result = box.run("--verbose", "competitors", LID, "--format", "json")
    assert result.exit_code == 0, result.stderr
    (attempt,) = [line for line in result.stderr.splitlines() if "attempt 1" in line]
    assert "[rate_limited]" in attempt and "next attempt in 10.0 s" in attempt


def test_a_lock_wait_is_said_once_with_the_holder(tmp_path: Path) -> None:
    from bmctl.store.lock import RunLock

    box = start_sandbox(tmp_path)
    with RunLock(str(box.db), holder="bmctl probe, started 2026-11-30 01:02:03 UTC"):
        result = box.run("--lock-timeout", "5", "update-price", LID, "99.00")
        quiet = box.run("--quiet", "--lock-timeout", "5", "update-price", LID, "99.00")
    assert result.exit_code == 5 and quiet.exit_code == 5
    waiting, error = result.stderr.strip().splitlines()
    assert waiting == (f"bmctl: waiting up to 5 s for the lock on {box.db} held by pid "
                       f"{os.getpid()} (bmctl probe, started 2026-11-30 01:02:03 UTC)")
    assert error.startswith("bmctl: error: another bmctl run holds the lock")
    assert "waiting" not in quiet.stderr
    assert box.seen == []
