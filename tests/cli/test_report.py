"""``bmctl report``: what repricing earned, checked by hand on a journal written row by row, and
against the probe runs that produced it."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bmctl.api.money import Money
from bmctl.cli.env import CliEnv
from bmctl.pricing.journal import Journal
from bmctl.store.db import open_database
from bmctl.traffic.clock import SimClock
from tests.cli.helpers import invoke
from tests.cli.sandbox_helpers import LID, TWO, start_sandbox

A = "aaaaaaaa-1111-4111-8111-111111111111"
B = "bbbbbbbb-2222-4222-8222-222222222222"
DAY = 86400.0


def eur(text: str) -> Money:
    return Money.parse(text, "EUR")


def written_journal(path: Path, clock: SimClock) -> None:
    """Probes and changes of A (EUR) and B (JPY), one 8 days old, the rest within 7 days."""
    db = open_database(path)
    now = clock.wall()
    at = [now - 8 * DAY]
    journal = Journal(db, "run-1", lambda: at[0])

    def probe(listing: str, market: str, currency: str, outcome: str, final: str | None,
              dip: str | None = None, floor: str = "80.00", ceiling: str = "150.00") -> None:
        journal.record_result({"listing_id": listing, "market": market, "currency": currency,
                               "outcome": outcome, "start_price": final, "dip_price": dip,
                               "final_price": final, "floor": floor, "ceiling": ceiling, "writes": 0})

    probe(A, "fr-fr", "EUR", "won", "140.00", dip="81.00")  # too old: left out
    at[0] = now - 3 * DAY
    probe(A, "fr-fr", "EUR", "won", "109.99", dip="94.99")
    journal.record_change(listing_id=A, market="fr-fr", old_price=eur("100.00"), new_price=eur("94.99"),
                          reason="dip", status="updated")
    journal.record_change(listing_id=A, market="fr-fr", old_price=eur("94.99"), new_price=eur("109.99"),
                          reason="peak", status="updated")
    at[0] = now - 2 * DAY
    probe(A, "fr-fr", "EUR", "kept", "109.99")
    probe(A, "fr-fr", "EUR", "lost", "100.00", dip="90.00")
    journal.record_change(listing_id=A, market="fr-fr", old_price=eur("109.99"), new_price=eur("90.00"),
                          reason="dip", status="updated")
    journal.record_change(listing_id=A, market="fr-fr", old_price=eur("90.00"), new_price=eur("100.00"),
                          reason="restore", status="updated")
    journal.record_change(listing_id=A, market="fr-fr", old_price=eur("100.00"), new_price=eur("100.00"),
                          reason="restore", status="error")
    at[0] = now - 1 * DAY
    probe(A, "fr-fr", "EUR", "unwinnable", "100.00")
    probe(A, "fr-fr", "EUR", "skipped", None)
    probe(B, "ja-jp", "JPY", "won", "14500", dip="14000", floor="12000", ceiling="20000")
    db.close()


def report(path: Path, clock: SimClock, *args: str) -> Any:
    result = invoke(["report", *args], {"BMCTL_DB": str(path)}, clock=clock)
    assert result.exit_code == 0, result.stderr
    return result


def test_every_figure_by_hand(tmp_path: Path) -> None:
    clock = SimClock()
    path = tmp_path / "bmctl.db"
    written_journal(path, clock)
    rows = json.loads(report(path, clock, "--since", "7d", "--format", "json").stdout)
    assert [(r["listing_id"], r["market"], r["currency"]) for r in rows] == [(A, "fr-fr", "EUR"), (B, "ja-jp", "JPY")]
    a, b = rows
    # won, kept, lost, unwinnable decide; skipped does not. won + kept hold the Backbox.
    assert (a["probes"], a["probes_won"], a["backbox_share"]) == (4, 2, "0.5000")
    assert (a["price_changes"], a["writes"]) == (4, 5)  # the error write spent budget, changed nothing
    # (109.99 + 109.99 + 100.00 + 100.00) / 4 = 104.995 -> 105.00 (half up); (105 - 80) / 70.
    assert (a["avg_price"], a["avg_floor"], a["avg_ceiling"]) == ("105.00", "80.00", "150.00")
    assert a["range_position"] == "0.3571"
    assert (a["peak_margin"], a["peak_wins"]) == ("15.00", 1)  # 109.99 - 94.99; the lost dip is no win
    assert a["war_rounds"] == 3  # the won dip, the lost one, the unwinnable
    assert (b["probes"], b["backbox_share"], b["avg_price"], b["peak_margin"], b["range_position"]) == (
        1, "1.0000", "14500", "500", "0.3125")
    assert list(a) == ["listing_id", "market", "currency", "probes", "probes_won", "backbox_share",
                       "price_changes", "writes", "avg_price", "avg_floor", "avg_ceiling",
                       "range_position", "peak_margin", "peak_wins", "war_rounds"]
    # A shorter period, one listing, one market.
    recent = json.loads(report(path, clock, "--since", "36h", "--format", "json").stdout)
    assert [(r["listing_id"], r["probes"], r["writes"]) for r in recent] == [(A, 1, 0), (B, 1, 0)]
    only_b = json.loads(report(path, clock, "--market", "ja-jp", "--format", "json").stdout)
    assert [r["listing_id"] for r in only_b] == [B]
    assert [r["listing_id"] for r in json.loads(report(path, clock, B.upper(), "--format", "json").stdout)] == [B]


def test_csv_and_ndjson_carry_every_field_and_money_as_decimal_strings(tmp_path: Path) -> None:
    clock = SimClock()
    path = tmp_path / "bmctl.db"
    written_journal(path, clock)
    rows = list(csv.DictReader(io.StringIO(report(path, clock, "--format", "csv").stdout)))
    assert rows[0]["avg_price"] == "105.00" and rows[1]["peak_margin"] == "500"
    lines = report(path, clock, "--format", "ndjson").stdout.splitlines()
    assert [json.loads(line)["listing_id"] for line in lines] == [A, B]
    assert isinstance(json.loads(lines[0])["avg_price"], str)


def test_an_empty_period_is_an_empty_array_and_exit_0(tmp_path: Path) -> None:
    clock = SimClock()
    path = tmp_path / "bmctl.db"
    written_journal(path, clock)
    clock.advance(30 * DAY)
    result = report(path, clock, "--format", "json")
    assert json.loads(result.stdout) == [] and "no probe or price change" in result.stderr
    bad = invoke(["report", "--since", "7"], {"BMCTL_DB": str(path)}, clock=clock)
    assert bad.exit_code == 2 and "7" in bad.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_a_table_and_a_chart_per_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    clock = SimClock()
    path = tmp_path / "bmctl.db"
    written_journal(path, clock)
    from bmctl.cli.report import report as command

    single = typer.Typer()
    single.command()(command)
    single.command("other")(lambda: None)  # two commands: the name is given as on the real CLI
    out, err = Terminal(), io.StringIO()
    obj = CliEnv(clock=clock, stdout=out, stderr=err)
    result = CliRunner().invoke(single, ["report"], obj=obj, catch_exceptions=False,
                                env={"BMCTL_DB": str(path), "COLUMNS": "80", "TERM": "xterm"})
    assert result.exit_code == 0, err.getvalue()
    text = out.getvalue()
    assert "What repricing earned since" in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "Price of aaaaaaaa in fr-fr (EUR)" in text  # A's four decided probes over time
    assert "●" in text and "✗" in text
    assert "\x1b[" not in text


def test_the_report_agrees_with_the_probe_runs_that_wrote_it(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path)
    rows: list[dict[str, Any]] = []
    for _ in range(3):
        result = box.run("probe", LID, TWO, "--settle", "0", "--format", "json")
        assert result.exit_code == 0, result.stderr
        rows += json.loads(result.stdout)
        box.clock.advance(DAY)
    report_rows = json.loads(box.run("report", "--since", "4d", "--format", "json").stdout)
    for line in report_rows:
        mine = [r for r in rows if (r["listing_id"], r["market"]) == (line["listing_id"], line["market"])]
        decided = [r for r in mine if r["outcome"] in ("won", "kept", "lost", "unwinnable")]
        assert line["probes"] == len(decided)
        assert line["probes_won"] == sum(r["outcome"] in ("won", "kept") for r in decided)
        assert line["writes"] == sum(r["writes"] for r in mine)
        gained = sum((Decimal(r["final_price"]) - Decimal(r["dip_price"])
                      for r in decided if r["outcome"] == "won" and r["dip_price"]), start=Decimal(0))
        assert Decimal(line["peak_margin"]) == gained
    assert {(r["listing_id"], r["market"]) for r in report_rows} == {(r["listing_id"], r["market"]) for r in rows}


def test_a_capped_dip_counts_as_a_probe_not_won_and_is_no_price_war_round(tmp_path: Path) -> None:
    clock = SimClock()
    path = tmp_path / "bmctl.db"
    db = open_database(path)
    journal = Journal(db, "run-1", lambda: clock.wall() - 60)
    journal.record_result({"listing_id": A, "market": "fr-fr", "currency": "EUR", "outcome": "capped",
                           "start_price": "100.00", "dip_price": "95.00", "final_price": "95.00",
                           "floor": "80.00", "ceiling": "150.00", "writes": 1})
    db.close()
    (row,) = json.loads(report(path, clock, "--format", "json").stdout)
    assert (row["probes"], row["probes_won"], row["backbox_share"]) == (1, 0, "0.0000")
    assert (row["peak_margin"], row["peak_wins"], row["war_rounds"]) == ("0.00", 0, 0)
