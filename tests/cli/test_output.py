"""Output rendering: formats, terminals, NO_COLOR, failures."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import pytest

from bmctl.cli.env import CliEnv
from bmctl.cli.output import Output


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


ROWS = [{"listing_id": "a", "price": Decimal("12.30"), "is_winning": True, "error": None},
        {"listing_id": "b", "price": Decimal("9.99"), "is_winning": False, "error": None}]


def render(format: str, rows=ROWS, stdout=None, **kwargs) -> str:  # type: ignore[no-untyped-def]
    out = stdout if stdout is not None else io.StringIO()
    env = CliEnv(stdout=out, stderr=io.StringIO(), format_option=format)
    with Output(env, kwargs.pop("columns", None), **kwargs) as sink:
        sink.emit_all(rows)
    return out.getvalue()


def test_json_keeps_amounts_as_strings() -> None:
    data = json.loads(render("json"))
    assert data[0]["price"] == "12.30" and data[0]["is_winning"] is True


def test_ndjson_and_csv_stream() -> None:
    assert [json.loads(line)["price"] for line in render("ndjson").splitlines()] == ["12.30", "9.99"]
    assert render("csv").splitlines() == ["listing_id,price,is_winning,error", "a,12.30,true,",
                                          "b,9.99,false,"]


def test_table_leaves_out_optional_columns_without_values() -> None:
    text = render("table", columns=["listing_id", "price", "error"], optional=("error",))
    assert text.splitlines()[0].split() == ["listing_id", "price"]
    failed = [ROWS[0], {**ROWS[1], "error": "HTTP 404"}]
    text = render("table", failed, columns=["listing_id", "price", "error"], optional=("error",))
    assert text.splitlines()[0].split() == ["listing_id", "price", "error"]


def test_no_color_means_no_escape_codes_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "120")
    coloured = render("table", stdout=Terminal(), title="Backbox")
    assert "\x1b[" in coloured
    monkeypatch.setenv("NO_COLOR", "1")
    plain = render("table", stdout=Terminal(), title="Backbox")
    assert "\x1b[" not in plain and "12.30" in plain and "Backbox" in plain


@pytest.mark.parametrize("format", ["json", "table", "csv", "ndjson"])
def test_a_failure_before_any_row_prints_nothing(format: str) -> None:
    out = io.StringIO()
    env = CliEnv(stdout=out, stderr=io.StringIO(), format_option=format)
    with pytest.raises(RuntimeError), Output(env, ["listing_id"]):
        raise RuntimeError("no token")
    assert out.getvalue() == ""


def test_a_failure_after_rows_still_prints_them() -> None:
    out = io.StringIO()
    env = CliEnv(stdout=out, stderr=io.StringIO(), format_option="json")
    with pytest.raises(RuntimeError), Output(env) as sink:
        sink.emit(ROWS[0])
        raise RuntimeError("401 on the second listing")
    assert [r["listing_id"] for r in json.loads(out.getvalue())] == ["a"]


def test_a_list_of_records_is_one_json_cell_in_csv() -> None:
    """A snapshot (every market's record) is JSON text in one CSV cell, not records joined by
    commas; plain lists keep the short comma form."""
    import csv

    rows = [{"listing_id": "a", "snapshot": [{"market": "fr-fr", "price": "9.99"}, {"market": "de-de"}],
             "buckets": ["global", "competitors"]}]
    (record,) = csv.DictReader(io.StringIO(render("csv", rows)))
    assert json.loads(record["snapshot"]) == rows[0]["snapshot"]
    assert record["buckets"] == "global,competitors"
