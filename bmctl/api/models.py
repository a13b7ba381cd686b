"""Typed, frozen views of Back Market answers, parsed strictly and turned into the contract's JSON.

Parsing never raises KeyError/TypeError: a missing or mistyped field becomes a
:class:`~bmctl.api.errors.MalformedResponse` that names the request path and the requestId.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping

from bmctl.api.errors import MalformedResponse, malformed
from bmctl.api.markets import market_from_country
from bmctl.api.money import Money, MoneyError, money_text
from bmctl.traffic.transport import HttpRequest, HttpResponse


class JsonNumber(float):
    """A JSON number with a fractional part, keeping its exact source text.

    The API sends amounts as strings, but should one arrive as a JSON number we must not go
    through a binary float: ``text`` is what the money parser reads. Still a float, so ``raw``
    stays serialisable."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> "JsonNumber":
        number = super().__new__(cls, text)
        number.text = text
        return number


def decode(request: HttpRequest, response: HttpResponse) -> Any:
    """The JSON body of an answer; MalformedResponse when it does not parse."""
    try:
        return json.loads(response.body, parse_float=JsonNumber)
    except (ValueError, UnicodeDecodeError) as error:
        kind = "empty body" if not response.body.strip() else f"not JSON ({error})"
        raise malformed(request, response, kind) from None


class Reader:
    """Reads fields of one JSON object, raising MalformedResponse that say where and what."""

    def __init__(self, request: HttpRequest, response: HttpResponse, root: Any,
                 data: Any, where: str = "") -> None:
        self.request, self.response, self.root, self.where = request, response, root, where
        if not isinstance(data, dict):
            self.fail(f"expected an object, got {_kind(data)}")
        self.data: dict[str, Any] = data

    def fail(self, problem: str, name: str | None = None) -> MalformedResponse:
        place = ".".join(p for p in (self.where, name or "") if p)
        raise malformed(self.request, self.response, f"{place}: {problem}" if place else problem,
                        self.root)

    def child(self, data: Any, where: str) -> "Reader":
        return Reader(self.request, self.response, self.root, data, where)

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.data:
            if required:
                self.fail("missing required field", name)
            return None
        return self.data[name]

    def text(self, name: str, *, required: bool = True, nullable: bool = False) -> str | None:
        value = self._get(name, required)
        if value is None:
            if name in self.data and not nullable:
                self.fail("must not be null", name)
            return None
        if not isinstance(value, str):
            self.fail(f"expected a string, got {_kind(value)}", name)
        return value

    def integer(self, name: str, *, required: bool = True, nullable: bool = False) -> int | None:
        value = self._get(name, required)
        if value is None:
            if name in self.data and not nullable:
                self.fail("must not be null", name)
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            # Digits in a string are tolerated: the update endpoint takes both for quantity.
            if isinstance(value, str) and value.strip().isdigit():
                return int(value)
            self.fail(f"expected an integer, got {_kind(value)}", name)
        return value

    def flag(self, name: str, *, required: bool = True) -> bool | None:
        value = self._get(name, required)
        if value is None and not required:
            return None
        if not isinstance(value, bool):
            self.fail(f"expected true or false, got {_kind(value)}", name)
        return value

    def amount(self, name: str, currency: str, *, required: bool = True,
               nullable: bool = False) -> Money | None:
        """A listing amount: a decimal string in ``currency`` (a JSON number is tolerated)."""
        value = self._get(name, required)
        if value is None:
            if name in self.data and not nullable:
                self.fail("must not be null", name)
            return None
        return self._money(name, value, currency)

    def monetary(self, name: str, *, required: bool = True, nullable: bool = False) -> Money | None:
        """A ``MonetaryAmount`` object ``{"amount": "12.30", "currency": "EUR"}``."""
        value = self._get(name, required)
        if value is None:
            if name in self.data and not nullable:
                self.fail("must not be null", name)
            return None
        sub = self.child(value, f"{self.where}.{name}" if self.where else name)
        currency = sub.text("currency")
        assert currency is not None
        raw = sub._get("amount", True)
        return sub._money("amount", raw, currency)

    def _money(self, name: str, value: Any, currency: str) -> Money:
        if isinstance(value, JsonNumber):
            value = value.text
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            self.fail(f"expected a decimal string, got {_kind(value)}", name)
        try:
            # from_api rounds extra precision half-up, as the money module documents.
            return Money.from_api({"amount": str(value), "currency": currency})
        except (MoneyError, ArithmeticError) as error:
            self.fail(f"not an amount: {error}", name)
        raise AssertionError("unreachable")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", JsonNumber: "a number",
            str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


_amount = money_text


@dataclass(frozen=True)
class Listing:
    """One of the seller's listings, as ``ListingPublic`` describes it, in one market."""

    id: str
    sku: str
    currency: str
    price: Money | None
    min_price: Money | None
    max_price: Money | None
    quantity: int
    publication_state: int | None = None
    grade: str | None = None
    state: int | None = None
    title: str | None = None
    product_id: str | None = None
    legacy_id: int | None = None
    warranty_delay: int | None = None
    comment: str | None = None
    market: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_reader(cls, r: Reader, market: str | None) -> "Listing":
        """Parse one ListingPublic (also the update answer, which lacks ``product_id``)."""
        currency = r.text("currency")
        assert currency is not None
        # price and max_price are non-null strings in the spec, min_price a nullable string;
        # nulls are tolerated on price/max_price so a listing without them still lists.
        return cls(
            id=r.text("id") or "",
            sku=r.text("sku") or "",
            currency=currency.upper(),
            price=r.amount("price", currency, nullable=True),
            min_price=r.amount("min_price", currency, required=False, nullable=True),
            max_price=r.amount("max_price", currency, required=False, nullable=True),
            quantity=r.integer("quantity") or 0,
            publication_state=r.integer("publication_state", required=False, nullable=True),
            grade=r.text("grade", required=False, nullable=True),
            state=r.integer("state", required=False, nullable=True),
            title=r.text("title", required=False, nullable=True),
            product_id=r.text("product_id", required=False, nullable=True),
            legacy_id=r.integer("listing_id", required=False, nullable=True),
            warranty_delay=r.integer("warranty_delay", required=False, nullable=True),
            comment=r.text("comment", required=False, nullable=True),
            market=market,
            raw=r.data,
        )

    def to_json(self) -> dict[str, Any]:
        """The contract's listing object: amounts as decimal strings beside ``currency``."""
        return {
            "id": self.id,
            "sku": self.sku,
            "title": self.title,
            "product_id": self.product_id,
            "market": self.market,
            "price": _amount(self.price),
            "min_price": _amount(self.min_price),
            "max_price": _amount(self.max_price),
            "quantity": self.quantity,
            "currency": self.currency,
            "publication_state": self.publication_state,
            "grade": self.grade,
            # The rest of ListingPublic, as the API gave it (deprecated ids included: older
            # integrations still key on them).
            "state": self.state,
            "warranty_delay": self.warranty_delay,
            "comment": self.comment,
            "listing_id": self.legacy_id,
            "backmarket_id": self.raw.get("backmarket_id"),
            "shippings": self.raw.get("shippings"),
        }


@dataclass(frozen=True)
class ListingsPage:
    """One page of ``GET /ws/listings``."""

    count: int
    next: str | None
    previous: str | None
    results: tuple[Listing, ...]

    def to_json(self) -> dict[str, Any]:
        return {"count": self.count, "next": self.next, "previous": self.previous,
                "results": [listing.to_json() for listing in self.results]}


def market_code(country: str) -> str:
    """The Accept-Language code for a competitor record's two-letter market.

    The spec's MarketCode enum holds FI, which bmctl's market table does not know: such codes
    map to ``xx-xx`` (``fi-fi``), which is Back Market's locale for them, instead of failing."""
    try:
        return market_from_country(country).code
    except ValueError:
        code = country.strip().lower()
        return f"{code}-{code}" if len(code) == 2 and code.isalpha() else code


@dataclass(frozen=True)
class Competitor:
    """One ``Competitor`` record: our listing in one market's Backbox."""

    listing_id: str
    product_id: str | None
    market: str
    price: Money
    min_price: Money | None
    price_to_win: Money | None
    winner_price: Money | None
    is_winning: bool
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def currency(self) -> str:
        return self.price.currency

    @classmethod
    def from_reader(cls, r: Reader) -> "Competitor":
        country = r.text("market")
        assert country is not None
        if not country.strip():
            r.fail("empty market code", "market")
        return cls(
            listing_id=r.text("listing_id") or "",
            product_id=r.text("product_id", required=False, nullable=True),
            market=market_code(country),
            price=r.monetary("price"),  # type: ignore[arg-type]  # non-null: checked above
            min_price=r.monetary("min_price", required=False, nullable=True),
            # Non-null in the spec; tolerated as null so one odd market does not hide the others.
            price_to_win=r.monetary("price_to_win", nullable=True),
            winner_price=r.monetary("winner_price", required=False, nullable=True),
            is_winning=bool(r.flag("is_winning")),
            raw=r.data,
        )

    def to_json(self) -> dict[str, Any]:
        """The contract's competitors object (one per listing and market)."""
        return {
            "listing_id": self.listing_id,
            "market": self.market,
            "currency": self.currency,
            "price": _amount(self.price),
            "min_price": _amount(self.min_price),
            "price_to_win": _amount(self.price_to_win),
            "winner_price": _amount(self.winner_price),
            "is_winning": self.is_winning,
            "product_id": self.product_id,
        }


@dataclass(frozen=True)
class UpdateResult:
    """The answer to ``POST /ws/listings/{id}``; ``listing`` when the answer carried one."""

    listing_id: str
    market: str | None
    request_id: str | None
    listing: Listing | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        listing = self.listing
        return {
            "listing_id": self.listing_id,
            "market": self.market,
            "request_id": self.request_id,
            "currency": listing.currency if listing else None,
            "price": _amount(listing.price) if listing else None,
            "min_price": _amount(listing.min_price) if listing else None,
        }
