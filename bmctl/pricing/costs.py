"""Pricing rules from cost and margin (``[pricing]`` and ``probe --costs``): the costs file, the
floor and ceiling they give a listing, and the caps on how far one write may move a price.

Everything is ``Decimal``: a TOML number is read through its decimal text, never computed as a
float. ``floor = (cost + fee_fixed) / (1 - fee_rate - min_margin)`` rounded up to the
currency's tick, ``ceiling`` likewise with ``max_margin``, rounded down. A blank, zero or
missing cost gives no floor at all (a floor of 0.01 is how repricers sold at a loss)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any, Mapping, TextIO

from bmctl.api.money import MINOR_UNITS, PLAIN_DECIMAL, Money, tick
from bmctl.errors import ConfigError, UsageError


def _decimal(value: Any, where: str) -> Decimal:
    """A plain decimal number from TOML (string, integer or number) or a file cell."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{where} must be a number such as \"0.15\", got {value!r}")
    text = str(value).strip()  # a float's str() is its shortest exact decimal text: 0.15, not 0.1499..
    if not PLAIN_DECIMAL.match(text):
        raise ConfigError(f"{where}: {value!r} is not a decimal number")
    return Decimal(text)


def parse_fraction(value: Any, where: str) -> Decimal:
    """A share of the price: ``0.15`` or ``"15%"`` (both 15 %)."""
    if isinstance(value, str) and value.strip().endswith("%"):
        return _decimal(value.strip()[:-1], where) / 100
    return _decimal(value, where)


@dataclass(frozen=True)
class Amounts:
    """An amount per currency (``"0.50 EUR"`` or a table ``{EUR = "0.50", GBP = "0.45"}``)."""

    by_currency: Mapping[str, Decimal] = field(default_factory=dict)

    def get(self, currency: str) -> Decimal | None:
        return self.by_currency.get(currency.upper())


def parse_amounts(value: Any, where: str) -> Amounts:
    """``"0.50 EUR"``, a table of currencies, or 0 (zero needs no currency)."""
    if isinstance(value, Mapping):
        table: dict[str, Decimal] = {}
        for currency, amount in value.items():
            code = _currency(str(currency), f"{where}.{currency}", ConfigError)
            number = _decimal(amount, f"{where}.{currency}")
            _places(number, code, f"{where}.{currency}")
            table[code] = _non_negative(number, f"{where}.{currency}")
        return Amounts(table)
    text = str(value).strip() if isinstance(value, (str, int, float)) and not isinstance(value, bool) else None
    if text is None:
        raise ConfigError(f"{where} must be an amount such as \"0.50 EUR\" or a table per currency")
    number_text, _, currency = text.partition(" ")
    if not currency.strip():
        if PLAIN_DECIMAL.match(text) and Decimal(text) == 0:
            return Amounts({code: Decimal(0) for code in MINOR_UNITS})
        raise ConfigError(f"{where}: {value!r} names no currency: write \"{text} EUR\", or a table "
                          "per currency ({ EUR = \"0.50\", GBP = \"0.45\" })")
    code = _currency(currency.strip(), where, ConfigError)
    number = _non_negative(_decimal(number_text, where), where)
    _places(number, code, where)
    return Amounts({code: number})


def _non_negative(number: Decimal, where: str) -> Decimal:
    if number < 0:
        raise ConfigError(f"{where} must not be negative, got {number}")
    return number


def _places(number: Decimal, currency: str, where: str) -> None:
    exponent = number.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MINOR_UNITS[currency]:
        raise ConfigError(f"{where}: {number} has more decimals than {currency} allows")


def _currency(text: str, where: str, error: type[ConfigError] | type[UsageError]) -> str:
    code = text.strip().upper()
    if code not in MINOR_UNITS:
        raise error(f"{where}: {text!r} is not a currency bmctl knows ({', '.join(MINOR_UNITS)})")
    return code


@dataclass(frozen=True)
class StepCap:
    """How far one write may move a price: a share of the price it moves from (``"5%"`` or
    ``0.05``), or an amount per currency (``"10.00 EUR"`` or a table)."""

    fraction: Decimal | None = None
    amounts: Amounts | None = None
    text: str = ""

    def amount(self, price: Money) -> Decimal | None:
        """The largest move allowed from ``price``; None when no amount is set for its currency."""
        if self.fraction is not None:
            return price.amount * self.fraction
        assert self.amounts is not None
        return self.amounts.get(price.currency)


def parse_step_cap(value: Any, where: str) -> StepCap:
    """A share (``"5%"``, ``0.05``: below 1) or an amount naming its currency (``"10.00 EUR"``,
    or a table per currency). A bare number of 1 or more is refused: ``10.00`` would be 1000 %."""
    if isinstance(value, Mapping) or (isinstance(value, str) and " " in value.strip()):
        amounts = parse_amounts(value, where)
        if any(a <= 0 for a in amounts.by_currency.values()):
            raise ConfigError(f"{where} must be greater than zero")
        shown = value if isinstance(value, str) else ", ".join(f"{k} {v}" for k, v in amounts.by_currency.items())
        return StepCap(amounts=amounts, text=shown)
    fraction = parse_fraction(value, where)
    if fraction <= 0:
        raise ConfigError(f"{where} must be greater than zero, got {value!r}")
    if fraction >= 1:
        raise ConfigError(f"{where}: {value!r} is read as a share of the price ({(fraction * 100).normalize():f} %); "
                          f"write \"{value} EUR\" (with the currency) for an amount, or \"5%\"")
    return StepCap(fraction=fraction, text=f"{(fraction * 100).normalize():f}%")


@dataclass(frozen=True)
class CostRow:
    """One line of a costs file."""

    line: int
    cost: Decimal | None  # None: blank or zero (no floor from it)
    currency: str | None


@dataclass
class CostTable:
    """A costs file, checked whole: rows by listing id and by sku, each for one market or all."""

    name: str = ""
    by_id: dict[tuple[str, str | None], CostRow] = field(default_factory=dict)
    by_sku: dict[tuple[str, str | None], CostRow] = field(default_factory=dict)

    def find(self, listing_id: str, legacy_id: Any, sku: str | None, market: str) -> CostRow | None:
        """The row for a listing in a market: by id (or legacy id), then by sku; a row naming the
        market before one for every market."""
        keys = [listing_id.lower()] + ([str(legacy_id)] if legacy_id else [])
        for table, names in ((self.by_id, keys), (self.by_sku, [sku] if sku else [])):
            for name in names:
                for scope in (market, None):
                    row = table.get((name, scope))
                    if row is not None:
                        return row
        return None

    def __len__(self) -> int:
        return len(self.by_id) + len(self.by_sku)


_KNOWN = ("id", "listing_id", "sku", "cost", "market", "currency")


def load_costs(path: str, stdin: TextIO | None = None) -> CostTable:
    """Read and check a costs file before any request: a header naming ``listing_id`` (or
    ``id``) and/or ``sku``, ``cost``, optional ``market`` and ``currency`` (other columns
    ignored). A malformed file is a UsageError naming the line and the column (exit 2)."""
    from contextlib import nullcontext

    from bmctl.pricing.targets import open_input

    source, name = open_input(path, stdin if stdin is not None else io.StringIO(""))
    with source if source is not stdin else nullcontext(source):
        return read_costs(source, name)


def parse_costs(text: str, name: str) -> CostTable:
    """The costs file's rows from its text (see :func:`load_costs`)."""
    return read_costs(io.StringIO(text), name)


def read_costs(source: TextIO, name: str) -> CostTable:
    """The costs file's rows, read as every CSV input is (``targets.csv_rows``: ``,`` or ``;``,
    comments and blank lines skipped), its columns taken by header."""
    from bmctl.pricing.targets import csv_rows

    found = csv_rows(source, name, header_marks=_KNOWN)
    if found.header is None:
        if not found.rows:
            raise UsageError(f"{name}: empty costs file (expected a header such as listing_id,cost)")
        number, cells = found.rows[0]
        raise UsageError(f"{name} line {number}: the first line must be a header naming listing_id (or id) "
                         f"and/or sku, and cost (optional: market, currency); got {','.join(cells)}")
    header: dict[str, int] = {}
    for position, cell in enumerate(found.header):
        header.setdefault(cell, position)
    if "cost" not in header or not {"id", "listing_id", "sku"} & header.keys():
        raise UsageError(f"{name} line {found.header_line}: the first line must be a header naming listing_id "
                         f"(or id) and/or sku, and cost (optional: market, currency); got {','.join(found.header)}")
    table = CostTable(name=name)
    seen: dict[tuple[str, str, str | None], int] = {}
    id_column = "id" if "id" in header else "listing_id"
    for number, cells in found.rows:
        where = f"{name} line {number}"
        if len(cells) > len(header) and any(cells[len(header):]):
            raise UsageError(f"{where}: {len(cells)} fields, the header has {len(header)}")

        def value(column: str, cells: list[str] = cells) -> str:
            position = header.get(column)
            return cells[position] if position is not None and position < len(cells) else ""

        listing = value(id_column)
        sku = value("sku")
        if not listing and not sku:
            raise UsageError(f"{where}: no {id_column} and no sku: which listing is this cost for?")
        market = None
        if value("market"):
            from bmctl.api.markets import get_market

            try:
                market = get_market(value("market")).code
            except UsageError as error:
                raise UsageError(f"{where}, column market: {error.message}") from None
        currency = _currency(value("currency"), f"{where}, column currency", UsageError) if value("currency") else None
        cost = _cost(value("cost"), f"{where}, column cost")
        if listing:
            key = _listing_key(listing, f"{where}, column {id_column}")
            _once(seen, ("id", key, market), number, where)
            table.by_id[(key, market)] = CostRow(number, cost, currency)
        else:
            _once(seen, ("sku", sku, market), number, where)
            table.by_sku[(sku, market)] = CostRow(number, cost, currency)
    return table


def _cost(text: str, where: str) -> Decimal | None:
    """A cost cell: blank or zero is no cost (never a floor); a negative or non-number is an error."""
    if not text:
        return None
    if not PLAIN_DECIMAL.match(text):
        shown = text if len(text) <= 30 else text[:27] + "..."
        raise UsageError(f"{where}: {shown!r} is not a decimal number such as 120.50")
    cost = Decimal(text)
    if cost < 0:
        raise UsageError(f"{where}: a cost must not be negative, got {text}")
    return cost if cost > 0 else None


def _listing_key(text: str, where: str) -> str:
    if text.isdigit():  # the legacy integer id, as `bmctl listings` writes in listing_id
        return text
    from bmctl.pricing.targets import listing_id_at

    return listing_id_at(text, where)


def _once(seen: dict[tuple[str, str, str | None], int], key: tuple[str, str, str | None], number: int,
          where: str) -> None:
    earlier = seen.setdefault(key, number)
    if earlier != number:
        scope = f" in {key[2]}" if key[2] else ""
        raise UsageError(f"{where}: the cost of {key[1]}{scope} is already on line {earlier}")


@dataclass(frozen=True)
class PricingRules:
    """The ``[pricing]`` rules a probe applies (with the costs file, when there is one)."""

    fee_rate: Decimal = Decimal(0)
    fee_fixed: Amounts | None = None  # None: no fixed fee in any currency
    min_margin: Decimal = Decimal(0)
    max_margin: Decimal | None = None
    max_step_down: StepCap | None = None
    max_step_up: StepCap | None = None
    costs: CostTable | None = None

    @property
    def active(self) -> bool:
        return self.costs is not None or self.max_step_down is not None or self.max_step_up is not None

    def cost_bounds(self, cost: CostRow, currency: str) -> tuple[Money | None, Money | None, str]:
        """(floor, ceiling, why not) from one cost row in ``currency``: no floor from a blank or
        zero cost; ``why not`` says why a row cannot be used (the listing is then skipped)."""
        if cost.currency is not None and cost.currency != currency:
            return None, None, (f"the costs file's line {cost.line} is in {cost.currency}, the "
                                f"market's currency is {currency}")
        if cost.cost is None:
            return None, None, ""
        fixed = self.fee_fixed.get(currency) if self.fee_fixed is not None else Decimal(0)
        if fixed is None:
            return None, None, f"[pricing] fee_fixed gives no amount in {currency}"
        base = cost.cost + fixed
        grid = tick(currency)
        floor = (base / (1 - self.fee_rate - self.min_margin)).quantize(grid, rounding=ROUND_CEILING)
        ceiling = None
        if self.max_margin is not None:
            # Equal or close margins round to a ceiling a tick under the floor (one rounded up,
            # the other down): the rule then allows one price, the floor, not none.
            top = (base / (1 - self.fee_rate - self.max_margin)).quantize(grid, rounding=ROUND_FLOOR)
            ceiling = Money(max(top, floor), currency)
        return Money(floor, currency), ceiling, ""


def rules_from_settings(pricing: Any, costs_path: str | None = None, *, base: Path | None = None,
                        stdin: TextIO | None = None) -> PricingRules:
    """The rules of ``[pricing]`` (``costs_path``, the ``--costs`` option, wins over its
    ``costs``, which is read relative to the config file's folder ``base``). Bad values are a
    ConfigError, a bad costs file a UsageError (exit 2 either way, before any request)."""
    rules = check_pricing(pricing)
    path = costs_path
    if path is None and pricing.costs:
        configured = Path(pricing.costs).expanduser()
        path = str(configured if configured.is_absolute() or base is None else base / configured)
    if path:
        return PricingRules(**{**rules.__dict__, "costs": load_costs(path, stdin)})
    return rules


def check_pricing(pricing: Any) -> PricingRules:
    """Parse and check ``[pricing]`` (``Settings.pricing``): fee and margins leave a positive
    denominator, ``max_margin`` ≥ ``min_margin``, caps are shares below 1 or amounts."""
    where = "[pricing]"
    fee_rate = parse_fraction(pricing.fee_rate, f"{where} fee_rate") if pricing.fee_rate != "" else Decimal(0)
    if not 0 <= fee_rate < 1:
        raise ConfigError(f"{where} fee_rate must be a share of the price from 0 to below 1, got {pricing.fee_rate!r}")
    fixed = parse_amounts(pricing.fee_fixed, f"{where} fee_fixed") if pricing.fee_fixed not in ("", None) else None
    min_margin = parse_fraction(pricing.min_margin, f"{where} min_margin") if pricing.min_margin != "" else Decimal(0)
    max_margin = parse_fraction(pricing.max_margin, f"{where} max_margin") if pricing.max_margin != "" else None
    for name, margin in (("min_margin", min_margin), ("max_margin", max_margin)):
        if margin is not None and 1 - fee_rate - margin <= 0:
            raise ConfigError(f"{where} 1 - fee_rate - {name} must be above zero (fee_rate {fee_rate}, "
                              f"{name} {margin}): no price could earn that margin")
    if max_margin is not None and max_margin < min_margin:
        raise ConfigError(f"{where} max_margin {max_margin} is below min_margin {min_margin}")
    down = parse_step_cap(pricing.max_step_down, f"{where} max_step_down") if pricing.max_step_down != "" else None
    up = parse_step_cap(pricing.max_step_up, f"{where} max_step_up") if pricing.max_step_up != "" else None
    return PricingRules(fee_rate=fee_rate, fee_fixed=fixed, min_margin=min_margin, max_margin=max_margin,
                        max_step_down=down, max_step_up=up)


__all__ = ["Amounts", "CostRow", "CostTable", "PricingRules", "StepCap", "check_pricing", "load_costs",
           "parse_costs", "parse_step_cap", "rules_from_settings"]
