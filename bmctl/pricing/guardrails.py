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
    """The prices a probe may write: ``floor`` ≤ price ≤ ``ceiling`` (never above ``max_price``);
    ``floor_source`` / ``ceiling_source`` name the source that set each (``cost``,
    ``min_price``, ``max_price``, ``option``, ``file``; ``start_price`` when nothing set a
    ceiling)."""

    floor: Money
    ceiling: Money
    max_price: Money | None = None
    floor_source: str = ""
    ceiling_source: str = ""

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
    source: str = "option",
    cost_floor: Money | None = None,
    cost_ceiling: Money | None = None,
) -> Bounds:
    """The intersection of every source: the highest floor and the lowest ceiling of the
    operator's (``source``: ``option`` or ``file``), the cost rule's and the listing's
    ``min_price`` / ``max_price``. A zero amount is no bound (never a floor of 0.01). Without
    any floor the listing is refused; without any ceiling the probe never rises above the start
    price (nobody allowed more). The effective ceiling is never above ``max_price``."""
    def given(*pairs: tuple[str, Money | None]) -> list[tuple[str, Money]]:
        return [(name, value) for name, value in pairs if value is not None and value.amount > 0]

    floors = given((source, floor), ("cost", cost_floor), ("min_price", min_price))
    ceilings = given((source, ceiling), ("cost", cost_ceiling), ("max_price", max_price))
    for name, value in floors + ceilings:
        if value.currency != currency:
            what = "floor" if (name, value) in floors else "ceiling"
            raise BoundsRefused(f"{what} {value} ({name}) is not in the market's currency {currency}")
    if not floors:
        raise BoundsRefused("no floor: the listing has no min_price and no cost; give --floor or a cost")
    # The first of equal bounds names the source: the operator's, then the cost rule's.
    floor_source, low = max(floors, key=lambda pair: pair[1].amount)
    if ceilings:
        ceiling_source, top = min(ceilings, key=lambda pair: pair[1].amount)
    else:
        ceiling_source, top = "start_price", max(start_price, low)
    if low > top:
        raise BoundsRefused(f"floor {low} ({floor_source}) is above the effective ceiling {top} ({ceiling_source})")
    return Bounds(floor=low, ceiling=top, max_price=max_price, floor_source=floor_source,
                  ceiling_source=ceiling_source)


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
