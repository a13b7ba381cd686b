"""Every command's table in a real pseudo-terminal at 80 and 120 columns, against the sandbox
served over HTTP: no line wider than the terminal, no id, price, market or outcome split over
two lines (each cell of a fixed column is one whole value of the same command's JSON), short
ids, NO_COLOR, TERM=dumb, and a progress line that never lands inside streamed rows."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from bmctl.cli.layout import FREE_TEXT, compact, short_ids
from bmctl.cli.output import _cell
from tests.e2e.test_sandbox_e2e import Served, bmctl_command, clean_env, start_server, stop_server
from tests.pty_helpers import Screen, run_in_terminal

WIDTHS = (80, 120)
VOLATILE = ("rate_per_s", "held_now")  # they move with the clock between two runs
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, Path]]:
    home = tmp_path_factory.mktemp("terminal-home")
    served = start_server("--settle", "0", home=home)
    try:
        yield served, home
    finally:
        stop_server(served.process)


def environment(world: tuple[Served, Path], **extra: str) -> dict[str, str]:
    served, home = world
    base = {"TERM": "xterm-256color", **extra}
    return clean_env(BMCTL_TOKEN="sandbox", BMCTL_BASE_URL=served.url, BMCTL_DB=str(home / "t.db"),
                     HOME=str(home), XDG_CONFIG_HOME=str(home / "cfg"),
                     XDG_DATA_HOME=str(home / "data"), BMCTL_USER_AGENT="BM-tests-bmctl;t@example.com",
                     **base)


def piped(world: tuple[Served, Path], *args: str) -> Any:
    result = subprocess.run([*bmctl_command(), *args, "--format", "json"], capture_output=True,
                            text=True, timeout=60, env=environment(world))
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def table_columns(lines: list[str]) -> tuple[int, dict[str, tuple[int, int]]]:
    """(index of the rule line, {header name: (start, end)}) of the first table on screen. A
    header may wrap at its underscores over several lines; a title is capitalised."""
    rule = next(i for i, line in enumerate(lines) if line.startswith("─"))
    spans = [(m.start(), m.end()) for m in re.finditer("─+", lines[rule])]

    def is_header(line: str) -> bool:
        outside = "".join(ch for k, ch in enumerate(line) if not any(s <= k < e for s, e in spans))
        return bool(line.strip()) and not outside.strip() and all(
            re.fullmatch(r"[a-z0-9_]*", line[s:e].strip()) for s, e in spans)

    top = rule
    while top > 0 and is_header(lines[top - 1]):
        top -= 1
    names = {"".join(lines[j][s:e].strip() for j in range(top, rule)): (s, e) for s, e in spans}
    return rule, names


def assert_fits_and_whole(screen: Screen, width: int, rows: list[dict[str, Any]]) -> None:
    lines = screen.lines()
    assert "Traceback" not in screen.raw and "internal error" not in screen.raw, screen.raw
    too_long = [line for line in lines if len(line) > width]
    assert not too_long, f"lines wider than {width}: {too_long}"
    if not rows:
        return
    rule, columns = table_columns(lines)
    cells = [[_cell(v) for v in row.values()] for row in rows]
    ids = short_ids(cells)
    checked = 0
    for name, (start, end) in columns.items():
        if name in FREE_TEXT or name in VOLATILE or name not in rows[0]:
            continue
        expected = {compact(_cell(row[name]), ids) for row in rows}
        for line in lines[rule + 1:]:
            if not line.strip() or line.startswith("("):
                break
            cell = line[start:end].strip()
            assert cell == "" or cell in expected, f"{name}: {cell!r} is not a whole value at {width}"
            checked += 1
    assert checked, "no fixed column was checked"
    for full in {m.group(0) for row in rows for v in row.values() for m in UUID.finditer(str(v))}:
        assert full not in screen.raw, "a terminal shows short ids"


@pytest.fixture(scope="module")
def listing_ids(world: tuple[Served, Path]) -> list[str]:
    listings = piped(world, "listings")
    ids = [row["id"] for row in listings]
    # Something in the history, the request log and the runs.
    subprocess.run([*bmctl_command(), "probe", *ids[:3], "--settle", "0", "--format", "json"],
                   capture_output=True, text=True, timeout=120, env=environment(world), check=False)
    return ids


READ_ONLY = [
    ("listings",),
    ("competitors", "{0}", "{1}"),  # two listings, a row per market each competes in
    ("history", "{0}"),
    ("logs", "list", "-n", "15"),
    ("logs", "stats"),
    ("logs", "runs"),
    ("config", "show"),
    ("report",),
]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", READ_ONLY, ids=lambda c: " ".join(c[:2]))
def test_read_only_tables_fit_and_keep_values_whole(world: tuple[Served, Path], listing_ids: list[str],
                                                    command: tuple[str, ...], width: int) -> None:
    args = [part.format(*listing_ids) for part in command]
    rows = piped(world, *args)
    if isinstance(rows, dict):  # config show: nested JSON; its table's cells are checked in tests/cli
        rows = []
    screen = run_in_terminal([*bmctl_command(), *args], columns=width, env=environment(world))
    assert screen.exit_code == 0, screen.raw
    assert all(len(line) <= width for line in screen.lines()), screen.lines()
    # Quiet: the table alone on the screen (no summary or note under it) for the cell check.
    quiet = run_in_terminal([*bmctl_command(), "-q", *args], columns=width, env=environment(world))
    assert_fits_and_whole(quiet, width, rows)


@pytest.mark.parametrize("width", WIDTHS)
def test_probe_update_and_recover_tables_fit(world: tuple[Served, Path], listing_ids: list[str],
                                             width: int) -> None:
    env = environment(world)
    for args in (["probe", *listing_ids[3:6], "--settle", "0"], ["doctor"],
                 ["probe", *listing_ids[:4], "--dry-run"],
                 ["update-price", listing_ids[6], "1.00", "--dry-run", "--allow-big-change"],
                 ["recover", "--dry-run"]):
        screen = run_in_terminal([*bmctl_command(), *args], columns=width, env=env)
        assert screen.exit_code in (0, 1), screen.raw
        lines = screen.lines()
        assert all(len(line) <= width for line in lines), (args, [ln for ln in lines if len(ln) > width])
        assert "Traceback" not in screen.raw, screen.raw


def test_term_dumb_uses_the_terminal_width(world: tuple[Served, Path], listing_ids: list[str]) -> None:
    """TERM=dumb says nothing about the width: a 120-column terminal gets its 120 columns."""
    screen = run_in_terminal([*bmctl_command(), "competitors", *listing_ids[:4]], columns=120,
                             env=environment(world, TERM="dumb"))
    assert max(len(line) for line in screen.lines()) > 80
    assert all(len(line) <= 120 for line in screen.lines())


def test_no_color_means_no_escape_sequence_at_all(world: tuple[Served, Path], listing_ids: list[str]) -> None:
    """Tables, warnings and the progress line (bold label included): not one ANSI sequence."""
    env = environment(world, NO_COLOR="1")
    for args in (["probe", *listing_ids[6:8], "--settle", "0"], ["logs", "stats"]):
        screen = run_in_terminal([*bmctl_command(), *args], columns=80, env=env)
        assert "\x1b" not in screen.raw, (args, screen.raw[:400])


def test_the_progress_line_never_lands_inside_streamed_rows(world: tuple[Served, Path],
                                                           listing_ids: list[str]) -> None:
    """ndjson on a terminal with the progress line on the same terminal: every row a screen
    shows is whole JSON, and the progress line ends on its own line."""
    screen = run_in_terminal([*bmctl_command(), "probe", *listing_ids[:5], "--settle", "0",
                              "--format", "ndjson"], columns=80, env=environment(world))
    lines = screen.lines()
    rows = [line for line in lines if line.startswith("{")]
    assert len(rows) == 5, lines
    for line in rows:
        json.loads(line)
    assert not [line for line in lines if "probing" in line and "{" in line]
    assert any(line.startswith("probing") and "5/5" in line for line in lines)
