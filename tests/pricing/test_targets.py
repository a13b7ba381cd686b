"""Batch input read by update-price and probe: every line validated before any request, clear
messages naming the line; spreadsheet files, repeated listings, strict prices."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bmctl.api.money import Money
from bmctl.errors import UsageError
from bmctl.pricing.targets import (
    parse_bounds,
    price_order,
    price_orders_from_file,
    probe_targets_from_file,
    probe_targets_from_ids,
)

A = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
B = "9b2c1e0a-1111-4222-8333-444455556666"


def test_probe_file_with_bounds_and_markets(tmp_path: Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text(f"listing_id,floor,ceiling,market\n{A},100,200\n\n# note\n{B},,,ja-jp\n")
    targets = probe_targets_from_file(str(path), "fr-fr", io.StringIO())
    assert [t.market for t in targets] == ["fr-fr", "ja-jp"]
    assert targets[0].floor == Money.parse("100", "EUR")
    assert targets[1].floor is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not-a-uuid,1,2", "line 1"),
        (f"{A},abc", "bad floor"),
        (f"{A},1,2,xx-yy", "unknown market"),
        (f"{A},10.5,,ja-jp", "bad floor"),
        (f"{A},300,200", "above ceiling"),
        (f"{A},1,2,fr-fr,extra", "expected listing_id"),
    ],
)
def test_probe_file_errors_name_the_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "l.csv"
    path.write_text(line + "\n")
    with pytest.raises(UsageError, match=message):
        probe_targets_from_file(str(path), "fr-fr", io.StringIO())


def test_ids_from_arguments_and_stdin() -> None:
    targets = probe_targets_from_ids([A, "-"], "en-gb", "10", None, io.StringIO(f"{B}\n\n"))
    assert [t.listing_id for t in targets] == [A, B]
    assert targets[0].floor == Money.parse("10", "GBP")


@pytest.mark.parametrize("price", ["-5", "abc", "12.345", "nan", "inf", "0"])
def test_bad_prices_are_usage_errors(price: str) -> None:
    with pytest.raises(UsageError):
        price_order(A, price, "fr-fr")


def test_jpy_refuses_decimals() -> None:
    with pytest.raises(UsageError, match="JPY"):
        price_order(A, "1500.5", "ja-jp")
    assert price_order(A, "1500", "ja-jp").price.to_api() == "1500"


def test_price_file_is_validated_whole(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"{A},10.00\n{B},oops\n")
    with pytest.raises(UsageError, match="line 2"):
        price_orders_from_file(str(path), "fr-fr", io.StringIO())
    with pytest.raises(UsageError, match="holds no prices"):
        price_orders_from_file("-", "fr-fr", io.StringIO("\n"))
    with pytest.raises(UsageError, match="cannot read"):
        price_orders_from_file(str(tmp_path / "missing.csv"), "fr-fr", io.StringIO())


def test_bom_and_header_after_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(f"\ufeff# from the spreadsheet\r\nlisting_id,price\r\n{A},10.00\r\n".encode())
    (order,) = price_orders_from_file(str(path), "fr-fr", io.StringIO())
    assert order.listing_id == A and order.price.to_api() == "10.00"
    (target,) = probe_targets_from_file("-", "fr-fr", io.StringIO(f"\ufefflisting_id,floor\n{A},5\n"))
    assert target.floor is not None and target.floor.to_api() == "5.00"


def test_a_listing_twice_in_one_market_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(f"{A},10\n{B},11\n{A.upper()},12\n")
    with pytest.raises(UsageError, match="line 3: .* already on line 1"):
        price_orders_from_file(str(path), "fr-fr", io.StringIO())
    path.write_text(f"{A},10\n{A},11,de-de\n")  # two markets: two orders
    assert [o.market for o in price_orders_from_file(str(path), "fr-fr", io.StringIO())] == [
        "fr-fr", "de-de"]
    with pytest.raises(UsageError, match="already on line 1"):
        probe_targets_from_file("-", "fr-fr", io.StringIO(f"{A},1,2\n{A},3,4\n"))


def test_repeated_ids_are_probed_once() -> None:
    targets = probe_targets_from_ids([A, B, A, "-"], "fr-fr", None, None, io.StringIO(f"{B}\n"))
    assert [t.listing_id for t in targets] == [A, B]


@pytest.mark.parametrize("price", ["1e3", "1E2", "1_000", "\u0661\u0662", "12,50", "0x10", "- 5",
                                   "Infinity", "sNaN", "12.5.1", "."])
def test_prices_are_plain_decimals(price: str) -> None:
    with pytest.raises(UsageError, match="PRICE"):
        price_order(A, price, "fr-fr")


@pytest.mark.parametrize("price, shown", [("12", "12.00"), ("12.5", "12.50"), (".5", "0.50"),
                                          ("+7.00", "7.00"), (" 9.99 ", "9.99"), ("13.000", "13.00")])
def test_plain_decimals_are_accepted(price: str, shown: str) -> None:
    assert price_order(A, price, "fr-fr").price.to_api() == shown


def test_bounds_are_strict_too() -> None:
    with pytest.raises(UsageError, match="--floor"):
        parse_bounds("fr-fr", "1e2", None)


def _orders(text: str) -> list[tuple[str, str, str, str | None]]:
    return [(o.listing_id, o.market, o.price.to_api(), o.min_price.to_api() if o.min_price else None)
            for o in price_orders_from_file("-", "fr-fr", io.StringIO(text))]


def test_price_file_header_maps_columns_by_name() -> None:
    text = (f"sku,min_price,Price,market,title,id,listing_id\n"
            f"S1,80,99.50,de-de,Phone,{A},1001\n"
            f"S2,,120,,Other,{B},1002\n")
    assert _orders(text) == [(A, "de-de", "99.50", "80.00"), (B, "fr-fr", "120.00", None)]
    # listing_id alone names the id column; columns in any order, no market column.
    assert _orders(f"price,listing_id\n10,{A}\n") == [(A, "fr-fr", "10.00", None)]


def test_price_file_sniffs_semicolons() -> None:
    assert _orders(f"id;price;market\n{A};10.5;de-de\n") == [(A, "de-de", "10.50", None)]
    assert _orders(f"{A};11\n") == [(A, "fr-fr", "11.00", None)]
    assert _orders(f"{A},12\n") == [(A, "fr-fr", "12.00", None)]


@pytest.mark.parametrize("text, message", [
    (f"id,market\n{A},fr-fr\n", "line 1: the header has no price column"),
    (f"id,price\n{A},10,extra\n", "line 2: 3 fields, the header has 2"),
    (f"id,price,min_price\n{A},10,abc\n", "line 2: bad min_price"),
    (f"id,price\n{A},\n", "line 2: missing price"),
    (f"id;price\n{A};10,50\n", "line 2: bad price"),
])
def test_price_file_header_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        price_orders_from_file("-", "fr-fr", io.StringIO(text))
