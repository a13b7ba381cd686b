"""Conformance with Back Market's openapi.yml: what bmctl sends and the answers it parses."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from bmctl.api.money import Money
from tests.api.helpers import (
    LISTING_ID,
    competitors_json,
    error_v1,
    fixed,
    json_response,
    listing_json,
    make_client,
    page_json,
    update_json,
)
from tests.api.openapi_schema import component, request_schema, response_schema, validate

LISTING = "/ws/listings/{listingId}"
COMPETITORS = "/ws/backbox/v1/competitors/{listingId}"


@pytest.mark.parametrize(
    ("market", "price", "min_price"),
    [
        ("fr-fr", "12.3", None),
        ("ja-jp", "1500", None),
        ("en-gb", None, "99.99"),
        ("sv-se", "1299.5", "999"),
        ("en-au", "1249.00", "1100.10"),
        ("en-us", "0.01", None),
    ],
)
def test_update_bodies_validate_against_the_request_schema(market: str, price: str | None,
                                                           min_price: str | None) -> None:
    from bmctl.api.markets import get_market

    currency = get_market(market).currency
    client, _ = make_client(fixed(json_response(200, {})))
    request = client.build_update_listing(
        LISTING_ID, market=market,
        price=Money.parse(price, currency) if price else None,
        min_price=Money.parse(min_price, currency) if min_price else None,
    )
    body = json.loads(request.body or b"")
    validate(body, request_schema(LISTING, "post"))
    # The spec accepts numbers too; bmctl sends strings only (never a float).
    assert all(isinstance(value, str) for value in body.values())
    assert body["currency"] == currency


def test_the_loader_is_strict_enough_to_catch_a_bad_body() -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate({"price": ["12.30"], "currency": "EUR"}, request_schema(LISTING, "post"))
    with pytest.raises(jsonschema.ValidationError):
        validate(dict(listing_json(), id="not-a-uuid"), response_schema(LISTING, "get", 200))
    with pytest.raises(jsonschema.ValidationError):
        validate({**competitors_json()[0], "market": "XX"}, component("Competitor"))


def parsed_and_valid(path: str, method: str, body: Any, status: int = 200) -> Any:
    validate(body, response_schema(path, method, status))
    return body


def test_listing_fixture_validates_and_parses() -> None:
    body = parsed_and_valid(LISTING, "get", listing_json())
    client, _ = make_client(fixed(json_response(200, body)))
    listing = client.get_listing(LISTING_ID)
    assert listing.to_json()["price"] == body["price"]


@pytest.mark.parametrize("overrides", [
    {"min_price": None, "comment": "Grade B, new battery"},
    {"currency": "JPY", "price": "45800", "min_price": "40000", "max_price": "52000",
     "grade": "EXCELLENT", "state": 0},
])
def test_listing_variants_validate_and_parse(overrides: dict[str, Any]) -> None:
    body = parsed_and_valid(LISTING, "get", listing_json(**overrides))
    client, _ = make_client(fixed(json_response(200, body)), market="ja-jp")
    listing = client.get_listing(LISTING_ID)
    assert listing.to_json()["min_price"] == body["min_price"]


def test_listings_page_fixture_validates_and_parses() -> None:
    ids = [LISTING_ID, "3fa85f64-5717-4562-b3fc-2c963f66afa6"]
    body = parsed_and_valid("/ws/listings", "get", page_json(ids, page=1, pages=2))
    client, _ = make_client(fixed(json_response(200, body)))
    request = client.build_listings_page(1)
    page = client.parse_listings_page(request, json_response(200, body))
    assert [listing.id for listing in page.results] == ids


def test_update_answer_fixture_validates_and_parses() -> None:
    body = parsed_and_valid(LISTING, "post", update_json(price="379.99"))
    client, _ = make_client(fixed(json_response(200, body)))
    result = client.update_listing(LISTING_ID, market="fr-fr", price=Money.parse("379.99", "EUR"))
    assert result.listing is not None and result.listing.to_json()["price"] == "379.99"


def test_competitors_fixture_validates_and_parses() -> None:
    body = competitors_json()
    body.append({
        "listing_id": LISTING_ID, "product_id": "6d4ad966-db97-4d88-b409-b28cc2a0f8c9",
        "market": "JP", "price": {"amount": "45800", "currency": "JPY"}, "min_price": None,
        "price_to_win": {"amount": "44999", "currency": "JPY"}, "winner_price": None,
        "is_winning": False,
    })
    parsed_and_valid(COMPETITORS, "get", body)
    client, _ = make_client(fixed(json_response(200, body)))
    records = client.competitors(LISTING_ID)
    assert [r.market for r in records] == ["fr-fr", "en-gb", "ja-jp"]
    for record, raw in zip(records, body):
        out = record.to_json()
        assert out["price"] == Money.from_api(raw["price"]).to_api()
        # What bmctl prints round-trips into the spec's MonetaryAmount shape.
        validate({"amount": out["price_to_win"], "currency": out["currency"]},
                 component("MonetaryAmount"))


@pytest.mark.parametrize("status", [401, 403])
def test_error_envelope_fixtures_validate(status: int) -> None:
    validate(error_v1("unauthenticated", "Invalid token"), response_schema(LISTING, "get", status))


def test_rate_limited_envelope_validates() -> None:
    validate(error_v1("too_many_requests", "Too many requests"), response_schema(LISTING, "post", 429))
