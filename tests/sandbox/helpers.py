"""Builders shared by the sandbox tests: a tiny catalogue, a marketplace on a SimClock, requests."""

from __future__ import annotations

import json
import random
from typing import Any

from bmctl.api.money import Money
from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.model import Drift, ListingSpec, Marketplace, OfferSpec
from bmctl.traffic.clock import SimClock
from bmctl.traffic.transport import HttpRequest, HttpResponse

LID = "11111111-2222-4333-8444-555555555555"
JP = "aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee"
AUTH = {"Authorization": "Basic sandbox", "Accept-Language": "fr-fr"}


def eur(text: str) -> Money:
    return Money.parse(text, "EUR")


def spec(price: str = "100.00", rivals: tuple[str, ...] = ("95.00", "110.00"), *,
         min_price: str | None = "80.00", max_price: str = "150.00", incumbent: bool = False,
         quantity: int = 3, ident: str = LID, market: str = "fr-fr") -> ListingSpec:
    cur = "JPY" if market == "ja-jp" else "GBP" if market == "en-gb" else "EUR"
    m = lambda t: Money.parse(t, cur)  # noqa: E731
    offer = OfferSpec(market, m(price), m(max_price), m(min_price) if min_price else None,
                      tuple(m(r) for r in rivals), incumbent)
    return ListingSpec(id=ident, sku="SKU-1", offers=(offer,), quantity=quantity, listing_id=42,
                       product_id="99999999-8888-4777-8666-555555555555", backmarket_id=7,
                       title="Phone")


def market(*specs: ListingSpec, settle: float = 2.0, reveal: bool = True,
           drift: Drift | None = None, seed: int = 1) -> tuple[Marketplace, SimClock]:
    clock = SimClock()
    mp = Marketplace(clock.monotonic, settle=settle, reveal=reveal, drift=drift,
                     rng=random.Random(seed))
    mp.load(specs or (spec(),))
    return mp, clock


def app_for(*specs: ListingSpec, **kwargs: Any) -> tuple[SandboxApp, SimClock]:
    settle = kwargs.pop("settle", 0.0)
    mp, clock = market(*specs, settle=settle)
    return SandboxApp(mp, **kwargs), clock


def req(method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
        query: tuple[tuple[str, str], ...] = (), market: str | None = None) -> HttpRequest:
    h = dict(AUTH if headers is None else headers)
    if market:
        h["Accept-Language"] = market
    raw = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    return HttpRequest(method, path, query, h, raw)


def body(response: HttpResponse) -> Any:
    return json.loads(response.body)
