"""Models: strict parsing into frozen dataclasses, and the contract's JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from bmctl.api.errors import MalformedResponse
from bmctl.api.models import Competitor, Listing, market_code
from bmctl.api.money import Money
from bmctl.traffic.transport import HttpResponse
from tests.api.helpers import (
    LISTING_ID,
    PRODUCT_ID,
    REQUEST_ID,
    competitors_json,
    fixed,
    json_response,
    listing_json,
    make_client,
    page_json,
    update_json,
)

COMPETITOR_FIELDS = ["listing_id", "market", "currency", "price", "min_price", "price_to_win",
                     "winner_price", "is_winning"]
LISTING_FIELDS = ["id", "sku", "price", "min_price", "max_price", "quantity", "currency",
                  "publication_state"]


def parse_listing(body: object, market: str = "fr-fr") -> Listing:
    client, _ = make_client(fixed(json_response(200, body)))
    request = client.build_get_listing(LISTING_ID, market=market)
    return client.parse_listing(request, json_response(200, body))


def parse_competitors(body: object) -> list[Competitor]:
    client, _ = make_client(fixed(json_response(200, body)))
    request = client.build_competitors(LISTING_ID)
    return client.parse_competitors(request, json_response(200, body))


def test_listing_fields() -> None:
    listing = parse_listing(listing_json())
    assert listing.id == LISTING_ID and listing.sku == "IPHONE13-128-MID-GOOD"
    assert listing.price == Money(Decimal("389.00"), "EUR")
    assert listing.min_price == Money(Decimal("349"), "EUR")
    assert listing.max_price == Money(Decimal("449"), "EUR")
    assert (listing.quantity, listing.currency, listing.publication_state) == (12, "EUR", 2)
    assert (listing.grade, listing.state, listing.title) == ("GOOD", 2, listing_json()["title"])
    assert listing.product_id == PRODUCT_ID and listing.legacy_id == 4567
    assert listing.market == "fr-fr" and listing.raw["statuscode"] == 200
    with pytest.raises(AttributeError):
        listing.price = None  # type: ignore[misc]  # frozen


def test_listing_to_json() -> None:
    data = parse_listing(listing_json(min_price=None)).to_json()
    assert list(data)[:1] == ["id"] and set(LISTING_FIELDS) <= set(data)
    assert data["price"] == "389.00" and data["min_price"] is None and data["max_price"] == "449.00"
    assert data["currency"] == "EUR" and data["quantity"] == 12 and data["market"] == "fr-fr"
    json.dumps(data)  # plain JSON types only


def test_listing_in_yen_has_no_decimals() -> None:
    listing = parse_listing(listing_json(currency="JPY", price="45800", min_price="40000",
                                         max_price="52000.0"), market="ja-jp")
    assert listing.to_json()["price"] == "45800" and listing.to_json()["max_price"] == "52000"


def test_listing_amounts_sent_as_numbers_are_read_exactly() -> None:
    body = json.dumps(listing_json()).replace('"389.00"', "389.10").encode()
    client, _ = make_client(fixed(HttpResponse(200, {}, body)))
    listing = client.get_listing(LISTING_ID)
    assert listing.price == Money(Decimal("389.10"), "EUR")
    json.dumps(dict(listing.raw))  # raw stays serialisable


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": None}, "id"),
        ({"price": "abc"}, "price"),
        ({"price": "NaN"}, "price"),
        ({"price": True}, "price"),
        ({"price": ["1"]}, "price"),
        ({"quantity": "lots"}, "quantity"),
        ({"quantity": None}, "quantity"),
        ({"currency": "XXX"}, "price"),
        ({"currency": 3}, "currency"),
        ({"sku": 12}, "sku"),
        ({"publication_state": "2x"}, "publication_state"),
    ],
)
def test_listing_bad_fields_are_malformed(change: dict[str, object], field: str) -> None:
    body = listing_json(requestId=REQUEST_ID, **change)
    with pytest.raises(MalformedResponse) as caught:
        parse_listing(body)
    assert field in str(caught.value) and REQUEST_ID in str(caught.value)
    assert f"/ws/listings/{LISTING_ID}" in str(caught.value)


@pytest.mark.parametrize("name", ["id", "sku", "currency", "quantity", "price"])
def test_listing_missing_required_fields(name: str) -> None:
    body = listing_json()
    del body[name]
    with pytest.raises(MalformedResponse, match=f"{name}: missing required field"):
        parse_listing(body)


@pytest.mark.parametrize("body", [[], "text", None, 5])
def test_listing_not_an_object(body: object) -> None:
    with pytest.raises(MalformedResponse, match="expected an object"):
        parse_listing(body)


def test_competitors_fields_and_market_mapping() -> None:
    france, britain = parse_competitors(competitors_json())
    assert france.market == "fr-fr" and britain.market == "en-gb"
    assert france.price == Money(Decimal("389"), "EUR") and france.currency == "EUR"
    assert france.price_to_win == Money(Decimal("379.99"), "EUR")
    assert france.winner_price == Money(Decimal("380"), "EUR")
    assert france.is_winning is False and britain.is_winning is True
    assert britain.min_price is None and britain.currency == "GBP"
    assert france.product_id == PRODUCT_ID and france.raw["market"] == "FR"


def test_competitor_to_json_is_the_contract() -> None:
    records = [c.to_json() for c in parse_competitors(competitors_json())]
    assert list(records[0])[: len(COMPETITOR_FIELDS)] == COMPETITOR_FIELDS
    assert records[0] == {
        "listing_id": LISTING_ID, "market": "fr-fr", "currency": "EUR", "price": "389.00",
        "min_price": "349.00", "price_to_win": "379.99", "winner_price": "380.00",
        "is_winning": False, "product_id": PRODUCT_ID,
    }
    assert records[1]["min_price"] is None and records[1]["currency"] == "GBP"
    json.dumps(records)


def test_competitor_nullable_winner_price_and_yen() -> None:
    record = {
        "listing_id": LISTING_ID, "product_id": PRODUCT_ID, "market": "JP",
        "price": {"amount": "45800", "currency": "JPY"}, "min_price": None,
        "price_to_win": {"amount": "44999.0", "currency": "JPY"}, "winner_price": None,
        "is_winning": False,
    }
    (competitor,) = parse_competitors([record])
    assert competitor.market == "ja-jp" and competitor.winner_price is None
    assert competitor.to_json()["price_to_win"] == "44999" and competitor.to_json()["winner_price"] is None


def test_market_codes() -> None:
    assert market_code("GR") == "el-gr" and market_code("se") == "sv-se"
    assert market_code("fr-be") == "fr-be"
    assert market_code("FI") == "fi-fi"  # in the spec's MarketCode enum, not in bmctl's table


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": None}, "price"),
        ({"price": {"amount": "12.3"}}, "price.currency"),
        ({"price": {"currency": "EUR"}}, "price.amount"),
        ({"price": {"amount": "", "currency": "EUR"}}, "price.amount"),
        ({"price": {"amount": "1e999999", "currency": "EUR"}}, "price.amount"),
        ({"price": "389.00"}, "price"),
        ({"price_to_win": {"amount": "x", "currency": "EUR"}}, "price_to_win.amount"),
        ({"is_winning": "yes"}, "is_winning"),
        ({"market": 33}, "market"),
        ({"market": ""}, "market"),
    ],
)
def test_competitor_bad_fields_are_malformed(change: dict[str, object], field: str) -> None:
    record = {**competitors_json()[0], **change}
    with pytest.raises(MalformedResponse) as caught:
        parse_competitors([competitors_json()[1], record])
    assert f"[1].{field}" in str(caught.value)
    assert f"/ws/backbox/v1/competitors/{LISTING_ID}" in str(caught.value)


@pytest.mark.parametrize("name", ["listing_id", "market", "price", "price_to_win", "is_winning"])
def test_competitor_missing_fields(name: str) -> None:
    record = competitors_json()[0]
    del record[name]
    with pytest.raises(MalformedResponse, match=f"{name}: missing required field"):
        parse_competitors([record])


def test_competitors_answer_must_be_an_array() -> None:
    with pytest.raises(MalformedResponse, match="expected an array"):
        parse_competitors({"results": []})


def test_listings_page() -> None:
    ids = [LISTING_ID, "3fa85f64-5717-4562-b3fc-2c963f66afa6"]
    body = page_json(ids, page=2, pages=3)
    client, _ = make_client(fixed(json_response(200, body)))
    request = client.build_listings_page(2, market="de-de")
    page = client.parse_listings_page(request, json_response(200, body))
    assert page.count == 6 and page.next and "page=3" in page.next and "page=1" in (page.previous or "")
    assert [listing.id for listing in page.results] == ids
    assert all(listing.market == "de-de" for listing in page.results)
    data = page.to_json()
    assert data["count"] == 6 and data["results"][0]["id"] == LISTING_ID
    bad = page_json(ids, page=1, pages=1)
    del bad["results"][1]["quantity"]
    with pytest.raises(MalformedResponse, match=r"results\[1\]\.quantity"):
        client.parse_listings_page(request, json_response(200, bad))
    with pytest.raises(MalformedResponse, match="results"):
        client.parse_listings_page(request, json_response(200, {"count": 0}))


def test_update_result() -> None:
    client, _ = make_client(fixed(json_response(200, {})))
    request = client.build_update_listing(LISTING_ID, market="fr-fr", price=Money.parse("379.99", "EUR"))
    result = client.parse_update(request, json_response(200, {**update_json(price="379.99"),
                                                              "requestId": REQUEST_ID}))
    assert (result.listing_id, result.market, result.request_id) == (LISTING_ID, "fr-fr", REQUEST_ID)
    assert result.to_json() == {"listing_id": LISTING_ID, "market": "fr-fr", "request_id": REQUEST_ID,
                                "currency": "EUR", "price": "379.99", "min_price": "349.00"}
    # A 2xx with a partial or empty body: the write was applied, the result says what it knows.
    partial = client.parse_update(request, json_response(200, {"statuscode": 200}, {"request-id": "h1"}))
    assert partial.listing is None and partial.request_id == "h1"
    empty = client.parse_update(request, HttpResponse(200, {}, b""))
    assert empty.listing is None and empty.request_id is None
    with pytest.raises(MalformedResponse):
        client.parse_update(request, HttpResponse(200, {}, b"<html>ok</html>"))
