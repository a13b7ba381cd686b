"""The everyday commands (competitors, listings, update-price, history) through the real CLI
against the sandbox marketplace served over HTTP on 127.0.0.1."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from bmctl.sandbox.catalogue import generate_catalogue
from tests.cli.sandbox_helpers import JP, LID, TWO, UNKNOWN, Sandbox, start_sandbox

COMPETITOR_FIELDS = ["listing_id", "market", "currency", "price", "min_price", "price_to_win",
                     "winner_price", "is_winning"]
UPDATE_FIELDS = ["listing_id", "market", "currency", "old_price", "new_price", "status", "reason"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path)
    try:
        yield box
    finally:
        box.server.stop()


@pytest.fixture
def make_sandbox(tmp_path: Path) -> Iterator:
    started: list[Sandbox] = []

    def make(**kwargs) -> Sandbox:  # type: ignore[no-untyped-def]
        box = start_sandbox(tmp_path / f"s{len(started)}", **kwargs)
        started.append(box)
        return box

    yield make
    for box in started:
        box.server.stop()


def one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("bmctl: error: "), lines[0]
    return lines[0]


# --- competitors --------------------------------------------------------------------------------


def test_competitors_json_one_object_per_listing_and_market(sandbox: Sandbox) -> None:
    result = sandbox.run("competitors", LID, TWO, "--format", "json")
    assert result.exit_code == 0, result.stderr
    # stderr: only the batch's summary line (nothing went wrong).
    assert result.stderr == "competitors: 3 ok; 0 write(s), 0 × 429 met; 0 s\n"
    rows = json.loads(result.stdout)
    assert [list(row) for row in rows] == [COMPETITOR_FIELDS] * 3
    by_key = {(r["listing_id"], r["market"]): r for r in rows}
    assert set(by_key) == {(LID, "fr-fr"), (TWO, "fr-fr"), (TWO, "de-de")}
    assert by_key[(LID, "fr-fr")] == {
        "listing_id": LID, "market": "fr-fr", "currency": "EUR", "price": "100.00",
        "min_price": "80.00", "price_to_win": "94.99", "winner_price": "95.00", "is_winning": False,
    }
    assert by_key[(TWO, "fr-fr")]["is_winning"] is True
    assert by_key[(TWO, "fr-fr")]["winner_price"] == "200.00"
    assert by_key[(TWO, "de-de")]["min_price"] is None
    assert by_key[(TWO, "de-de")]["price_to_win"] == "204.99"
    assert [s for s in sandbox.seen] == [("GET", f"/ws/backbox/v1/competitors/{LID}"),
                                         ("GET", f"/ws/backbox/v1/competitors/{TWO}")]


def test_competitors_and_history_read_ids_from_stdin(sandbox: Sandbox) -> None:
    result = sandbox.run("competitors", "-", "--format", "json", input=f"# ids\n{LID}\n\n{TWO}\n{LID}\n")
    assert result.exit_code == 0, result.stderr
    assert sorted({row["listing_id"] for row in json.loads(result.stdout)}) == [LID, TWO]
    assert sandbox.run("update-price", LID, "99.00").exit_code == 0
    history = sandbox.run("history", "-", "--format", "json", input=f"{LID}\n")
    assert history.exit_code == 0, history.stderr
    assert [c["new_price"] for c in json.loads(history.stdout)] == ["99.00"]
    sent = len(sandbox.seen)
    for args, text, message in [(["competitors", "-"], f"{LID}\nnope\n", "<stdin> line 2"),
                                (["competitors", "-"], "\n", "no listing ids"),
                                (["history", "-"], f"{LID}\n{TWO}\n", "one listing id; stdin held 2")]:
        bad = sandbox.run(*args, input=text)
        assert bad.exit_code == 2 and message in one_line_error(bad), args
    assert len(sandbox.seen) == sent


def test_competitors_jpy_amounts_have_no_decimals(sandbox: Sandbox) -> None:
    result = sandbox.run("--market", "ja-jp", "competitors", JP, "--format", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["market"] == "ja-jp" and row["currency"] == "JPY"
    assert row["price"] == "15000" and row["price_to_win"] == "13999"


def test_competitors_formats(sandbox: Sandbox) -> None:
    ndjson = sandbox.run("competitors", TWO, "--format", "ndjson")
    assert ndjson.exit_code == 0
    lines = ndjson.stdout.splitlines()
    assert len(lines) == 2 and all(list(json.loads(line)) == COMPETITOR_FIELDS for line in lines)

    as_csv = sandbox.run("competitors", TWO, "--format", "csv")
    assert as_csv.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert len(rows) == 2
    assert [r["market"] for r in rows] == ["fr-fr", "de-de"]
    assert rows[0]["price"] == "200.00" and rows[1]["min_price"] == ""

    table = sandbox.run("competitors", TWO, "--format", "table", env={"NO_COLOR": "1"})
    assert table.exit_code == 0
    head, *body = table.stdout.splitlines()
    assert head.split()[:len(COMPETITOR_FIELDS)] == COMPETITOR_FIELDS
    assert len(body) == 2 and "fr-fr" in body[0] and "200.00" in body[0]
    assert "\x1b[" not in table.stdout + table.stderr


def test_default_format_outside_a_terminal_is_json(sandbox: Sandbox) -> None:
    result = sandbox.run("competitors", LID)
    assert result.exit_code == 0
    assert isinstance(json.loads(result.stdout), list)


def test_competitors_unknown_listing_is_exit_1_with_the_reason(sandbox: Sandbox) -> None:
    result = sandbox.run("competitors", UNKNOWN, LID, "--format", "json")
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    failed = [r for r in rows if r.get("error")]
    assert len(failed) == 1 and failed[0]["listing_id"] == UNKNOWN
    assert "404" in failed[0]["error"] and "not found" in failed[0]["error"]
    assert [r["listing_id"] for r in rows if not r.get("error")] == [LID]  # the others still done
    assert UNKNOWN in result.stderr and "not found" in result.stderr


def test_competitors_asks_once_per_listing_and_says_when_one_competes_nowhere(sandbox: Sandbox) -> None:
    with sandbox.server.lock:
        sandbox.app.marketplace.set_quantity(LID, 0)
    result = sandbox.run("competitors", LID, LID.upper(), "--format", "json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == []
    assert "not competing" in result.stderr
    assert len(sandbox.seen) == 1


def test_competitors_table_shows_the_error_column_only_on_failure(sandbox: Sandbox) -> None:
    ok = sandbox.run("competitors", LID, "--format", "table")
    assert "error" not in ok.stdout.splitlines()[0]
    failed = sandbox.run("competitors", UNKNOWN, "--format", "table")
    assert failed.exit_code == 1
    assert failed.stdout.splitlines()[0].split()[-1] == "error"
    assert "not found" in failed.stdout


def test_competitors_failure_reason_is_kept_in_csv(sandbox: Sandbox) -> None:
    result = sandbox.run("competitors", UNKNOWN, "--format", "csv")
    assert result.exit_code == 1
    (row,) = list(csv.DictReader(io.StringIO(result.stdout)))
    assert row["listing_id"] == UNKNOWN
    assert "not found" in row["error"]


# --- listings -----------------------------------------------------------------------------------


@pytest.fixture
def big(tmp_path: Path) -> Iterator[Sandbox]:
    box = start_sandbox(tmp_path, generate_catalogue(120, markets=("fr-fr",), seed=4))
    with box.server.lock:
        for index, listing in enumerate(box.app.marketplace.listings()):
            if index % 10 == 0:
                box.app.marketplace.set_publication_state(listing.id, 3)
    try:
        yield box
    finally:
        box.server.stop()


def _expected(box: Sandbox, *, min_quantity: int | None = None, state: int | None = None) -> list[str]:
    with box.server.lock:
        return [item.id for item in box.app.marketplace.listings()
                if (min_quantity is None or item.quantity >= min_quantity)
                and (state is None or item.publication_state == state)]


def test_listings_reads_every_page(big: Sandbox) -> None:
    result = big.run("listings", "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == _expected(big)
    assert len(rows) == 120
    pages = [s for s in big.seen if s == ("GET", "/ws/listings")]
    assert len(pages) == 3  # 50 + 50 + 20
    for key in ("id", "sku", "price", "min_price", "max_price", "quantity", "currency",
                "publication_state", "title", "product_id", "grade", "state", "warranty_delay",
                "comment", "listing_id", "backmarket_id"):
        assert key in rows[0]
    assert isinstance(rows[0]["listing_id"], int) and isinstance(rows[0]["warranty_delay"], int)
    assert isinstance(rows[0]["price"], str) and rows[0]["currency"] == "EUR"
    assert rows[0]["market"] == "fr-fr"


def test_listings_filters_and_limit(big: Sandbox) -> None:
    result = big.run("listings", "--min-quantity", "6", "--format", "ndjson")
    assert result.exit_code == 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == _expected(big, min_quantity=6)
    assert rows and all(r["quantity"] >= 6 for r in rows)

    result = big.run("listings", "--publication-state", "3", "--format", "json")
    assert [r["id"] for r in json.loads(result.stdout)] == _expected(big, state=3) != []

    before = len(big.seen)
    result = big.run("listings", "--limit", "7", "--format", "csv")
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["id"] for r in rows] == _expected(big)[:7]
    assert len(big.seen) - before == 1  # one page of 7, not 50


@pytest.mark.parametrize("args", [["--limit", "0"], ["--publication-state", "9"],
                                  ["--min-quantity", "-1"], ["--limit", "many"]])
def test_listings_bad_options_send_nothing(sandbox: Sandbox, args: list[str]) -> None:
    result = sandbox.run("listings", *args)
    assert result.exit_code == 2
    assert sandbox.seen == []


def test_listings_table(sandbox: Sandbox) -> None:
    result = sandbox.run("listings", "--format", "table")
    assert result.exit_code == 0
    head, *body = result.stdout.splitlines()
    assert head.split() == ["id", "sku", "price", "min_price", "max_price", "quantity", "currency",
                            "publication_state"]
    assert len(body) == 2  # the fr-fr listings


# --- update-price -------------------------------------------------------------------------------


def test_update_price_reads_first_then_writes_and_records(sandbox: Sandbox) -> None:
    result = sandbox.run("update-price", LID, "97.50", "--format", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert list(row) == UPDATE_FIELDS
    assert row | {"reason": None} == {
        "listing_id": LID, "market": "fr-fr", "currency": "EUR", "old_price": "100.00",
        "new_price": "97.50", "status": "updated", "reason": None,
    }
    assert sandbox.seen == [("GET", f"/ws/listings/{LID}"), ("POST", f"/ws/listings/{LID}")]
    assert sandbox.price(LID) == "97.50"

    again = sandbox.run("update-price", LID, "97.5", "--format", "json")
    assert again.exit_code == 0
    assert json.loads(again.stdout)[0]["status"] == "unchanged"
    assert len(sandbox.writes()) == 1  # nothing sent for an unchanged price


def test_update_price_guard_refuses_big_changes_without_force(sandbox: Sandbox) -> None:
    refused = sandbox.run("update-price", LID, "140.00", "--format", "json")
    assert refused.exit_code == 1
    (row,) = json.loads(refused.stdout)
    assert row["status"] == "refused" and "30" in row["reason"] and "--allow-big-change" in row["reason"]
    assert sandbox.writes() == [] and sandbox.price(LID) == "100.00"
    assert LID in refused.stderr

    down = sandbox.run("update-price", LID, "60", "--format", "json")
    assert down.exit_code == 1 and json.loads(down.stdout)[0]["status"] == "refused"

    forced = sandbox.run("update-price", LID, "140.00", "--force", "--format", "json")
    assert forced.exit_code == 0, forced.stderr
    assert json.loads(forced.stdout)[0]["status"] == "updated"
    assert sandbox.price(LID) == "140.00"


def test_update_price_just_inside_the_guard_is_allowed(sandbox: Sandbox) -> None:
    result = sandbox.run("update-price", LID, "130.00", "--format", "json")  # exactly 30 %
    assert result.exit_code == 0, result.stdout
    assert sandbox.price(LID) == "130.00"


def test_update_price_guard_is_exact_not_rounded(sandbox: Sandbox) -> None:
    # 220.00 -> 153.99 is a 30.0045 % cut: rounded to 0.01 it looks like 30.00 %, but it is over.
    over = sandbox.run("--market", "de-de", "update-price", TWO, "153.99", "--format", "json")
    assert over.exit_code == 1
    (row,) = json.loads(over.stdout)
    assert row["status"] == "refused"
    assert "max_change_pct 30%" in row["reason"] and "30.0%" not in row["reason"]
    assert sandbox.price(TWO, "de-de") == "220.00"
    exact = sandbox.run("--market", "de-de", "update-price", TWO, "154.00", "--format", "json")
    assert exact.exit_code == 0, exact.stdout
    assert sandbox.price(TWO, "de-de") == "154.00"


def test_update_price_refuses_above_max_price_without_force(sandbox: Sandbox) -> None:
    result = sandbox.run("update-price", LID, "120.00", "--format", "json")
    assert result.exit_code == 0  # below max_price 150
    result = sandbox.run("update-price", LID, "151.00", "--format", "json")
    assert result.exit_code == 1
    assert "max_price" in json.loads(result.stdout)[0]["reason"]
    assert sandbox.price(LID) == "120.00"


def test_update_price_switches_lift_one_refusal_each(sandbox: Sandbox) -> None:
    # LID: 100.00, max_price 150.00. 160 is both a big change and above max_price.
    big = sandbox.run("update-price", LID, "160.00", "--allow-big-change", "--format", "json")
    assert big.exit_code == 1
    assert "max_price" in json.loads(big.stdout)[0]["reason"] and "--allow-above-max" in big.stdout
    above = sandbox.run("update-price", LID, "160.00", "--allow-above-max", "--format", "json")
    assert above.exit_code == 1 and "max_change_pct" in json.loads(above.stdout)[0]["reason"]
    assert sandbox.writes() == [] and sandbox.price(LID) == "100.00"

    ok = sandbox.run("update-price", LID, "140.00", "--allow-big-change", "--format", "json")
    assert ok.exit_code == 0, ok.stderr
    ok = sandbox.run("update-price", LID, "151.00", "--allow-above-max", "--format", "json")
    assert ok.exit_code == 0, ok.stderr
    assert sandbox.price(LID) == "151.00"
    both = sandbox.run("update-price", LID, "300.00", "--allow-big-change", "--allow-above-max")
    assert both.exit_code == 0, both.stderr
    assert sandbox.price(LID) == "300.00"


def test_update_price_refuses_absurd_amounts_whatever_the_switches(sandbox: Sandbox) -> None:
    for price in ("10000.01", "0.99"):  # over 100x 100.00, under 1/100 of it
        result = sandbox.run("update-price", LID, price, "--force", "--allow-big-change",
                             "--allow-above-max", "--format", "json")
        assert result.exit_code == 1
        (row,) = json.loads(result.stdout)
        assert row["status"] == "refused" and "100x" in row["reason"]
        assert price in row["reason"] and "100.00" in row["reason"]
    assert sandbox.writes() == [] and sandbox.price(LID) == "100.00"
    exact = sandbox.run("update-price", LID, "10000.00", "--force")  # exactly 100x: allowed
    assert exact.exit_code == 0, exact.stderr
    assert sandbox.price(LID) == "10000.00"


def test_update_price_min_price_sets_the_floor(sandbox: Sandbox) -> None:
    result = sandbox.run("update-price", LID, "98.00", "--min-price", "85", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert sandbox.price(LID) == "98.00"
    assert sandbox.min_price(LID) == "85.00"
    bad = sandbox.run("update-price", LID, "98.00", "--min-price", "85.001")
    assert bad.exit_code == 2 and "--min-price" in one_line_error(bad)


def test_update_price_dry_run_sends_nothing(sandbox: Sandbox) -> None:
    result = sandbox.run("update-price", LID, "96.00", "--dry-run", "--format", "json")
    assert result.exit_code == 0, result.stderr
    (row,) = json.loads(result.stdout)
    assert row["status"] == "dry-run" and row["old_price"] == "100.00" and row["new_price"] == "96.00"
    assert sandbox.seen == [("GET", f"/ws/listings/{LID}")]
    assert sandbox.price(LID) == "100.00"
    history = sandbox.run("history", LID, "--format", "json")
    assert json.loads(history.stdout) == []
    # A dry run still shows what the guard would refuse.
    refused = sandbox.run("update-price", LID, "10.00", "--dry-run", "--format", "json")
    assert json.loads(refused.stdout)[0]["status"] == "refused"
    assert sandbox.writes() == []


def test_update_price_file_updates_every_row_and_history_shows_them(sandbox: Sandbox,
                                                                     tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text(f"listing_id,price,market\n{LID},99.50\n{TWO},210.00,de-de\n{JP},14500,ja-jp\n")
    result = sandbox.run("update-price", "--file", str(prices), "--format", "ndjson")
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("plan: 3 price update(s); requests per bucket: global ~6, "
                                    "listing_writes ~3; ~")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["listing_id"], r["market"], r["status"]) for r in rows] == [
        (LID, "fr-fr", "updated"), (TWO, "de-de", "updated"), (JP, "ja-jp", "updated")]
    assert rows[2]["currency"] == "JPY" and rows[2]["new_price"] == "14500"
    assert (sandbox.price(LID), sandbox.price(TWO, "de-de"), sandbox.price(JP, "ja-jp")) == (
        "99.50", "210.00", "14500")
    assert sandbox.price(TWO, "fr-fr") == "200.00"

    second = sandbox.run("update-price", LID, "98.00", "--format", "json")
    assert second.exit_code == 0
    history = sandbox.run("history", LID, "--format", "json")
    assert history.exit_code == 0
    changes = json.loads(history.stdout)
    assert [(c["old_price"], c["new_price"], c["reason"]) for c in changes] == [
        ("99.50", "98.00", "update"), ("100.00", "99.50", "update")]
    assert changes[0]["ts"] >= changes[1]["ts"]
    assert changes[0]["request_id"]

    conn = sqlite3.connect(sandbox.db)
    count = conn.execute("select count(*) from price_changes").fetchone()[0]
    conn.close()
    assert count == 4

    newest = sandbox.run("history", LID.upper(), "-n", "1", "--format", "json")
    assert [c["new_price"] for c in json.loads(newest.stdout)] == ["98.00"]
    table = sandbox.run("history", LID, "--format", "table")
    assert table.exit_code == 0 and "update" in table.stdout and "98.00" in table.stdout


def test_update_price_file_written_by_a_spreadsheet(sandbox: Sandbox, tmp_path: Path) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_bytes(("\ufeff# exported\r\nlisting_id,price\r\n" f"{LID},99.90\r\n").encode())
    result = sandbox.run("update-price", "--file", str(prices), "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert sandbox.price(LID) == "99.90"
    piped = sandbox.run("update-price", "--file", "-", "--format", "json",
                        input=f"\ufefflisting_id,price\n{LID},99.80\n")
    assert piped.exit_code == 0, piped.stderr
    assert sandbox.price(LID) == "99.80"


def test_update_price_file_from_stdin(sandbox: Sandbox) -> None:
    result = sandbox.run("update-price", "--file", "-", "--format", "json", input=f"{LID},101\n")
    assert result.exit_code == 0, result.stderr
    assert sandbox.price(LID) == "101.00"


def test_listings_csv_round_trips_through_update_price_file(sandbox: Sandbox, tmp_path: Path) -> None:
    exported = sandbox.run("listings", "--format", "csv")
    assert exported.exit_code == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert {"id", "listing_id", "price", "min_price"} <= set(rows[0])
    for row in rows:
        if row["id"] == LID:
            row["price"], row["min_price"] = "97.00", "85.00"
    edited = tmp_path / "l.csv"
    with edited.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), delimiter=";")
        writer.writeheader()
        writer.writerows(rows)
    result = sandbox.run("update-price", "--file", str(edited), "--format", "json")
    assert result.exit_code == 0, result.stderr
    statuses = {(r["listing_id"], r["market"]): r["status"] for r in json.loads(result.stdout)}
    assert statuses == {(LID, "fr-fr"): "updated", (TWO, "fr-fr"): "unchanged"}
    assert (sandbox.price(LID), sandbox.min_price(LID)) == ("97.00", "85.00")
    assert sandbox.price(TWO) == "200.00"
    # The untouched export, piped back: the old prices again.
    piped = sandbox.run("update-price", "--file", "-", "--format", "json", input=exported.stdout)
    assert piped.exit_code == 0, piped.stderr
    assert (sandbox.price(LID), sandbox.min_price(LID)) == ("100.00", "80.00")


@pytest.mark.parametrize("content, where", [
    (f"{LID},99.50\n{TWO},12.345\n{JP},14000,ja-jp\n", "line 2"),
    (f"{LID},99.50\nnot-a-uuid,12\n", "line 2"),
    (f"{LID},99.50\n{JP},14000.5,ja-jp\n", "line 2"),
    (f"{LID},99.50\n{TWO},12,xx-yy\n", "line 2"),
    (f"{LID},99.50\n{TWO}\n", "line 2"),
    (f"{LID},99.50\n{TWO},-3\n", "line 2"),
    (f"listing_id,price\n{LID},99.50\n{TWO},1,fr-fr,extra\n", "line 3"),
    ("", "no prices"),
    (f"{LID},99.50\n{TWO},201\n{LID},98.00,fr-fr\n", "already on line 1"),
])
def test_update_price_bad_file_sends_nothing(sandbox: Sandbox, tmp_path: Path, content: str,
                                             where: str) -> None:
    prices = tmp_path / "prices.csv"
    prices.write_text(content)
    result = sandbox.run("update-price", "--file", str(prices))
    assert result.exit_code == 2
    assert where in one_line_error(result)
    assert result.stdout == ""
    assert sandbox.seen == []
    assert sandbox.price(LID) == "100.00"


def test_update_price_unknown_listing_is_exit_1_with_reason(sandbox: Sandbox) -> None:
    result = sandbox.run("update-price", UNKNOWN, "10.00", "--format", "json")
    assert result.exit_code == 1
    (row,) = json.loads(result.stdout)
    assert row["status"] == "error" and "not found" in row["reason"]
    assert sandbox.writes() == []


def test_update_price_id_and_file_together_is_bad_usage(sandbox: Sandbox, tmp_path: Path) -> None:
    prices = tmp_path / "p.csv"
    prices.write_text(f"{LID},99\n")
    for args in (["update-price", LID, "99", "--file", str(prices)], ["update-price", LID],
                 ["update-price", "--file", str(tmp_path / "missing.csv")]):
        result = sandbox.run(*args)
        assert result.exit_code == 2, args
        one_line_error(result)
    assert sandbox.seen == []


# --- bad input: exit 2, one line, nothing sent ---------------------------------------------------


@pytest.mark.parametrize("args", [
    ["update-price", LID, "--", "-5"],
    ["update-price", LID, "-5"],
    ["update-price", LID, "abc"],
    ["update-price", LID, "12.345"],
    ["update-price", LID, "nan"],
    ["update-price", LID, "NaN"],
    ["update-price", LID, "inf"],
    ["update-price", LID, "-inf"],
    ["update-price", LID, "0"],
    ["update-price", LID, "0.00"],
    ["update-price", LID, "1e3"],
    ["update-price", LID, "1_000"],
    ["update-price", LID, "\u0661\u0662"],
    ["update-price", LID, "12,50"],
    ["update-price", LID, "99", "--min-price", "1e2"],
    ["update-price", LID, ""],
    ["--market", "ja-jp", "update-price", JP, "1500.5"],
    ["update-price", "not-a-uuid", "12.00"],
    ["competitors", "not-a-uuid"],
    ["competitors", LID, "12345"],
    ["history", "not-a-uuid"],
    ["--market", "xx-yy", "competitors", LID],
    ["--market", "xx-yy", "update-price", LID, "99"],
    ["--market", "xx-yy", "listings"],
    ["competitors", LID, "--format", "xml"],
    ["--format", "yaml", "listings"],
    ["--env", "staging", "competitors", LID],
])
def test_bad_input_is_exit_2_one_line_nothing_sent(sandbox: Sandbox, args: list[str]) -> None:
    result = sandbox.run(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert sandbox.seen == []


def test_unknown_market_from_the_environment(sandbox: Sandbox) -> None:
    result = sandbox.run("competitors", LID, env={"BMCTL_MARKET": "xx-yy"})
    assert result.exit_code == 2 and "xx-yy" in one_line_error(result)
    assert sandbox.seen == []


def test_malformed_config_file_sends_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("market = [\n")
    for args in (["--config", str(bad), "competitors", LID],
                 ["--config", str(bad), "update-price", LID, "99"]):
        result = sandbox.run(*args)
        assert result.exit_code == 2
        assert str(bad) in one_line_error(result)
    result = sandbox.run("listings", env={"BMCTL_CONFIG": str(bad)})
    assert result.exit_code == 2
    assert sandbox.seen == []


@pytest.mark.parametrize("args", [
    ["competitors", LID], ["listings"], ["update-price", LID, "99.00"],
    ["update-price", LID, "99.00", "--dry-run"],
])
def test_missing_token_is_exit_2_before_any_request(sandbox: Sandbox, args: list[str]) -> None:
    result = sandbox.run(*args, env={"BMCTL_TOKEN": ""})
    assert result.exit_code == 2
    assert "token" in one_line_error(result)
    assert result.stdout == ""
    assert sandbox.seen == []


# --- errors from the marketplace --------------------------------------------------------------------


@pytest.mark.parametrize("args", [["competitors", LID], ["listings"], ["update-price", LID, "99.00"]])
def test_wrong_token_is_exit_3(sandbox: Sandbox, args: list[str]) -> None:
    result = sandbox.run(*args, env={"BMCTL_TOKEN": "not-the-token"})
    assert result.exit_code == 3
    assert "401" in one_line_error(result)
    assert "not-the-token" not in result.stdout + result.stderr
    assert result.stdout == ""
    assert len(sandbox.seen) == 1  # no retry of a 401
    assert sandbox.price(LID) == "100.00"


def test_waf_html_403_is_exit_3_with_cf_ray(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=["waf"])
    result = box.run("competitors", LID, "--format", "json")
    assert result.exit_code == 3
    ray = box.app.answers[0].headers["cf-ray"]
    line = one_line_error(result)
    assert "Cloudflare" in line and ray in line


def test_waf_challenge_403_is_exit_3(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=[None, "challenge"])
    result = box.run("update-price", LID, "99.00")
    assert result.exit_code == 3
    assert "Cloudflare" in result.stderr
    assert box.price(LID) == "100.00"


def test_one_500_is_retried(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=["error"])
    result = box.run("competitors", LID, "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 1
    assert len(box.seen) == 2
    assert box.app.answers[0].status in (500, 502, 503)


def test_verbose_tells_each_failed_attempt_and_the_log_keeps_it(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=["error"])
    quiet = box.run("competitors", LID, "--format", "json")
    assert quiet.exit_code == 0 and quiet.stderr == ""
    box = make_sandbox(script=["error"])
    result = box.run("--verbose", "competitors", LID, "--format", "json")
    assert result.exit_code == 0, result.stderr
    line, = result.stderr.strip().splitlines()
    assert f"GET /ws/backbox/v1/competitors/{LID} attempt 1: HTTP 5" in line and "[retry]" in line
    conn = sqlite3.connect(box.db)
    errors = [row[0] for row in conn.execute("select error from rate_limit_logs order by id")]
    conn.close()
    assert errors[0].startswith("HTTP 5") and errors[1:] == [None]


def test_one_500_on_the_write_is_retried(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=[None, "error"])
    result = box.run("update-price", LID, "99.00", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["status"] == "updated"
    assert box.writes() == [("POST", f"/ws/listings/{LID}")] * 2
    assert box.price(LID) == "99.00"


def test_one_dropped_connection_is_retried(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=["drop"])
    result = box.run("listings", "--format", "json")
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 2
    assert box.seen == [("GET", "/ws/listings")] * 2


def test_one_malformed_answer_to_a_read_is_retried(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    """Issue 13, point 4: a truncated answer to a read is asked for again, like a 5xx."""
    for args in (["competitors", LID], ["listings"], ["update-price", LID, "99.00"]):
        box = make_sandbox(script=["malformed"])
        result = box.run(*args, "--format", "json")
        assert result.exit_code == 0, (args, result.stderr)
        assert box.seen[0] == box.seen[1]  # the same read, twice
    conn = sqlite3.connect(box.db)
    rows = conn.execute("select method, status, outcome, error from rate_limit_logs order by id").fetchall()
    conn.close()
    assert [r[:3] for r in rows] == [("GET", 200, "retry"), ("GET", 200, "ok"), ("POST", 200, "ok")]
    assert rows[0][3].startswith("malformed answer: not JSON") and "<!--" not in rows[0][3]
    assert box.price(LID) == "99.00"


def test_malformed_json_on_every_attempt_is_exit_1(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=["malformed"] * 5)  # max_attempts
    result = box.run("competitors", LID, TWO, "--format", "json")
    assert result.exit_code == 1
    rows = json.loads(result.stdout)
    assert "malformed" in rows[0]["error"] and rows[0]["listing_id"] == LID
    assert [r["market"] for r in rows[1:]] == ["fr-fr", "de-de"]

    box = make_sandbox(script=["malformed"] * 5)
    result = box.run("listings", "--format", "json")
    assert result.exit_code == 1
    assert "malformed" in result.stderr


def test_a_write_with_a_malformed_answer_stays_in_history(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=[None, "malformed"])  # the read is fine, the write's answer is not
    result = box.run("update-price", LID, "99.00", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["status"] == "error"
    assert box.writes() == [("POST", f"/ws/listings/{LID}")]  # applied: never sent again
    rows = json.loads(box.run("history", LID, "--format", "json").stdout)
    assert [(r["new_price"], r["reason"], r["status"]) for r in rows] == [("99.00", "update", "error")]


class GoesDown:
    """The sandbox's transport until ``down`` turns true, then a host that refuses connections."""

    def __init__(self, inner, down=lambda sent: True) -> None:  # type: ignore[no-untyped-def]
        self.inner, self.down = inner, down
        self.sent: list[tuple[str, str]] = []  # answered
        self.refused: list[tuple[str, str]] = []

    def send(self, request, timeout):  # type: ignore[no-untyped-def]
        from bmctl.traffic.transport import TransportError

        if self.down(self.sent):
            self.refused.append((request.method, request.path))
            raise TransportError("refused", "connection refused: ConnectionError: HTTPConnectionPool("
                                 "host='127.0.0.1', port=8765): Max retries exceeded")
        self.sent.append((request.method, request.path))
        return self.inner.send(request, timeout)


REFUSED = "bmctl: error: cannot connect to http://127.0.0.1:8765 (connection refused)"


@pytest.mark.parametrize("args", [
    ["competitors", LID, TWO, JP], ["listings"], ["update-price", LID, "99.00"],
    ["update-price", "--file", "-"],
])
def test_a_host_that_refuses_connections_stops_the_run_at_the_first_refusal(
        sandbox: Sandbox, args: list[str]) -> None:
    """Issue 13, point 5: one line, exit 1, no retry, and no other id tried."""
    sandbox.transport = GoesDown(sandbox.transport)  # type: ignore[assignment]
    result = sandbox.run(*args, "--format", "json", input=f"{LID},101\n{TWO},201\n{JP},15001,ja-jp\n")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == REFUSED
    assert "HTTPConnectionPool" not in result.stderr
    assert len(sandbox.transport.refused) == 1  # type: ignore[attr-defined]
    verbose = sandbox.run("--verbose", *args, input=f"{LID},101\n")
    assert "HTTPConnectionPool" in verbose.stderr and REFUSED in verbose.stderr


def test_a_host_going_down_mid_probe_leaves_the_journal_to_recover(sandbox: Sandbox) -> None:
    """The first write lands, then the host refuses: the batch stops, the restore cannot reach
    the host either, the open probe is named and kept; `bmctl recover` puts it back once the
    host is up again (and stops at once while it is still down)."""
    inner = sandbox.transport
    down = GoesDown(inner, lambda sent: any(method == "POST" for method, _ in sent))
    sandbox.transport = down  # type: ignore[assignment]
    before = {LID: sandbox.price(LID), TWO: sandbox.price(TWO)}
    result = sandbox.run("probe", LID, TWO, "--format", "json")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == REFUSED
    assert len(down.refused) == 2  # the batch's next request, then the restore's read
    (left,) = [line for line in result.stderr.splitlines() if "left open" in line]
    (dipped,) = [lid for lid in (LID, TWO) if lid in left]
    assert "bmctl recover" in left and sandbox.price(dipped) != before[dipped]

    down.refused.clear()
    still = sandbox.run("recover", "--format", "json")
    assert still.exit_code == 1 and still.stderr.splitlines()[-1] == REFUSED
    assert len(down.refused) == 1

    sandbox.transport = inner
    back = sandbox.run("recover", "--format", "json")
    assert back.exit_code == 0, back.stderr
    assert [row["status"] for row in json.loads(back.stdout)] == ["restored"]
    assert sandbox.price(dipped) == before[dipped]


def test_a_held_lock_is_exit_5_and_dry_runs_do_not_need_it(sandbox: Sandbox) -> None:
    from bmctl.store.lock import RunLock

    with RunLock(str(sandbox.db), timeout=0):
        result = sandbox.run("update-price", LID, "99.00")
        assert result.exit_code == 5
        assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
        assert sandbox.seen == []
        dry = sandbox.run("update-price", LID, "99.00", "--dry-run", "--format", "json")
        assert dry.exit_code == 0 and json.loads(dry.stdout)[0]["status"] == "dry-run"
        assert sandbox.run("competitors", LID).exit_code == 0
    assert sandbox.run("update-price", LID, "99.00").exit_code == 0
    assert sandbox.price(LID) == "99.00"


def test_requests_are_logged(sandbox: Sandbox) -> None:
    sandbox.run("update-price", LID, "99.00")
    result = sandbox.run("logs", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert [(r["method"], r["status"]) for r in rows] == [("POST", 200), ("GET", 200)]
    runs = json.loads(sandbox.run("logs", "runs", "--format", "json").stdout)
    assert runs[0]["command"] == "update-price" and runs[0]["exit_code"] == 0


def test_logs_stats_shows_the_slots_held_now_and_by_whom(sandbox) -> None:  # type: ignore[no-untyped-def]
    assert sandbox.run("competitors", LID, TWO).exit_code == 0
    run_id = json.loads(sandbox.run("logs", "runs", "--format", "json").stdout)[0]["id"]
    stats = {row["bucket"]: row for row in json.loads(sandbox.run("logs", "stats", "--format", "json").stdout)}
    # Two reads a moment ago: each still holds a global slot (until 10 s after its answer),
    # whoever asks.
    (holder,) = stats["global"]["holders"]
    assert holder == {"run_id": run_id, "pid": holder["pid"], "slots": 2, "claims": 0}
    assert stats["global"]["held_now"] == 2 and stats["listing_writes"]["held_now"] == 0
    assert stats["competitors"]["held_now"] <= 2
    table = sandbox.run("logs", "stats", "--format", "csv")
    assert f"{run_id} pid" in table.stdout


def test_the_run_record_holds_the_process_exit_code_and_the_arguments_given(make_sandbox) -> None:  # type: ignore[no-untyped-def]
    box = make_sandbox(script=[None, None, "waf"])
    cases = [
        (["competitors", LID], 0),
        (["competitors", UNKNOWN], 1),  # an item failed
        (["probe", LID, "--step", "0.001"], 2),  # bad input, found once the currency is known
        (["competitors", LID], 3),  # the WAF answers the third request of this box
        (["update-price", LID, "500.00"], 1),  # refused by the 30 % guard
    ]
    for args, expected in cases:
        result = box.run(*args)
        assert result.exit_code == expected, (args, result.stderr)
        (latest,) = json.loads(box.run("logs", "runs", "-n", "1", "--format", "json").stdout)
        assert (latest["exit_code"], latest["argv"]) == (expected, args)  # argv: a JSON array


# --- the token never shows ------------------------------------------------------------------------


def test_the_token_never_appears_in_output_or_database(make_sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    secret = "tok-SECRET-123"
    # competitors x2 ok; listings 500 then ok; update GET+POST ok; file: GET+POST ok, GET
    # malformed; the next update meets the WAF.
    box = make_sandbox(token=secret, script=[None, None, "error", None, None, None, None, None,
                                             "malformed", "waf"])
    prices = tmp_path / "p.csv"
    prices.write_text(f"{LID},99.00\n{TWO},201.00\n")
    runs = [
        ["--verbose", "competitors", LID, TWO],
        ["--verbose", "listings", "--format", "csv"],
        ["--verbose", "update-price", LID, "98.00", "--format", "table"],
        ["--verbose", "update-price", "--file", str(prices)],
        ["-v", "update-price", UNKNOWN, "9.00"],
        ["-v", "competitors", UNKNOWN],
        ["-v", "update-price", LID, "12.345"],
        ["-v", "history", LID],
        ["-v", "report", "--format", "csv"],
        ["-v", "logs", "--format", "json"],
        ["-v", "logs", "runs", "--format", "json"],
        ["-v", "logs", "stats"],
        ["-v", "config", "show", "--format", "json"],
    ]
    for args in runs:
        box.run(*args)
    box.run("-v", "competitors", LID, env={"BMCTL_TOKEN": secret + "x"})  # refused
    box.run("-v", "--base-url", box.url + "/", "listings", "--limit", "1")
    config = tmp_path / "with-token.toml"
    config.write_text(f'token = "{secret}"\n')
    config.chmod(0o600)
    from_file = box.run("-v", "--config", str(config), "update-price", LID, "97.00",
                        env={"BMCTL_TOKEN": ""})
    assert from_file.exit_code == 0, from_file.stderr
    box.run("-v", "--config", str(config), "config", "show", env={"BMCTL_TOKEN": ""})
    output = "\n".join(box.outputs)
    assert output.count("bmctl: error") >= 2  # failures were among them
    assert secret not in output
    dump = box.dump_db()
    assert "price_changes" in dump and "rate_limit_logs" in dump and "runs" in dump
    assert secret not in dump
    assert "SECRET" not in dump


def test_demo_never_touches_the_database_bmctl_db_names(tmp_path: Path) -> None:
    from tests.cli.helpers import invoke

    real = tmp_path / "real.db"
    data = tmp_path / "data"
    result = invoke(["demo", "--limit", "1", "--settle", "0", "--format", "json"],
                    {"BMCTL_DB": str(real), "XDG_DATA_HOME": str(data), "HOME": str(tmp_path)})
    assert result.exit_code == 0, result.stderr
    assert not real.exists()  # the operator's database: neither runs nor budget
    assert (data / "bmctl" / "demo.db").exists()
    given = tmp_path / "given.db"
    assert invoke(["--db", str(given), "demo", "--limit", "1", "--settle", "0", "--format", "json"],
                  {"BMCTL_DB": str(real), "HOME": str(tmp_path)}).exit_code == 0
    assert given.exists() and not real.exists()  # --db on the command line is obeyed


def test_a_second_demo_starts_afresh_like_its_marketplace(tmp_path: Path) -> None:
    """The marketplace is new at every demo: a former demo's journal (price-war rounds, recent
    prices) must not hold or leave unsearched the listings of the next one."""
    from tests.cli.helpers import invoke

    config = tmp_path / "bmctl.toml"
    config.write_text("[pricing]\nwar_rounds = 1\n")  # one dip is a price war: held at once
    env = {"XDG_DATA_HOME": str(tmp_path / "data"), "HOME": str(tmp_path), "BMCTL_CONFIG": str(config)}
    runs = [invoke(["demo", "--limit", "4", "--settle", "0", "--format", "json"], env) for _ in range(2)]
    assert [r.exit_code for r in runs] == [0, 0], runs[-1].stderr
    outcomes = [sorted((row["listing_id"], row["market"], row["outcome"]) for row in json.loads(r.stdout))
                for r in runs]
    assert any(outcome == "won" for *_, outcome in outcomes[0])
    assert outcomes[1] == outcomes[0]  # nothing held, nothing left unsearched
    listed = invoke(["--db", str(tmp_path / "data" / "bmctl" / "demo.db"), "logs", "runs", "--format", "json"], env)
    assert [run["command"] for run in json.loads(listed.stdout)] == ["demo"]  # the last demo's only


def test_a_batch_ends_with_one_summary_line_on_stderr(sandbox: Sandbox) -> None:
    import re

    result = sandbox.run("probe", LID, TWO, "--settle", "0")
    assert result.exit_code == 0, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"probe: 2 won; 2 write\(s\), 0 × 429 met; \d+ s", last), last
    quiet = sandbox.run("-q", "probe", LID, "--settle", "0")
    assert "probe:" not in quiet.stderr  # --quiet: data and warnings only
