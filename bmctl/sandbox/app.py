"""The sandbox's request handler: Back Market's routes, checks, error envelopes and faults.

One request goes through, in order: the edge (WAF faults), the rate limits (429), 5xx faults,
authentication (401), ``Accept-Language`` (400), routing (404/405) and the route itself; a
``malformed`` fault then truncates the JSON of the answer (the request itself was served).
``timeout`` and ``drop`` faults never reach the marketplace: the transport acts them out.

Shapes follow ``openapi.yml``: ErrorResponseV1 envelopes (``error.code``, ``error.message``,
``requestId``) except where the spec says otherwise (POST /ws/listings/{id} answers 400 with a
JSON string). Every answer carries ``X-Request-Id``.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Mapping
from urllib.parse import urlencode

from bmctl.api.markets import MARKET_PATTERN, MARKETS, Market
from bmctl.api.money import Money, MoneyError
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.limits import DEFAULT_BLOCK, DEFAULT_LIMITS, SlidingWindowLimiter, scopes_for
from bmctl.sandbox.model import GRADES, BackboxView, Listing, Marketplace, Offer, UnknownListing
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError

DEFAULT_MARKET = "fr-fr"  # Accept-Language is optional in the spec; the EU host's first market
MAX_PAGE_SIZE = 50
DEFAULT_PAGE_SIZE = 10

_LISTINGS = re.compile(r"^/ws/listings/?$")
_LISTING = re.compile(r"^/ws/listings/([^/]+)/?$")
_COMPETITORS = re.compile(r"^/ws/backbox/v1/competitors/([^/]+)/?$")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_DECIMAL = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)$")
_SHIPPING = {f"{name}_{i}" for name in ("shipper", "shipper_display", "shipping_delay",
                                        "shipping_price") for i in (1, 2, 3)}
_UPDATABLE = {"price", "currency", "min_price", "quantity", "comment", "warranty_delay"} | _SHIPPING

_WAF_HTML = (b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
             b"<body><h1>Sorry, you have been blocked</h1><p>You are unable to access "
             b"backmarket.fr</p><p>Cloudflare Ray ID: %s</p></body></html>")


@dataclass(frozen=True)
class Decision:
    """The fate of one request, drawn before it is served: latency (s) and fault kind."""

    latency: float = 0.0
    fault: str | None = None


class _Refusal(Exception):
    """An error answer raised from deep inside a route."""

    def __init__(self, status: int, code: str, message: str, *, bare: bool = False) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.bare = status, code, message, bare


class SandboxApp:
    """HTTP semantics over a :class:`Marketplace`; not thread-safe (the server holds a lock)."""

    def __init__(self, marketplace: Marketplace, token: str = "sandbox", faults: Faults | None = None,
                 *, limits: Mapping[str, tuple[int, float]] | None = DEFAULT_LIMITS,
                 block: float = DEFAULT_BLOCK, rng: random.Random | None = None) -> None:
        self.marketplace = marketplace
        self.token = token
        self.faults = faults
        self.limiter = (SlidingWindowLimiter(marketplace.clock, limits, block)
                        if limits else None)
        self.rng = rng if rng is not None else random.Random(0)
        self._ids = random.Random(0x5A4DB0)  # request ids: own stream, so faults replay alike
        self.requests = 0

    # --- entry points -------------------------------------------------------------------------

    def decide(self, request: HttpRequest) -> Decision:
        """Draw this request's latency and fault (no draw at all without faults)."""
        if self.faults is None:
            return Decision()
        latency, fault = self.faults.draw(self.rng)
        return Decision(latency, fault)

    def respond(self, request: HttpRequest, decision: Decision = Decision()) -> HttpResponse:
        """Serve a request that reached the marketplace (after ``decide``)."""
        self.requests += 1
        request_id = str(uuid.UUID(int=self._ids.getrandbits(128), version=4))
        headers = {k.lower(): v for k, v in request.headers.items()}
        if decision.fault in ("waf", "challenge"):
            return self._waf(decision.fault == "challenge", request_id)
        try:
            response = self._serve(request, headers, decision, request_id)
        except _Refusal as refusal:
            response = _error(refusal, request_id)
        if decision.fault == "malformed" and response.body:
            cut = response.body[: max(1, len(response.body) // 2)]
            response = HttpResponse(response.status, response.headers, cut + b"\x00<!--")
        return response

    def handle(self, request: HttpRequest) -> HttpResponse:
        """``decide`` + ``respond``; timeout/drop faults raise TransportError, latency is ignored."""
        decision = self.decide(request)
        if decision.fault == "timeout":
            raise TransportError("timeout", "sandbox: the request timed out (injected fault)")
        if decision.fault == "drop":
            raise TransportError("connection", "sandbox: connection closed without an answer (injected fault)")
        return self.respond(request, decision)

    # --- pipeline -------------------------------------------------------------------------------

    def _serve(self, request: HttpRequest, headers: dict[str, str], decision: Decision,
               request_id: str) -> HttpResponse:
        method, path = request.method.upper(), request.path
        auth = headers.get("authorization", "")
        if self.limiter is not None:
            refused = self.limiter.admit(scopes_for(method, path, auth))
            if refused is not None:
                raise _Refusal(429, "too_many_requests",
                               f"Too many requests: the {refused} limit is exceeded; blocked for a while")
        if decision.fault == "error":
            status = self.rng.choice((500, 502, 503))
            raise _Refusal(status, "server_error", "The sandbox failed on purpose (injected 5xx)")
        if auth != f"Basic {self.token}":
            raise _Refusal(401, "unauthenticated",
                           "Authentication credentials were not provided or are invalid")
        market = _market_of(headers)
        if _LISTINGS.match(path):
            _allow(method, "GET")
            return self._listings_page(request, headers, market, request_id)
        match = _LISTING.match(path)
        if match:
            _allow(method, "GET", "POST")
            if method == "GET":
                listing, offer = self._find(match.group(1), market)
                return _json(200, {**_render(listing, offer), "statuscode": 200}, request_id)
            return self._update(match.group(1), market, request.body, request_id)
        match = _COMPETITORS.match(path)
        if match:
            _allow(method, "GET")
            return self._competitors(match.group(1), request_id)
        raise _Refusal(404, "not_found", f"No route for {method} {path}")

    # --- routes -----------------------------------------------------------------------------------

    def _find(self, listing_id: str, market: Market) -> tuple[Listing, Offer]:
        try:
            listing = self.marketplace.get(listing_id)
            offer = self.marketplace.offer(listing_id, market.code)
        except UnknownListing:
            raise _Refusal(404, "not_found", f"Listing {listing_id} not found in market "
                                             f"{market.code}, or it is not yours") from None
        return listing, offer

    def _listings_page(self, request: HttpRequest, headers: dict[str, str], market: Market,
                       request_id: str) -> HttpResponse:
        query = dict(request.query)
        page = _int_param(query, "page", 1, low=1) or 1
        size = _int_param(query, "page-size", DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE) or DEFAULT_PAGE_SIZE
        state = _int_param(query, "publication_state", None, low=0, high=4)
        min_q = _int_param(query, "min_quantity", None)
        max_q = _int_param(query, "max_quantity", None)
        # Filters read quantity and state, which time does not change: only the page shown is
        # brought up to the clock (a page of a 25,000-listing catalogue: 0.3 ms, not 8 ms).
        rows = [(listing, listing.offers[market.code]) for listing in self.marketplace.listings()
                if market.code in listing.offers
                and (state is None or listing.publication_state == state)
                and (min_q is None or listing.quantity >= min_q)
                and (max_q is None or listing.quantity <= max_q)]
        start = (page - 1) * size
        chunk = rows[start:start + size]
        self.marketplace.refresh(listing for listing, _ in chunk)
        base = (request.base_url or f"http://{headers.get('host', '127.0.0.1')}").rstrip("/")

        def link(number: int) -> str:
            params = {k: v for k, v in request.query if k not in ("page", "page-size")}
            return f"{base}/ws/listings?" + urlencode({**params, "page": number, "page-size": size})

        body = {
            "count": len(rows),
            "next": link(page + 1) if start + size < len(rows) else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": [_render(listing, offer) for listing, offer in chunk],
        }
        return _json(200, body, request_id)

    def _update(self, listing_id: str, market: Market, body: bytes | None,
                request_id: str) -> HttpResponse:
        listing, offer = self._find(listing_id, market)
        try:
            data = json.loads(body or b"", parse_float=Decimal)
        except (ValueError, UnicodeDecodeError):
            raise _Refusal(400, "invalid", "the body is not valid JSON", bare=True) from None
        if not isinstance(data, dict) or not data:
            raise _Refusal(400, "invalid", "the body must be a JSON object with the fields to change",
                           bare=True)
        unknown = sorted(set(data) - _UPDATABLE)
        if unknown:
            raise _Refusal(400, "invalid", f"unknown field(s): {', '.join(unknown)}", bare=True)
        changes = _validate_update(data, market)
        mp = self.marketplace
        if "price" in changes:
            mp.set_price(listing.id, market.code, changes["price"])
        if "min_price" in changes:
            mp.set_min_price(listing.id, market.code, changes["min_price"])
        if "quantity" in changes:
            mp.set_quantity(listing.id, changes["quantity"])
        if "comment" in changes or "warranty_delay" in changes:
            mp.set_details(listing.id, comment=changes.get("comment"),
                           warranty_delay=changes.get("warranty_delay"),
                           clear_comment="comment" in changes)
        listing, offer = self._find(listing.id, market)
        return _json(200, {**_render(listing, offer), "shippings_response": [], "statuscode": 200},
                     request_id)

    def _competitors(self, listing_id: str, request_id: str) -> HttpResponse:
        if not _UUID.match(listing_id):
            raise _Refusal(422, "unprocessable_entity", f"listing_id {listing_id!r} is not a UUID")
        try:
            views = self.marketplace.competitors(listing_id)
        except UnknownListing:
            raise _Refusal(404, "not_found", f"Listing {listing_id} not found") from None
        return _json(200, [_render_view(v) for v in views], request_id)

    def _waf(self, challenge: bool, request_id: str) -> HttpResponse:
        ray = f"{self._ids.getrandbits(64):016x}-CDG"
        if challenge:
            body = {"errors": [{"code": "bot-need-challenge", "message": "Forbidden",
                                "challengePath": "/testchallengepage"}]}
            return HttpResponse(403, {"content-type": "application/json", "cf-ray": ray,
                                      "server": "cloudflare"}, json.dumps(body).encode())
        return HttpResponse(403, {"content-type": "text/html; charset=UTF-8", "cf-ray": ray,
                                  "server": "cloudflare", "cache-control": "max-age=15"},
                            _WAF_HTML % ray.encode())


# --- helpers ----------------------------------------------------------------------------------


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise _Refusal(405, "method_not_allowed", f"{method} is not allowed here ({', '.join(allowed)})")


def _market_of(headers: Mapping[str, str]) -> Market:
    code = headers.get("accept-language", DEFAULT_MARKET).strip()
    if not MARKET_PATTERN.match(code) or code not in MARKETS:
        raise _Refusal(400, "invalid_market",
                       f"Accept-Language {code!r} is not a known market (e.g. fr-fr, de-de, en-gb, ja-jp)")
    return MARKETS[code]


def _int_param(query: Mapping[str, str], name: str, default: int | None, *, low: int | None = None,
               high: int | None = None) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Refusal(400, "invalid_parameter", f"{name} must be an integer, got {raw!r}") from None
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _Refusal(400, "invalid_parameter", f"{name} must be {bounds}, got {value}")
    return value


def _amount(name: str, value: Any, currency: str) -> Money:
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise _Refusal(400, "invalid", f"{name} must be a decimal string or a number", bare=True)
    if isinstance(value, str) and not _DECIMAL.match(value.strip()):
        raise _Refusal(400, "invalid", f"{name} {value!r} is not a decimal number", bare=True)
    try:
        return Money.parse(value, currency)
    except MoneyError as error:
        raise _Refusal(400, "invalid", f"{name}: {error}", bare=True) from None


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _Refusal(400, "invalid", f"{name} must be an integer >= {low}", bare=True)
    return value


def _validate_update(data: dict[str, Any], market: Market) -> dict[str, Any]:
    """Check every field before anything changes, so a refused update changes nothing."""
    changes: dict[str, Any] = {}
    if "price" in data or "min_price" in data or "currency" in data:
        # The spec: currency defaults to EUR on the EU platform and USD on NA; elsewhere required.
        default = {"EU": "EUR", "NA": "USD"}.get(market.platform)
        currency = data.get("currency", default)
        if currency is None:
            raise _Refusal(400, "invalid", f"currency is required in market {market.code} "
                                           f"({market.currency})", bare=True)
        if not isinstance(currency, str) or currency != market.currency:
            raise _Refusal(400, "invalid", f"currency {currency!r} does not match {market.currency}, "
                                           f"the currency of market {market.code}", bare=True)
    if "price" in data:
        changes["price"] = _amount("price", data["price"], market.currency)
    if "min_price" in data:
        value = data["min_price"]
        changes["min_price"] = None if value is None else _amount("min_price", value, market.currency)
    if "quantity" in data:
        changes["quantity"] = _integer("quantity", data["quantity"], 0)
    if "warranty_delay" in data:
        changes["warranty_delay"] = _integer("warranty_delay", data["warranty_delay"], 12)
    if "comment" in data:
        comment = data["comment"]
        if comment is not None and (not isinstance(comment, str) or len(comment) > 500):
            raise _Refusal(400, "invalid", "comment must be a string of at most 500 characters",
                           bare=True)
        changes["comment"] = comment
    return changes


def _render(listing: Listing, offer: Offer) -> dict[str, Any]:
    """ListingPublic for one market."""
    spec = listing.spec
    return {
        "id": spec.id, "listing_id": spec.listing_id, "product_id": spec.product_id,
        "backmarket_id": spec.backmarket_id, "title": spec.title, "shippings": [],
        "state": GRADES.get(spec.grade, 0), "grade": spec.grade, "quantity": listing.quantity,
        "currency": offer.currency, "sku": spec.sku,
        "publication_state": listing.publication_state, "warranty_delay": listing.warranty_delay,
        "price": str(offer.price), "comment": listing.comment,
        "min_price": str(offer.min_price) if offer.min_price is not None else None,
        "max_price": str(offer.max_price),
    }


def _render_view(view: BackboxView) -> dict[str, Any]:
    """One Competitor record (two-letter market code, MonetaryAmount fields)."""
    return {
        "listing_id": view.listing_id, "product_id": view.product_id,
        "market": view.market.country,
        "price": view.price.to_monetary(),
        "min_price": view.min_price.to_monetary() if view.min_price else None,
        "price_to_win": view.price_to_win.to_monetary(),
        "winner_price": view.winner_price.to_monetary() if view.winner_price else None,
        "is_winning": view.is_winning,
    }


def _json(status: int, body: Any, request_id: str) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json", "x-request-id": request_id},
                        json.dumps(body, separators=(",", ":")).encode())


def _error(refusal: _Refusal, request_id: str) -> HttpResponse:
    if refusal.bare:  # the spec's 400 of POST /ws/listings/{id} is a bare JSON string
        return _json(refusal.status, refusal.message, request_id)
    body = {"error": {"code": refusal.code, "message": refusal.message}, "requestId": request_id}
    return _json(refusal.status, body, request_id)
