"""Reading and validating batch input (ids, CSV files, stdin) before the first request."""

from __future__ import annotations

import csv
import io
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, NamedTuple, Sequence, TextIO

from bmctl.api.markets import get_market
from bmctl.api.money import PLAIN_DECIMAL, Money, MoneyError
from bmctl.errors import UsageError
from bmctl.pricing.probe_types import ProbeTarget


@dataclass(frozen=True)
class PriceOrder:
    """One line of an update-price batch: set ``listing_id`` to ``price`` in ``market``."""

    listing_id: str
    market: str
    price: Money
    min_price: Money | None = None


def listing_id_at(text: str, where: str) -> str:
    """``text`` as a listing id, or a UsageError that says where it was read."""
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


def _money(text: str | None, market: str, what: str, where: str) -> Money | None:
    value = (text or "").strip()
    if not value:
        return None
    if not PLAIN_DECIMAL.match(value):
        shown = value if len(value) <= 30 else value[:27] + "..."
        raise UsageError(f"{where}: bad {what}: {shown!r} is not a decimal number such as 149.90")
    try:
        return Money.parse(value, get_market(market).currency)
    except MoneyError as error:
        raise UsageError(f"{where}: bad {what}: {error}") from None


_ID_COLUMNS = ("id", "listing_id", "listing")  # by preference: ``bmctl listings`` writes both
# ``id`` (the UUID) and ``listing_id`` (the legacy number)


def _delimiter(text: str) -> str:
    """``;`` when the first row that is not blank or a comment holds more of them than commas
    (as spreadsheets in decimal-comma locales write), else ``,``."""
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            return ";" if line.count(";") > line.count(",") else ","
    return ","


class Table(NamedTuple):
    """A CSV input: its header row's cells (lower-case; None when the file has none) and its
    data rows with their line numbers."""

    header: list[str] | None
    header_line: int
    rows: list[tuple[int, list[str]]]


def csv_rows(source: TextIO, name: str, header_marks: Sequence[str] = _ID_COLUMNS) -> Table:
    """The CSV rows with their line numbers, without blank lines or comments, and the header row
    (the first such row, when one of its cells is one of ``header_marks``: by default the id
    columns). The delimiter (``,`` or ``;``) is sniffed from the first row."""
    try:
        text = source.read().lstrip("\ufeff")  # a byte-order mark, as spreadsheets write
    except UnicodeDecodeError as error:
        raise UsageError(f"cannot read {name}: not UTF-8 text ({error.reason})") from None
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    for number, row in enumerate(reader, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if not rows and header is None and any(cell.lower() in header_marks for cell in cells):
            header, header_line = [cell.lower() for cell in cells], number
            continue
        rows.append((number, cells))
    return Table(header, header_line, rows)


def _no_repeat(seen: dict[tuple[str, str], int], listing_id: str, market: str, where: str,
               number: int) -> None:
    """One line per listing and market: two would race each other (and one would be lost)."""
    earlier = seen.setdefault((listing_id, market), number)
    if earlier != number:
        raise UsageError(f"{where}: {listing_id} in {market} is already on line {earlier}")


def open_input(path: str, stdin: TextIO) -> tuple[TextIO, str]:
    """The file at ``path`` (UTF-8, a byte-order mark dropped), or ``stdin`` for ``-``."""
    if path == "-":
        return stdin, "<stdin>"
    try:
        return Path(path).open(newline="", encoding="utf-8-sig"), path
    except OSError as error:
        raise UsageError(f"cannot read {path}: {error.strerror}") from None


def probe_targets_from_file(path: str, default_market: str, stdin: TextIO) -> list[ProbeTarget]:
    """``listing_id[,floor][,ceiling][,market]`` per line; every line is checked before any
    request is sent."""
    source, name = open_input(path, stdin)
    targets: list[ProbeTarget] = []
    seen: dict[tuple[str, str], int] = {}
    with source if source is not stdin else nullcontext(source):
        for number, cells in csv_rows(source, name).rows:
            where = f"{name} line {number}"
            if len(cells) > 4:
                raise UsageError(f"{where}: expected listing_id[,floor][,ceiling][,market], got {len(cells)} fields")
            cells += [""] * (4 - len(cells))
            market = _market(cells[3], default_market, where)
            floor = _money(cells[1], market, "floor", where)
            ceiling = _money(cells[2], market, "ceiling", where)
            if floor is not None and ceiling is not None and floor > ceiling:
                raise UsageError(f"{where}: floor {floor} is above ceiling {ceiling}")
            listing_id = listing_id_at(cells[0], where)
            _no_repeat(seen, listing_id, market, where, number)
            targets.append(ProbeTarget(listing_id, market, floor, ceiling, source="file"))
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
    # The same id twice (same market, same bounds) is one probe: two would race each other.
    return [ProbeTarget(listing_id, market, low, high) for listing_id in listing_ids(ids, stdin)]


def listing_ids(ids: Iterable[str], stdin: TextIO) -> list[str]:
    """Ids from the command line, each once, in order; ``-`` reads more from stdin, one per
    line (blank lines and ``#`` comments skipped). All are checked before any request."""
    found: list[str] = []
    for value in ids:
        if value == "-":
            for number, line in enumerate(stdin, start=1):
                text = line.strip().lstrip("\ufeff").strip()
                if text and not text.startswith("#"):
                    found.append(listing_id_at(text, f"<stdin> line {number}"))
        else:
            found.append(listing_id_at(value, "argument"))
    return list(dict.fromkeys(found))


class Enumerated(NamedTuple):
    """What ``--all`` found: the targets, the listing pages read, and per listing (lower-case
    id) the markets whose pages showed it priced in their own currency."""

    targets: list[ProbeTarget]
    pages: int
    listed_in: dict[str, set[str]]


def listing_targets(client: Any, markets: Sequence[str], floor: Money | None = None,
                    ceiling: Money | None = None, own: Any = None) -> Enumerated:
    """``--all``: the listings with stock, from ``GET /ws/listings`` with each market's
    Accept-Language (LOW priority, every market's first page at once).

    One market: a target per listing priced in its currency (a row in another currency is
    another market's listing, from a server that ignored Accept-Language). Several markets: a
    target per distinct listing, whose probe learns from its first competitors read which
    markets it competes in (the answer names them all), so that a listing shown on every
    market's pages costs one read, not one per market it does not compete in. ``own`` (an
    ``OwnOffers``) learns every listing's product, so that no probe reads the pages again."""
    from bmctl.api.client import MAX_PAGE_SIZE

    discover = tuple(markets) if len(markets) > 1 else ()
    currencies = {get_market(market).currency for market in markets}
    targets: list[ProbeTarget] = []
    rows: dict[str, int] = dict.fromkeys(markets, 0)
    listed_in: dict[str, set[str]] = {}
    seen: set[str] = set()
    for market, listing in client.iter_listings_by_market(markets, min_quantity=1):
        rows[market] += 1
        if own is not None:
            own.saw_listing(listing)
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
    if own is not None:
        own.loaded.update(markets)
    return Enumerated(targets, pages, listed_in)


def price_order(listing_id: str, price: str, market: str, min_price: str | None = None) -> PriceOrder:
    """One order from the command line, validated like a CSV row."""
    market = _market(market, market, "--market")
    amount = _money(price, market, "PRICE", "argument")
    if amount is None:
        raise UsageError("missing PRICE")
    return PriceOrder(listing_id_at(listing_id, "argument"), market, amount,
                      _money(min_price, market, "--min-price", "option"))


def with_min_price(orders: list[PriceOrder], min_price: str | None) -> list[PriceOrder]:
    """The orders with ``--min-price`` applied (in each order's currency)."""
    if min_price is None:
        return orders
    return [
        PriceOrder(o.listing_id, o.market, o.price, _money(min_price, o.market, "--min-price", "option"))
        for o in orders
    ]


def _price_columns(header: list[str], where: str) -> tuple[int, int, int | None, int | None]:
    """Where a header puts the id, the price, and the optional market and min_price (the first
    column of each name; ``id`` before ``listing_id``)."""
    index: dict[str, int] = {}
    for position, cell in enumerate(header):
        index.setdefault(cell, position)
    id_column = next(index[column] for column in _ID_COLUMNS if column in index)
    if "price" not in index:
        raise UsageError(f"{where}: the header has no price column")
    return id_column, index["price"], index.get("market"), index.get("min_price")


def price_orders_from_file(path: str, default_market: str, stdin: TextIO) -> list[PriceOrder]:
    """``listing_id,price[,market]`` per line, or, under a header row, the ``id`` (or
    ``listing_id``), ``price`` and optional ``market`` and ``min_price`` columns by name (other
    columns ignored: ``bmctl listings --format csv`` output reads back); ``,`` or ``;``
    separated. The whole file is checked first."""
    source, name = open_input(path, stdin)
    orders: list[PriceOrder] = []
    seen: dict[tuple[str, str], int] = {}
    with source if source is not stdin else nullcontext(source):
        table = csv_rows(source, name)
    columns = _price_columns(table.header, f"{name} line {table.header_line}") if table.header else None
    for number, cells in table.rows:
        where = f"{name} line {number}"
        if columns is None:
            if len(cells) < 2 or len(cells) > 3:
                raise UsageError(f"{where}: expected listing_id,price[,market], got {len(cells)} field(s)")
            id_text, price_text = cells[0], cells[1]
            market_text, min_text = (cells[2] if len(cells) == 3 else None), None
        else:
            assert table.header is not None
            if len(cells) > len(table.header):
                raise UsageError(f"{where}: {len(cells)} fields, the header has {len(table.header)}")
            cells += [""] * (len(table.header) - len(cells))
            id_text, price_text = cells[columns[0]], cells[columns[1]]
            market_text = cells[columns[2]] if columns[2] is not None else None
            min_text = cells[columns[3]] if columns[3] is not None else None
        market = _market(market_text, default_market, where)
        price = _money(price_text, market, "price", where)
        if price is None:
            raise UsageError(f"{where}: missing price")
        min_price = _money(min_text, market, "min_price", where)
        listing_id = listing_id_at(id_text, where)
        _no_repeat(seen, listing_id, market, where, number)
        orders.append(PriceOrder(listing_id, market, price, min_price))
    if not orders:
        raise UsageError(f"{name} holds no prices")
    return orders
