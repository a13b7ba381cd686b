"""Shared test helpers for bmctl.api: realistic fixtures, a stand-in executor, fake transports."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, Callable

from bmctl.api.client import BackMarketClient
from bmctl.traffic.queue import Priority
from bmctl.traffic.transport import HttpRequest, HttpResponse, Transport

TOKEN = "c2VsbGVyLXNlY3JldC10b2tlbi0xMjM0NQ=="  # looks like an issued (base64) token
USER_AGENT = "BM-Acme-bmctl;ops@acme.example"
BASE_URL = "https://www.backmarket.fr"
LISTING_ID = "7a97a1b6-547e-4718-bc72-5b84aca91b09"
OTHER_ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
PRODUCT_ID = "6d4ad966-db97-4d88-b409-b28cc2a0f8c9"
REQUEST_ID = "req-2f9c1a7e"


def listing_json(listing_id: str = LISTING_ID, **overrides: Any) -> dict[str, Any]:
    """A ListingPublic as GET /ws/listings/{id} answers it (statuscode included)."""
    data: dict[str, Any] = {
        "id": listing_id,
        "listing_id": 4567,
        "product_id": PRODUCT_ID,
        "backmarket_id": 42,
        "title": "iPhone 13 - 128 GB - Midnight - Unlocked",
        "shippings": [
            {"shipping_price": "0.00", "shipping_delay": 24, "shipper": "UPS",
             "shipper_display": "UPS", "country_code": "fr-fr"},
        ],
        "state": 2,
        "grade": "GOOD",
        "quantity": 12,
        "currency": "EUR",
        "sku": "IPHONE13-128-MID-GOOD",
        "publication_state": 2,
        "warranty_delay": 12,
        "price": "389.00",
        "comment": None,
        "min_price": "349.00",
        "max_price": "449.00",
        "new_battery": False,
        "statuscode": 200,
    }
    data.update(overrides)
    return data


def page_json(ids: list[str], *, page: int, pages: int, base: str = BASE_URL,
              page_size: int = 50) -> dict[str, Any]:
    """One page of GET /ws/listings with next/previous links."""
    results = []
    for listing_id in ids:
        item = listing_json(listing_id)
        item.pop("statuscode")
        results.append(item)
    link = f"{base}/ws/listings?page={{}}&page-size={page_size}"
    return {
        "count": len(ids) * pages,
        "next": link.format(page + 1) if page < pages else None,
        "previous": link.format(page - 1) if page > 1 else None,
        "results": results,
    }


def competitors_json(listing_id: str = LISTING_ID) -> list[dict[str, Any]]:
    """GET /ws/backbox/v1/competitors/{id}: our listing in France (losing) and Britain (winning)."""
    return [
        {
            "listing_id": listing_id, "product_id": PRODUCT_ID, "market": "FR",
            "price": {"amount": "389.00", "currency": "EUR"},
            "min_price": {"amount": "349.00", "currency": "EUR"},
            "price_to_win": {"amount": "379.99", "currency": "EUR"},
            "winner_price": {"amount": "380.00", "currency": "EUR"},
            "is_winning": False,
        },
        {
            "listing_id": listing_id, "product_id": PRODUCT_ID, "market": "GB",
            "price": {"amount": "329.00", "currency": "GBP"},
            "min_price": None,
            "price_to_win": {"amount": "339.50", "currency": "GBP"},
            "winner_price": {"amount": "329.00", "currency": "GBP"},
            "is_winning": True,
        },
    ]


def update_json(listing_id: str = LISTING_ID, **overrides: Any) -> dict[str, Any]:
    """The 200 answer of POST /ws/listings/{id} (no product_id, per the spec)."""
    data = listing_json(listing_id, **overrides)
    data.pop("product_id")
    data.pop("new_battery")
    data["shippings_response"] = []
    return data


def error_v1(code: str, message: str, request_id: str | None = REQUEST_ID) -> dict[str, Any]:
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if request_id:
        body["requestId"] = request_id
    return body


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json", **(headers or {})},
                        json.dumps(data).encode())


@dataclass
class ScriptedTransport:
    """Answers from a function of the request (or a queue of answers), recording every request."""

    answer: Callable[[HttpRequest], HttpResponse]
    sent: list[HttpRequest] = field(default_factory=list)

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.sent.append(request)
        return self.answer(request)


@dataclass
class StandInExecutor:
    """Stands in for the TrafficController: sends straight through a transport, once (an
    ``accept`` check is not applied: nothing is retried here)."""

    transport: Transport
    priorities: list[Priority] = field(default_factory=list)

    def execute(self, request: HttpRequest, priority: Priority = Priority.NORMAL, *,
                accept: Any = None) -> HttpResponse:
        self.priorities.append(priority)
        return self.transport.send(request, 5.0)


def make_client(transport: Transport, market: str = "fr-fr",
                base_url: str = BASE_URL) -> tuple[BackMarketClient, StandInExecutor]:
    executor = StandInExecutor(transport)
    client = BackMarketClient(executor, base_url=base_url, token=TOKEN, user_agent=USER_AGENT,
                              market=market)
    return client, executor


def fixed(response: HttpResponse) -> ScriptedTransport:
    return ScriptedTransport(lambda request: copy.copy(response))
