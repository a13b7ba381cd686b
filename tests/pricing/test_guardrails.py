"""Guardrails: no price outside [floor, effective ceiling], never a float, never bad decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bmctl.api.money import Money
from bmctl.pricing.guardrails import (
    Bounds,
    BoundsRefused,
    GuardrailViolation,
    change_pct,
    effective_bounds,
)

CURRENCIES = ["EUR", "GBP", "JPY", "SEK"]


def money(cents: int, currency: str) -> Money:
    places = 0 if currency == "JPY" else 2
    return Money(Decimal(cents).scaleb(-places), currency)


@st.composite
def bounds_and_price(draw: st.DrawFn) -> tuple[Bounds, Money]:
    currency = draw(st.sampled_from(CURRENCIES))
    a, b = sorted(draw(st.lists(st.integers(1, 10**7), min_size=2, max_size=2)))
    max_price = draw(st.one_of(st.none(), st.integers(a, 10**7 + 10)))
    floor, ceiling = money(a, currency), money(b, currency)
    bounds = Bounds(floor, ceiling if max_price is None else min(ceiling, money(max_price, currency)),
                    None if max_price is None else money(max_price, currency))
    price = money(draw(st.integers(1, 10**7 + 20)), currency)
    return bounds, price


@settings(max_examples=500)
@given(bounds_and_price())
def test_check_accepts_exactly_the_prices_inside_the_bounds(case: tuple[Bounds, Money]) -> None:
    bounds, price = case
    inside = bounds.floor <= price <= bounds.ceiling and (bounds.max_price is None or price <= bounds.max_price)
    if inside:
        assert bounds.check(price) is price
    else:
        with pytest.raises(GuardrailViolation):
            bounds.check(price)


@settings(max_examples=500)
@given(bounds_and_price())
def test_clamp_always_passes_the_check(case: tuple[Bounds, Money]) -> None:
    bounds, price = case
    assert bounds.check(bounds.clamp(price)) == bounds.clamp(price)


def test_check_refuses_other_currencies_and_non_money() -> None:
    bounds = Bounds(Money(Decimal("10.00"), "EUR"), Money(Decimal("20.00"), "EUR"))
    with pytest.raises(GuardrailViolation, match="currency"):
        bounds.check(Money(Decimal("15.00"), "GBP"))
    with pytest.raises(GuardrailViolation, match="not a Money"):
        bounds.check(15.0)  # type: ignore[arg-type]


def eur(text: str) -> Money:
    return Money.parse(text, "EUR")


def test_effective_bounds_defaults_and_caps() -> None:
    bounds = effective_bounds(currency="EUR", min_price=eur("100"), max_price=eur("200"), start_price=eur("150"))
    assert (bounds.floor, bounds.ceiling) == (eur("100"), eur("200"))
    capped = effective_bounds(currency="EUR", min_price=eur("100"), max_price=eur("200"),
                              start_price=eur("150"), ceiling=eur("500"))
    assert capped.ceiling == eur("200")
    operator = effective_bounds(currency="EUR", min_price=eur("100"), max_price=eur("200"),
                                start_price=eur("150"), floor=eur("120"), ceiling=eur("180"))
    assert (operator.floor, operator.ceiling) == (eur("120"), eur("180"))
    no_max = effective_bounds(currency="EUR", min_price=eur("100"), max_price=None, start_price=eur("150"))
    assert no_max.ceiling == eur("150")


def test_effective_bounds_refusals() -> None:
    with pytest.raises(BoundsRefused, match="no floor"):
        effective_bounds(currency="EUR", min_price=None, max_price=eur("200"), start_price=eur("150"))
    with pytest.raises(BoundsRefused, match="above the effective ceiling"):
        effective_bounds(currency="EUR", min_price=eur("250"), max_price=eur("200"), start_price=eur("150"))
    with pytest.raises(BoundsRefused, match="currency"):
        effective_bounds(currency="EUR", min_price=Money.parse("100", "GBP"), max_price=None,
                         start_price=eur("150"))


def test_change_pct() -> None:
    assert change_pct(eur("100"), eur("130")) == Decimal("30.00")
    assert change_pct(eur("100"), eur("69.99")) == Decimal("30.01")
