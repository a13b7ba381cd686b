"""``bmctl doctor`` through the real CLI (issue 15, point 6): one line per check with ✓/✗ and a
hint, 80 columns, the token never shown, machine formats, exit 0 only when nothing failed."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bmctl.cli.doctor import render
from bmctl.cli.env import CliEnv
from bmctl.cli.main import app
from bmctl.commands.doctor import FAIL, OK, SKIPPED, WARN, Check
from tests.cli.sandbox_helpers import Sandbox, start_sandbox

SECRET = "tok-Zq9-DISTINCTIVE-4f1c"
GOOD_UA = "BM-Acme-bmctl;ops@acme.example"
NAMES = ["config", "token", "user_agent", "host", "database", "migrations", "open_probes", "lock", "ledger"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    # A deep folder: the database path alone is longer than half a line.
    return start_sandbox(tmp_path / ("deep-folder-" * 4) / "for" / "a" / "long" / "path", token=SECRET)


def healthy(sandbox: Sandbox) -> dict[str, str]:
    return {"BMCTL_USER_AGENT": GOOD_UA}


def test_all_pass_is_exit_0_one_line_per_check(sandbox: Sandbox) -> None:
    result = sandbox.run("doctor", "--format", "table", env=healthy(sandbox))
    assert result.exit_code == 0, result.stdout
    heads = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert [line.split()[1] for line in heads] == NAMES
    assert all(line.startswith("✓ ") for line in heads), result.stdout
    assert "hint:" not in result.stdout
    assert "reachable, token accepted" in result.stdout
    assert result.stderr == ""
    assert sandbox.seen == [("GET", "/ws/listings")]  # one cheap read


def test_one_failure_is_exit_1_with_its_hint(sandbox: Sandbox) -> None:
    result = sandbox.run("doctor", "--format", "table",
                         env={**healthy(sandbox), "BMCTL_TOKEN": "not-the-token-at-all"})
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    host = next(i for i, line in enumerate(lines) if line.split()[1] == "host")
    assert lines[host].startswith("✗ host ") and "HTTP 401" in lines[host]
    assert lines[host + 1].startswith("  hint: check the token")
    assert sum(line.startswith("✗") for line in lines) == 1


def test_pipes_get_json_like_every_command(sandbox: Sandbox) -> None:
    result = sandbox.run("doctor", env=healthy(sandbox))
    assert result.exit_code == 0
    assert [row["check"] for row in json.loads(result.stdout)] == NAMES


def test_warnings_and_skipped_checks_do_not_fail(sandbox: Sandbox) -> None:
    # The sandbox is on loopback: an invalid User-Agent there is only a warning.
    result = sandbox.run("doctor", "--format", "table", env={"BMCTL_USER_AGENT": "curl/8"})
    assert result.exit_code == 0, result.stdout
    assert "! user_agent " in result.stdout


@pytest.mark.parametrize("fmt", ["table", "json", "ndjson", "csv"])
def test_the_token_never_appears(sandbox: Sandbox, tmp_path: Path, fmt: str) -> None:
    config = tmp_path / "bmctl.toml"
    config.write_text(f'token = "{SECRET}"\n', encoding="utf-8")
    os.chmod(config, 0o644)  # a failure that names the file holding the token
    sandbox.config = config
    for env in ({}, {"BMCTL_TOKEN": ""}, {"BMCTL_TOKEN": SECRET + "x"}):
        result = sandbox.run("doctor", "--format", fmt, env=env)
        assert result.exit_code == 1
        assert SECRET not in result.stdout + result.stderr
    # A table wraps the hint's path at 80 columns; the machine formats keep it whole.
    assert (f"chmod 600 {config}" if fmt != "table" else "hint: chmod 600 /") in result.stdout


@pytest.mark.parametrize("columns", [80, 120])
def test_every_line_fits_the_terminal(sandbox: Sandbox, tmp_path: Path, columns: int) -> None:
    broken = tmp_path / "bmctl.toml"
    broken.write_text('token = "x"\nmarket = "fr-fr"\nthis_key_does_not_exist = "and it makes a long message"\n')
    for env in (healthy(sandbox), {"BMCTL_TOKEN": "", "BMCTL_CONFIG": str(broken)},
                {"BMCTL_USER_AGENT": "curl/8", "BMCTL_BASE_URL": "http://127.0.0.1:1"}):
        result = sandbox.run("doctor", "--format", "table", env={**env, "COLUMNS": str(columns)})
        lines = result.stdout.splitlines()
        assert len(lines) >= len(NAMES)
        assert max(len(line) for line in lines) <= columns, result.stdout
    assert str(sandbox.db) in result.stdout.replace("\n" + " " * 15, "")  # wrapped, never cut short


@pytest.mark.parametrize("fmt", ["json", "ndjson", "csv"])
def test_machine_formats_give_one_row_per_check(sandbox: Sandbox, fmt: str) -> None:
    result = sandbox.run("doctor", "--format", fmt, env={"BMCTL_USER_AGENT": "curl/8"})
    assert result.exit_code == 0
    if fmt == "json":
        rows = json.loads(result.stdout)
    elif fmt == "ndjson":
        rows = [json.loads(line) for line in result.stdout.splitlines()]
    else:
        rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [list(row) for row in rows] == [["check", "status", "detail", "hint"]] * len(NAMES)
    assert [row["check"] for row in rows] == NAMES
    assert {row["status"] for row in rows} <= {OK, WARN, FAIL, SKIPPED}
    assert next(row for row in rows if row["check"] == "user_agent")["status"] == WARN


def test_a_non_utf8_terminal_gets_ok_and_fail(sandbox: Sandbox) -> None:
    runner = CliRunner(charset="ascii")
    result = runner.invoke(app, ["doctor", "--format", "table"], env={**sandbox.env(), "BMCTL_TOKEN": "wrong-token"},
                           obj=CliEnv(clock=sandbox.clock, transport=sandbox.transport),
                           catch_exceptions=False)
    assert result.exit_code == 1
    assert "OK   config " in result.stdout and "FAIL host " in result.stdout
    assert "\\u" not in result.stdout and "?" not in result.stdout.split()[0]


def test_bad_usage_is_still_exit_2() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--no-such-option"])
    assert result.exit_code == 2


def test_nothing_wrong_needs_no_traceback_even_when_everything_is(tmp_path: Path) -> None:
    config = tmp_path / "bmctl.toml"
    config.write_bytes(b"\xff\xfe[[[")
    env = {"BMCTL_CONFIG": str(config), "BMCTL_DB": str(tmp_path), "BMCTL_TOKEN": SECRET,
           "BMCTL_BASE_URL": "http://"}
    result = CliRunner().invoke(app, ["doctor", "--format", "table"], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    assert "Traceback" not in result.stdout + result.stderr and "internal error" not in result.stderr
    assert [line.split()[1] for line in result.stdout.splitlines() if not line.startswith(" ")] == NAMES


# --- rendering ----------------------------------------------------------------------------------


class Tty(io.StringIO):
    encoding = "utf-8"

    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TERM", raising=False)
    def colour(stream: Any) -> bool:
        return CliEnv(stdout=stream).stdout_color

    assert colour(Tty()) and not colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "")
    assert not colour(Tty())
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert not colour(Tty())
    checks = [Check("lock", OK, "free"), Check("token", FAIL, "none", "set it")]
    assert "\x1b[" in render(checks, color=True)
    assert "\x1b" not in render(checks, color=False)


def test_render_wraps_long_details_and_hints_under_themselves() -> None:
    checks = [Check("database", FAIL, "/very/" + "long/" * 30 + "bmctl.db is read-only (mode 0444)",
                    "chmod u+w it and its folder, or point --db elsewhere; " * 3),
              Check("ok_check", OK, "fine", "a hint an ok check does not show")]
    text = render(checks, width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0].startswith("✗ database  /very/long/")
    assert lines[1].startswith(" " * 12) and lines[1].strip()
    hint = [line for line in lines if line.startswith("  hint: ")]
    assert len(hint) == 1 and "does not show" not in text
    assert render(checks, width=80, unicode=False).startswith("FAIL database  ")


def test_the_encoding_decides_the_symbols() -> None:
    def unicode(encoding: str) -> bool:
        return CliEnv(stdout=io.TextIOWrapper(io.BytesIO(), encoding=encoding)).unicode()

    assert unicode("utf-8") and not unicode("latin-1") and not unicode("ascii")


@pytest.mark.parametrize(("script", "says", "hint"), [
    (["waf"], "Cloudflare", "cf-ray"),  # a 403: reachable, but refused
    (["error", "error"], "HTTP 5", "retry later"),  # every attempt failed: neither of the above
])
def test_other_refusals_and_failures_are_told_apart(tmp_path: Path, script: list[str], says: str,
                                                    hint: str) -> None:
    box = start_sandbox(tmp_path, token=SECRET, script=script)
    result = box.run("doctor", "--format", "json", env={"BMCTL_USER_AGENT": GOOD_UA})
    assert result.exit_code == 1
    host = next(row for row in json.loads(result.stdout) if row["check"] == "host")
    assert host["status"] == FAIL and says in host["detail"] and hint in host["hint"]
    assert "cannot connect" not in host["detail"] and "401" not in host["detail"]
    assert len(box.seen) == len(script)  # doctor gives up after two attempts, not five


def test_an_unreachable_host_fails_and_verbose_shows_the_attempt(tmp_path: Path) -> None:
    import socket

    with socket.socket() as sock:  # bound, noted, closed: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {"BMCTL_TOKEN": SECRET, "BMCTL_BASE_URL": f"http://127.0.0.1:{port}",
           "BMCTL_DB": str(tmp_path / "b.db"), "BMCTL_USER_AGENT": GOOD_UA}
    result = CliRunner().invoke(app, ["doctor", "-v", "--format", "table"], env=env, catch_exceptions=False)
    assert result.exit_code == 1
    host = next(line for line in result.stdout.splitlines() if line.startswith("✗ host "))
    assert host.endswith(f"cannot connect to http://127.0.0.1:{port} (connection refused)")
    assert "GET /ws/listings attempt 1: connection refused" in result.stderr
    assert SECRET not in result.stdout + result.stderr
