"""Money formatting for the API and market lookups used by the client."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bmctl.api.markets import get_market, host_for, market_from_country
from bmctl.api.money import Money, MoneyError
from bmctl.errors import UsageError


@pytest.mark.parametrize(
    ("value", "currency", "api"),
    [("12.3", "EUR", "12.30"), ("12.30", "EUR", "12.30"), ("1500", "JPY", "1500"),
     ("1500.00", "JPY", "1500"), ("13.000", "EUR", "13.00"), (Decimal("0.5"), "USD", "0.50"),
     (7, "GBP", "7.00"), (" 99.9 ", "sek", "99.90")],
)
def test_money_formats_for_the_api(value: object, currency: str, api: str) -> None:
    money = Money.parse(value, currency)
    assert money.to_api() == api
    assert money.to_monetary() == {"amount": api, "currency": currency.upper()}


@pytest.mark.parametrize(
    ("value", "currency"),
    [(12.3, "EUR"), (float("nan"), "EUR"), ("NaN", "EUR"), ("inf", "EUR"), ("-Infinity", "EUR"),
     ("-1", "EUR"), ("0", "EUR"), ("0.00", "EUR"), ("12.345", "EUR"), ("1500.5", "JPY"),
     ("abc", "EUR"), ("", "EUR"), (True, "EUR"), ("12", "XXX"), ("1e999999", "EUR")],
)
def test_money_refuses(value: object, currency: str) -> None:
    with pytest.raises(MoneyError):
        Money.parse(value, currency)


def test_money_from_api_rounds_and_refuses() -> None:
    assert Money.from_api({"amount": "12.345", "currency": "EUR"}).to_api() == "12.35"
    for bad in [{"amount": "x", "currency": "EUR"}, {"amount": "1"}, None,
                {"amount": "1e999999", "currency": "EUR"}]:
        with pytest.raises(MoneyError):
            Money.from_api(bad)  # type: ignore[arg-type]


def test_markets() -> None:
    assert get_market("FR-fr").currency == "EUR" and get_market("ja-jp").currency == "JPY"
    assert market_from_country("GB").code == "en-gb" and market_from_country("AU").code == "en-au"
    assert host_for("en-au", "prod") == "https://www.backmarket.co.jp"
    with pytest.raises(UsageError):
        get_market("fr")
    with pytest.raises(ValueError):
        market_from_country("ZZ")
