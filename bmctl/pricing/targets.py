"""Reading and validating batch input (ids, CSV files, stdin) before the first request."""

from __future__ import annotations

import csv
import re
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence, TextIO

from bmctl.api.markets import get_market
from bmctl.api.money import Money, MoneyError
from bmctl.errors import UsageError
from bmctl.pricing.probe import ProbeTarget


@dataclass(frozen=True)
class PriceOrder:
    """One line of an update-price batch: set ``listing_id`` to ``price`` in ``market``."""

    listing_id: str
    market: str
    price: Money
    min_price: Money | None = None


def _listing_id(text: str, where: str) -> str:
    from bmctl.api.client import validate_listing_id

    try:
        return validate_listing_id(text)
    except UsageError as error:
        raise UsageError(f"{where}: {error.message}") from None


def _market(text: str | None, default: str, where: str) -> str:
    value = (text or "").strip() or default
    try:
        return get_market(value).code
    except UsageError as error:
        raise UsageError(f"{where}: {error.message}") from None


# What a person types as a price: ASCII digits, an optional fraction, an optional sign (so
# that "-5" is refused for being negative). Decimal() alone would also take "1e3", "1_000",
# "NaN" or non-ASCII digits.
_PLAIN_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")


def _money(text: str | None, market: str, what: str, where: str) -> Money | None:
    value = (text or "").strip()
    if not value:
        return None
    if not _PLAIN_DECIMAL.match(value):
        shown = value if len(value) <= 30 else value[:27] + "..."
        raise UsageError(f"{where}: bad {what}: {shown!r} is not a decimal number such as 149.90")
    try:
        return Money.parse(value, get_market(market).currency)
    except MoneyError as error:
        raise UsageError(f"{where}: bad {what}: {error}") from None


def _rows(source: TextIO, name: str) -> Iterable[tuple[int, list[str]]]:
    """CSV rows with their line numbers, without blank lines, comments or a header row (the
    first row that is neither, when its first cell names the id column)."""
    first = True
    for number, row in enumerate(csv.reader(source), start=1):
        cells = [cell.strip() for cell in row]
        if number == 1 and cells:  # a byte-order mark, as spreadsheets write (stdin keeps it)
            cells[0] = cells[0].lstrip("\ufeff").strip()
        if not any(cells) or cells[0].startswith("#"):
            continue
        if first and cells[0].lower() in ("listing_id", "id", "listing"):
            first = False
            continue
        first = False
        yield number, cells


def _no_repeat(seen: dict[tuple[str, str], int], listing_id: str, market: str, where: str,
               number: int) -> None:
    """One line per listing and market: two would race each other (and one would be lost)."""
    earlier = seen.setdefault((listing_id, market), number)
    if earlier != number:
        raise UsageError(f"{where}: {listing_id} in {market} is already on line {earlier}")


def _open(path: str, stdin: TextIO) -> tuple[TextIO, str]:
    if path == "-":
        return stdin, "<stdin>"
    try:
        return Path(path).open(newline="", encoding="utf-8-sig"), path
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def probe_targets_from_file(path: str, default_market: str, stdin: TextIO) -> list[ProbeTarget]:
    """``listing_id[,floor][,ceiling][,market]`` per line; every line is checked before any
    request is sent."""
    source, name = _open(path, stdin)
    targets: list[ProbeTarget] = []
    seen: dict[tuple[str, str], int] = {}
    with source if source is not stdin else nullcontext(source):
        for number, cells in _rows(source, name):
            where = f"{name} line {number}"
            if len(cells) > 4:
                raise UsageError(f"{where}: expected listing_id[,floor][,ceiling][,market], got {len(cells)} fields")
            cells += [""] * (4 - len(cells))
            market = _market(cells[3], default_market, where)
            floor = _money(cells[1], market, "floor", where)
            ceiling = _money(cells[2], market, "ceiling", where)
            if floor is not None and ceiling is not None and floor > ceiling:
                raise UsageError(f"{where}: floor {floor} is above ceiling {ceiling}")
            listing_id = _listing_id(cells[0], where)
            _no_repeat(seen, listing_id, market, where, number)
            targets.append(ProbeTarget(listing_id, market, floor, ceiling))
    return targets


def parse_bounds(market: str, floor: str | None, ceiling: str | None) -> tuple[Money | None, Money | None]:
    """``--floor`` and ``--ceiling`` in the market's currency."""
    low = _money(floor, market, "--floor", "option")
    high = _money(ceiling, market, "--ceiling", "option")
    if low is not None and high is not None and low > high:
        raise UsageError(f"--floor {low} is above --ceiling {high}")
    return low, high


def probe_targets_from_ids(ids: Iterable[str], market: str, floor: str | None, ceiling: str | None,
                           stdin: TextIO) -> list[ProbeTarget]:
    """Ids from the command line (``-`` reads more ids from stdin, one per line)."""
    market = _market(market, market, "--market")
    low, high = parse_bounds(market, floor, ceiling)
    listing_ids: list[str] = []
    for value in ids:
        if value == "-":
            for number, line in enumerate(stdin, start=1):
                text = line.strip().lstrip("\ufeff")
                if text and not text.startswith("#"):
                    listing_ids.append(_listing_id(text, f"<stdin> line {number}"))
        else:
            listing_ids.append(_listing_id(value, "argument"))
    # The same id twice (same market, same bounds) is one probe: two would race each other.
    return [ProbeTarget(listing_id, market, low, high) for listing_id in dict.fromkeys(listing_ids)]


class Enumerated(NamedTuple):
    """What ``--all`` found: the targets, the listing pages read, and per listing (lower-case
    id) the markets whose pages showed it priced in their own currency."""

    targets: list[ProbeTarget]
    pages: int
    listed_in: dict[str, set[str]]


def listing_targets(client: Any, markets: Sequence[str], floor: Money | None = None,
                    ceiling: Money | None = None) -> Enumerated:
    """``--all``: the listings with stock, from ``GET /ws/listings`` with each market's
    Accept-Language (LOW priority, every market's first page at once).

    One market: a target per listing priced in its currency (a row in another currency is
    another market's listing, from a server that ignored Accept-Language). Several markets: a
    target per distinct listing, whose probe learns from its first competitors read which
    markets it competes in (the answer names them all), so that a listing shown on every
    market's pages costs one read, not one per market it does not compete in."""
    from bmctl.api.client import MAX_PAGE_SIZE

    discover = tuple(markets) if len(markets) > 1 else ()
    currencies = {get_market(market).currency for market in markets}
    targets: list[ProbeTarget] = []
    rows: dict[str, int] = dict.fromkeys(markets, 0)
    listed_in: dict[str, set[str]] = {}
    seen: set[str] = set()
    for market, listing in client.iter_listings_by_market(markets, min_quantity=1):
        rows[market] += 1
        key = listing.id.lower()
        own_currency = listing.currency == get_market(market).currency
        if own_currency:
            listed_in.setdefault(key, set()).add(market)
        # Priced in none of the markets' currencies: another platform's listing.
        if key in seen or not (own_currency or (discover and listing.currency in currencies)):
            continue
        seen.add(key)
        targets.append(ProbeTarget(listing.id, market, floor, ceiling, discover=discover))
    pages = sum(max(1, -(-count // MAX_PAGE_SIZE)) for count in rows.values())
    return Enumerated(targets, pages, listed_in)


def price_order(listing_id: str, price: str, market: str, min_price: str | None = None) -> PriceOrder:
    """One order from the command line, validated like a CSV row."""
    market = _market(market, market, "--market")
    amount = _money(price, market, "PRICE", "argument")
    if amount is None:
        raise UsageError("missing PRICE")
    return PriceOrder(_listing_id(listing_id, "argument"), market, amount,
                      _money(min_price, market, "--min-price", "option"))


def with_min_price(orders: list[PriceOrder], min_price: str | None) -> list[PriceOrder]:
    """The orders with ``--min-price`` applied (in each order's currency)."""
    if min_price is None:
        return orders
    return [
        PriceOrder(o.listing_id, o.market, o.price, _money(min_price, o.market, "--min-price", "option"))
        for o in orders
    ]


def price_orders_from_file(path: str, default_market: str, stdin: TextIO) -> list[PriceOrder]:
    """``listing_id,price[,market]`` per line; the whole file is checked first."""
    source, name = _open(path, stdin)
    orders: list[PriceOrder] = []
    seen: dict[tuple[str, str], int] = {}
    with source if source is not stdin else nullcontext(source):
        for number, cells in _rows(source, name):
            where = f"{name} line {number}"
            if len(cells) < 2 or len(cells) > 3:
                raise UsageError(f"{where}: expected listing_id,price[,market], got {len(cells)} field(s)")
            market = _market(cells[2] if len(cells) == 3 else None, default_market, where)
            price = _money(cells[1], market, "price", where)
            if price is None:
                raise UsageError(f"{where}: missing price")
            listing_id = _listing_id(cells[0], where)
            _no_repeat(seen, listing_id, market, where, number)
            orders.append(PriceOrder(listing_id, market, price))
    if not orders:
        raise UsageError(f"{name} holds no prices")
    return orders

