"""The charts drawn under a table on a terminal (``bmctl.cli.charts``), and ``bmctl logs stats
--timeline``: the chart on a terminal, the per-minute rows everywhere else."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from bmctl.cli.charts import draw_history, price_chart, timeline_chart
from bmctl.cli.env import CliEnv
from bmctl.cli.logs import app as logs_app
from bmctl.pricing.journal import PricePoint
from tests.cli.sandbox_helpers import LID, TWO, Sandbox, start_sandbox

SGR = re.compile(r"\x1b\[[0-9;]*m")


class Terminal(io.StringIO):
    """A stdout that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def plain(line: Any) -> str:
    return "".join(char for char, _ in line)


def points(*prices: str, marks: tuple[str | None, ...] = ()) -> list[PricePoint]:
    marks = marks or (None,) * len(prices)
    return [PricePoint(f"2027-01-15T08:{i // 60:02d}:{i % 60:02d}.000000Z", price, "JPY", mark)
            for i, (price, mark) in enumerate(zip(prices, marks))]


@pytest.mark.parametrize("width", [40, 80, 120])
def test_a_price_chart_fits_its_width_and_names_its_prices(width: int) -> None:
    lines = price_chart("Price", points("15000", "14000", "16500", "14000",
                                        marks=(None, "won", "lost", "restore")), width)
    text = [plain(line) for line in lines]
    assert all(len(line) <= width for line in text)
    assert [line.split("┤")[0].strip() for line in text if "┤" in line][::7] == ["16500", "14000"]
    assert "15000" in "".join(text)  # yen: no decimals
    assert "●" in text[1 + 7] and "✗" in text[1] and "↺" in text[1 + 7]
    assert text[-1].split() == ["●", "won", "✗", "lost", "↺", "restore", "•", "other"]


def test_more_changes_than_columns_keeps_the_newest() -> None:
    many = points(*[str(14000 + i) for i in range(200)])
    text = [plain(line) for line in price_chart("Price", many, 80)]
    assert "(last 73 prices)" in text[0] and all(len(line) <= 80 for line in text)
    assert text[1].startswith("14199") and "14127" in text[-4]


def test_one_price_level_and_a_narrow_terminal() -> None:
    flat = [plain(line) for line in price_chart("Price", points("100", "100"), 80)]
    assert [line for line in flat if "┤" in line] == ["100 ┤•" + "─" * 73 + "•"]
    assert price_chart("Price", points("100", "120"), 12) == []  # no room: no chart


def test_a_single_price_is_a_note_on_stderr() -> None:
    out, err = Terminal(), io.StringIO()
    draw_history(CliEnv(stdout=out, stderr=err), {(LID, "ja-jp"): points("14000")})
    assert out.getvalue() == ""
    assert err.getvalue() == "history: one price in ja-jp (14000 JPY): nothing to chart\n"
    draw_history(CliEnv(stdout=out, stderr=err), {})
    assert out.getvalue() == ""


def test_a_terminal_that_cannot_draw_gets_a_note_not_a_crash() -> None:
    class Latin1Terminal(io.TextIOWrapper):
        def isatty(self) -> bool:
            return True

    out, err = Latin1Terminal(io.BytesIO(), encoding="latin-1"), io.StringIO()
    draw_history(CliEnv(stdout=out, stderr=err), {(LID, "ja-jp"): points("14000", "14100", "13900")})
    out.flush()
    assert out.buffer.getvalue() == b""  # type: ignore[attr-defined]
    assert "cannot draw" in err.getvalue()


def test_many_single_prices_are_one_note_not_one_per_listing() -> None:
    out, err = Terminal(), io.StringIO()
    series = {(f"{n:08x}-0000-4000-8000-000000000000", "fr-fr"): points("100") for n in range(40)}
    draw_history(CliEnv(stdout=out, stderr=err), series, name="report")
    assert out.getvalue() == ""
    assert err.getvalue() == "report: 40 listing(s) with one price only in the period: nothing to chart\n"


def test_a_timeline_marks_the_limit_and_the_minutes_over_it() -> None:
    lines = timeline_chart("competitors", [0, 30, 150, 60] + [0] * 10, 120.0, "08:00", "08:13", 1, 60)
    text = [plain(line) for line in lines]
    assert text[0] == "competitors: requests/min, peak 150, limit 120"
    # The limit names its row (the top one here: the peak is in the title); 0 the bottom.
    assert [line.split("┤")[0].strip() for line in text[1:5]] == ["120", "", "", "0"]
    assert text[1] == "120 ┤┈┈█" + "┈" * 11  # only the 150 reaches the limit's row
    lower = timeline_chart("global", [0, 30, 600, 60], 120.0, "08:00", "08:03", 1, 60)
    assert [plain(line).split("┤")[0].strip() for line in lower[1:5]] == ["600", "", "", "120"]
    over = [style for line in lines for char, style in line if char in "▁▂▃▄▅▆▇█"]
    assert over.count("red") == 4 and "green" in over  # the 150's column, in red
    assert text[-1].split() == ["08:00", "08:13"] and len(text[-1]) == len(text[-2])


# --- logs stats --timeline through the CLI -----------------------------------------------------


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    box = start_sandbox(tmp_path_factory.mktemp("timeline"))
    assert box.run("competitors", LID, TWO).exit_code == 0
    box.clock.advance(600)
    assert box.run("probe", LID, "--settle", "0").exit_code == 0
    return box


def stats_on_terminal(box: Sandbox, *args: str, columns: int, env: dict[str, str] | None = None,
                      format: str | None = None) -> tuple[str, str]:
    out, err = Terminal(), io.StringIO()
    obj = CliEnv(stdout=out, stderr=err, clock=box.clock, transport=box.transport, format_option=format)
    result = CliRunner().invoke(logs_app, ["stats", *args], obj=obj, catch_exceptions=False,
                                env={**box.env(), "COLUMNS": str(columns), "TERM": "xterm-256color",
                                     **(env or {})})
    assert result.exit_code == 0, err.getvalue()
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize("columns", [80, 120])
def test_timeline_draws_each_used_bucket_under_the_stats_table(busy: Sandbox, columns: int,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    out, err = stats_on_terminal(busy, "--timeline", "--since", "1h", columns=columns)
    charts = out[out.index("global: requests/min"):]
    assert out.index("Buckets over 1h") < out.index("global: requests/min")
    assert all(len(SGR.sub("", line)) <= columns for line in charts.splitlines())
    titles = [SGR.sub("", line) for line in charts.splitlines() if "requests/min" in line]
    assert [t.split(":")[0] for t in titles] == ["global", "competitors", "listing_writes"]
    assert "limit 1200" in titles[0] and "limit 120" in titles[1] and "limit 33.3" in titles[2]
    assert "no requests over the window in catalog" in err
    assert "\x1b[" in charts
    plain_out, _ = stats_on_terminal(busy, "--timeline", "--since", "1h", columns=columns, env={"NO_COLOR": "1"})
    assert "global: requests/min" in plain_out and "\x1b" not in plain_out


def test_without_timeline_or_a_terminal_there_is_no_chart(busy: Sandbox) -> None:
    out, _ = stats_on_terminal(busy, columns=120)
    assert "Buckets over" in out and "requests/min" not in out
    piped = busy.run("logs", "stats", "--timeline", "--format", "table")
    assert piped.exit_code == 0 and "requests/min" not in piped.stdout and "┤" not in piped.stdout


def test_timeline_in_the_machine_formats_is_the_per_minute_rows(busy: Sandbox) -> None:
    rows = json.loads(busy.run("logs", "stats", "--timeline", "--format", "json").stdout)
    assert rows and all(list(r) == ["bucket", "minute", "requests", "limit_per_min"] for r in rows)
    assert sum(r["requests"] for r in rows if r["bucket"] == "competitors") == sum(
        r["requests"] for r in json.loads(busy.run("logs", "stats", "--format", "json").stdout)
        if r["bucket"] == "competitors")
    out, _ = stats_on_terminal(busy, "--timeline", columns=80, format="ndjson")
    assert [json.loads(line) for line in out.splitlines()] == rows
    csv_out = busy.run("logs", "stats", "--timeline", "--format", "csv").stdout
    assert csv_out.splitlines()[0] == "bucket,minute,requests,limit_per_min"
    plain_stats = json.loads(busy.run("logs", "stats", "--format", "json").stdout)
    assert "minute" not in plain_stats[0] and "held_now" in plain_stats[0]  # unchanged


@pytest.mark.parametrize("args, message", [
    (["--timeline", "--since", "10"], "invalid time '10'"),
    (["--timeline", "--run", "nope"], "bad run id 'nope'"),
])
def test_bad_input_is_a_usage_error(busy: Sandbox, args: list[str], message: str) -> None:
    result = busy.run("logs", "stats", *args)
    assert result.exit_code == 2 and result.stdout == "" and message in result.stderr


def test_without_any_request_a_note_and_no_chart(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path)
    out, err = stats_on_terminal(box, "--timeline", columns=80)
    assert "requests/min" not in out and "no requests over the window: nothing to chart" in err
