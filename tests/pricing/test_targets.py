"""Batch input: every line validated before any request, clear messages naming the line."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bmctl.api.money import Money
from bmctl.errors import UsageError
from bmctl.pricing.targets import (
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
