"""Money as ``Decimal``: parsing, validation, quantising to the currency, API formatting."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Mapping

# What a person types as an amount: ASCII digits, an optional fraction, an optional sign (so
# that "-5" is refused for being negative, not for being unreadable). Decimal() alone would
# also take "1e3", "1_000", "NaN" or non-ASCII digits.
PLAIN_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")

MINOR_UNITS: dict[str, int] = {"EUR": 2, "USD": 2, "GBP": 2, "SEK": 2, "AUD": 2, "JPY": 0}


class MoneyError(ValueError):
    """A value that is not an acceptable amount of money."""


def minor_units(currency: str) -> int:
    """Decimal places the currency allows (JPY has none)."""
    try:
        return MINOR_UNITS[currency.upper()]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r}") from None


def tick(currency: str) -> Decimal:
    """The smallest step of the currency: 0.01, or 1 for JPY."""
    return Decimal(1).scaleb(-minor_units(currency))


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, float):
        raise MoneyError(f"refusing a float amount ({value!r}); use a decimal string")
    if isinstance(value, bool):
        raise MoneyError(f"not an amount: {value!r}")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise MoneyError(f"not a number: {value!r}") from None
    if not amount.is_finite():
        raise MoneyError(f"not a finite amount: {value!r}")
    return amount


def _places(amount: Decimal) -> int:
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True, order=True)
class Money:
    """An amount in a currency, always quantised to the currency's minor unit."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite():
            raise MoneyError(f"not a finite decimal amount: {self.amount!r}")
        places = minor_units(self.currency)
        if _places(self.amount) > places:
            raise MoneyError(
                f"{self.amount} has more decimals than {self.currency} allows ({places})"
            )
        object.__setattr__(self, "currency", self.currency.upper())
        try:
            object.__setattr__(self, "amount", self.amount.quantize(tick(self.currency)))
        except InvalidOperation:  # too many digits for the context (``1e999999``)
            raise MoneyError(f"amount out of range: {self.amount!r}") from None

    @classmethod
    def parse(cls, value: Any, currency: str, *, positive: bool = True) -> "Money":
        """Parse a user or API amount; refuses NaN, infinities, too many decimals and, when
        ``positive``, zero and negatives."""
        amount = _to_decimal(value)
        if positive and amount <= 0:
            raise MoneyError(f"price must be greater than zero, got {value!r}")
        if amount < 0:
            raise MoneyError(f"amount must not be negative, got {value!r}")
        places = minor_units(currency)
        if _places(amount) > places:
            noun = "no decimals" if places == 0 else f"at most {places} decimals"
            raise MoneyError(f"{value!r} has too many decimals: {currency.upper()} allows {noun}")
        return cls(amount, currency)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "Money":
        """Parse the API's ``MonetaryAmount`` (``{"amount": "12.30", "currency": "EUR"}``).

        Amounts the API sends with extra precision are rounded half-up to the minor unit."""
        try:
            raw, currency = data["amount"], data["currency"]
        except (KeyError, TypeError):
            raise MoneyError(f"not a MonetaryAmount: {data!r}") from None
        amount = _to_decimal(raw)
        try:
            amount = amount.quantize(tick(currency), rounding=ROUND_HALF_UP)
        except InvalidOperation:  # too many digits for the context (``1e999999``)
            raise MoneyError(f"amount out of range: {raw!r}") from None
        return cls(amount, currency)

    def to_api(self) -> str:
        """The decimal string the API expects (``"160.99"``, ``"1500"`` for JPY)."""
        return str(self.amount)

    def to_monetary(self) -> dict[str, str]:
        return {"amount": self.to_api(), "currency": self.currency}

    def with_amount(self, amount: Decimal, rounding: str = ROUND_DOWN) -> "Money":
        """The same currency with another amount, quantised to the minor unit."""
        return Money(amount.quantize(tick(self.currency), rounding=rounding), self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"


def money_text(value: Money | None) -> str | None:
    """The API's decimal string of an amount, or None (JSON null) when there is none."""
    return value.to_api() if value is not None else None
