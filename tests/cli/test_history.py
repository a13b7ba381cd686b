"""``bmctl history``: every listing's changes (``--since``, ``--run``, ``--market``), the Backbox
snapshot in the machine formats, and the price chart drawn under the table on a terminal."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Iterator

import pytest
import typer
from typer.testing import CliRunner

from bmctl.cli.env import CliEnv
from bmctl.cli.prices import history
from tests.cli.sandbox_helpers import LID, TWO, Sandbox, start_sandbox


class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Two probe runs a day apart (the second raises back: raise_back_after is a day) over LID
    and TWO, then, an hour later, an update-price of TWO in de-de: LID's history holds a dip
    that won, peaks that lost and their undos."""
    sandbox = start_sandbox(tmp_path_factory.mktemp("history"))
    for gap in (86400, 3600):
        assert sandbox.run("probe", LID, TWO, "--settle", "0", "--format", "json").exit_code == 0
        sandbox.clock.advance(gap)
    assert sandbox.run("--market", "de-de", "update-price", TWO, "219.00", "--format", "json").exit_code == 0
    yield sandbox
    sandbox.server.stop()


def changes(box: Sandbox, *args: str) -> list[dict[str, Any]]:
    result = box.run("history", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def runs(box: Sandbox) -> list[dict[str, Any]]:
    return json.loads(box.run("logs", "runs", "--format", "json").stdout)


def test_without_an_id_every_listing_newest_first(box: Sandbox) -> None:
    rows = changes(box)
    assert {r["listing_id"] for r in rows} == {LID, TWO}
    assert [r["ts"] for r in rows] == sorted((r["ts"] for r in rows), reverse=True)
    assert rows[0]["listing_id"] == TWO and rows[0]["market"] == "de-de"  # the update, last
    assert len(rows) == len(changes(box, LID)) + len(changes(box, TWO))
    assert len(changes(box, "-n", "2")) == 2


def test_the_table_without_an_id_has_a_listing_id_column(box: Sandbox) -> None:
    table = box.run("history", "--format", "table")
    assert table.exit_code == 0, table.stderr
    assert table.stdout.splitlines()[0].split()[:2] == ["ts", "listing_id"]
    assert "backbox" not in table.stdout and "snapshot" not in table.stdout  # compact


def test_since_run_and_market_narrow_it(box: Sandbox) -> None:
    every = changes(box)
    recent = changes(box, "--since", "30m")
    assert recent and [r for r in every if r["ts"] >= recent[-1]["ts"]] == recent
    assert all(r["reason"] == "update" for r in recent)  # only the update is that recent
    assert len(changes(box, "--since", "90m")) > len(recent)
    probe_runs = [r["id"] for r in runs(box) if r["command"] == "probe"]
    first = changes(box, "--run", probe_runs[-1])
    assert first and {r["run_id"] for r in first} == {probe_runs[-1]}
    assert len(first) < len(every)
    german = changes(box, "--market", "de-de")
    assert [(r["listing_id"], r["market"], r["new_price"]) for r in german] == [(TWO, "de-de", "219.00")]
    assert changes(box, LID, "--market", "de-de") == []
    assert {r["market"] for r in changes(box, "--market", "FR-FR")} == {"fr-fr"}


@pytest.mark.parametrize("args, message", [
    (["--since", "yesterday"], "invalid time 'yesterday'"),
    (["--since", "10"], "invalid time '10'"),
    (["--run", "not-a-run"], "bad run id 'not-a-run'"),
    (["--market", "xx-xx"], "unknown market 'xx-xx'"),
])
def test_bad_input_is_a_usage_error(box: Sandbox, args: list[str], message: str) -> None:
    result = box.run("history", *args)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("bmctl: error: ") and message in result.stderr


def test_json_rows_carry_the_backbox_snapshot_of_each_change(box: Sandbox) -> None:
    rows = changes(box, LID)
    dip = rows[-1]  # the oldest: the first probe's dip, decided on a Backbox it did not win
    assert dip["reason"] == "dip" and dip["new_price"] == "94.99"
    assert dip["backbox"] == {
        "listing_id": LID, "market": "fr-fr", "currency": "EUR", "price": "100.00",
        "min_price": "80.00", "price_to_win": "94.99", "winner_price": "95.00",
        "is_winning": False, "product_id": dip["backbox"]["product_id"],
    }
    assert dip["snapshot"] == [dip["backbox"]]  # every market's record as stored
    update = changes(box, TWO, "--market", "de-de")[0]
    assert update["backbox"] is None and update["snapshot"] is None  # not decided on a Backbox read
    ndjson = box.run("history", LID, "--format", "ndjson").stdout.splitlines()
    assert json.loads(ndjson[-1])["backbox"] == dip["backbox"]
    (last,) = list(csv.DictReader(io.StringIO(box.run("history", LID, "-n", "1", "--format", "csv").stdout)))
    assert json.loads(last["backbox"])["market"] == "fr-fr"


# --- the chart --------------------------------------------------------------------------------


def on_terminal(box: Sandbox, *args: str, columns: int, env: dict[str, str] | None = None,
                format: str | None = None) -> tuple[str, str]:
    """``bmctl history ARGS`` with stdout on a terminal of ``columns`` columns: (stdout, stderr)."""
    app = typer.Typer()
    app.command()(history)
    app.command("other")(lambda: None)  # two commands: the name is given as on the real CLI
    out, err = Terminal(), io.StringIO()
    obj = CliEnv(stdout=out, stderr=err, clock=box.clock, transport=box.transport, format_option=format)
    result = CliRunner().invoke(app, ["history", *args], obj=obj, catch_exceptions=False,
                                env={**box.env(), "COLUMNS": str(columns), "TERM": "xterm-256color",
                                     **(env or {})})
    assert result.exit_code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


def chart_of(text: str) -> list[str]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "Price of" in line)
    return lines[start:]


@pytest.mark.parametrize("columns", [80, 120])
def test_history_of_one_listing_draws_its_price_under_the_table(box: Sandbox, columns: int,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out, _ = on_terminal(box, LID, columns=columns)
    chart = chart_of(out)
    assert out.index("History of") < out.index("Price of")  # under the table
    assert all(len(_plain(line)) <= columns for line in chart)
    text = "\n".join(_plain(line) for line in chart)
    for marker, name in (("●", "won"), ("✗", "lost"), ("↺", "restore")):
        assert text.count(marker) >= 2 and f"{marker} {name}" in text  # on the chart and in the legend
    axis = [line.split("┤")[0].strip() for line in text.splitlines() if "┤" in line]
    assert axis[0] == "150.00" and axis[-1] == "94.99" and "100.00" in axis  # Decimal, cents
    times = [line for line in text.splitlines() if ":" in line and "┤" not in line and "Price" not in line]
    # MM-DD HH:MM under the axis: the two runs are a day apart.
    assert times and all(len(t) == 5 for t in times[0].split()) and "-" in times[0]
    assert "\x1b[" in out  # coloured on a terminal


def _plain(line: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", line)


def test_no_color_means_no_escape_at_all(box: Sandbox) -> None:
    out, _ = on_terminal(box, LID, columns=100, env={"NO_COLOR": "1"})
    assert "Price of" in out and "●" in out and "\x1b" not in out


def test_no_chart_in_pipes_machine_formats_or_over_several_listings(box: Sandbox) -> None:
    piped = box.run("history", LID, "--format", "table")
    assert piped.exit_code == 0 and "History of" not in piped.stdout
    assert "94.99" in piped.stdout and "Price of" not in piped.stdout and "┤" not in piped.stdout
    for fmt in ("json", "ndjson", "csv"):
        out, _ = on_terminal(box, LID, columns=80, format=fmt)
        assert "94.99" in out and "Price of" not in out and "┤" not in out
    several, _ = on_terminal(box, columns=120)
    assert "Price changes" in several and "Price of" not in several
