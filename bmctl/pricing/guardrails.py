"""Guardrails applied to every price bmctl writes: floor, effective ceiling, currency, decimals."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bmctl.api.money import Money, MoneyError, minor_units
from bmctl.errors import ItemError


class GuardrailViolation(ItemError):
    """A write that would break a guardrail; it is never sent."""


@dataclass(frozen=True)
class Bounds:
    """The prices a probe may write: ``floor`` ≤ price ≤ ``ceiling`` (never above ``max_price``)."""

    floor: Money
    ceiling: Money
    max_price: Money | None = None

    @property
    def currency(self) -> str:
        return self.floor.currency

    def check(self, price: Money) -> Money:
        """Return ``price`` if it may be written; raise GuardrailViolation otherwise."""
        if not isinstance(price, Money) or not isinstance(price.amount, Decimal):
            raise GuardrailViolation(f"refusing to write {price!r}: not a Money amount")
        if price.currency != self.currency:
            raise GuardrailViolation(
                f"refusing to write {price}: the listing's currency is {self.currency}"
            )
        if price.amount.as_tuple().exponent != -minor_units(price.currency):
            raise GuardrailViolation(f"refusing to write {price}: not quantised to {price.currency}")
        if price.amount <= 0:
            raise GuardrailViolation(f"refusing to write {price}: not a positive price")
        if price < self.floor:
            raise GuardrailViolation(f"refusing to write {price}: below the floor {self.floor}")
        if price > self.ceiling:
            raise GuardrailViolation(f"refusing to write {price}: above the ceiling {self.ceiling}")
        if self.max_price is not None and price > self.max_price:
            raise GuardrailViolation(f"refusing to write {price}: above max_price {self.max_price}")
        return price

    def clamp(self, price: Money) -> Money:
        """The nearest allowed price."""
        return max(self.floor, min(self.ceiling, price))


class BoundsRefused(Exception):
    """The bounds cannot be formed; ``reason`` says why (the listing is skipped)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def effective_bounds(
    *,
    currency: str,
    min_price: Money | None,
    max_price: Money | None,
    start_price: Money,
    floor: Money | None = None,
    ceiling: Money | None = None,
) -> Bounds:
    """Floor defaults to the listing's ``min_price``, ceiling to its ``max_price``; the effective
    ceiling is never above ``max_price``. Without any ceiling the probe never rises above the
    start price (nobody allowed more)."""
    floor = floor if floor is not None else min_price
    if floor is None:
        raise BoundsRefused("no floor: the listing has no min_price; give --floor")
    for name, value in (("floor", floor), ("ceiling", ceiling), ("max_price", max_price)):
        if value is not None and value.currency != currency:
            raise BoundsRefused(f"{name} {value} is not in the market's currency {currency}")
    top = ceiling if ceiling is not None else max_price
    if top is None:
        top = max(start_price, floor)
    if max_price is not None and top > max_price:
        top = max_price
    if floor > top:
        raise BoundsRefused(f"floor {floor} is above the effective ceiling {top}")
    return Bounds(floor=floor, ceiling=top, max_price=max_price)


def change_pct(old: Money, new: Money) -> Decimal:
    """The size of a change in percent of the old price."""
    return (abs(new.amount - old.amount) * 100 / old.amount).quantize(Decimal("0.01"))


def parse_step(text: str | None, currency: str) -> Decimal:
    """The probe's price tick: the given step (a positive multiple of the currency's tick), or
    the currency's own tick."""
    tick = Decimal(1).scaleb(-minor_units(currency))
    if not text:
        return tick
    try:
        step = Money.parse(text, currency).amount
    except MoneyError as error:
        raise MoneyError(f"bad --step: {error}") from None
    return step
