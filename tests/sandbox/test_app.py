"""The app's routes, checks and answers, every body validated against openapi.yml."""

from __future__ import annotations

import pytest

from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.catalogue import demo_catalogue
from bmctl.sandbox.model import Marketplace
from tests.openapi_helpers import match_path, validate_request_body, validate_response, validate_schema
from tests.sandbox.helpers import JP, LID, app_for, body, req, spec

COMP = f"/ws/backbox/v1/competitors/{LID}"
ONE = f"/ws/listings/{LID}"


def check(method: str, path: str, response, envelope: bool = False):
    data = body(response)
    checked = False
    try:
        checked = validate_response(match_path(path), method, response.status, data)
    except LookupError:  # a status the operation does not document: an error envelope
        assert response.status >= 400, response.status
    if not checked:  # every success has a schema; an error without one is an envelope
        assert response.status >= 400, f"{method} {path} {response.status} has no schema"
    if envelope or not checked:
        validate_schema("ErrorResponseV1", data)
        assert data["requestId"] == response.header("x-request-id")
    assert response.header("x-request-id")
    return data


@pytest.fixture
def demo():
    mp = Marketplace(lambda: 0.0, settle=0.0)
    mp.load(demo_catalogue())
    return SandboxApp(mp), mp


def test_listings_pages_validate_and_cover_everything(demo) -> None:
    app, mp = demo
    seen, page = [], 1
    while True:
        r = app.handle(req("GET", "/ws/listings", query=(("page", str(page)), ("page-size", "3"))))
        data = check("get", "/ws/listings", r)
        assert r.status == 200 and len(data["results"]) <= 3
        seen += [x["id"] for x in data["results"]]
        if not data["next"]:
            break
        assert f"page={page + 1}" in data["next"]
        page += 1
    fr = [item.id for item in mp.listings() if "fr-fr" in item.offers]
    assert seen == fr and data["count"] == len(fr) and page > 1


def test_listings_default_page_size_and_filters(demo) -> None:
    app, mp = demo
    data = body(app.handle(req("GET", "/ws/listings", market="ja-jp")))
    assert all(x["currency"] == "JPY" for x in data["results"])
    data = body(app.handle(req("GET", "/ws/listings", query=(("max_quantity", "0"),))))
    assert data["count"] >= 1 and all(x["quantity"] == 0 for x in data["results"])
    data = body(app.handle(req("GET", "/ws/listings", query=(("min_quantity", "1"), ("publication_state", "2")))))
    assert all(x["quantity"] >= 1 for x in data["results"])
    assert len(body(app.handle(req("GET", "/ws/listings")))["results"]) <= 10


@pytest.mark.parametrize("query", [(("page-size", "51"),), (("page", "0"),), (("page", "x"),),
                                   (("publication_state", "7"),)])
def test_listings_bad_parameters_400(demo, query) -> None:
    app, _ = demo
    r = app.handle(req("GET", "/ws/listings", query=query))
    assert r.status == 400
    check("get", "/ws/listings", r, envelope=True)


def test_get_listing_validates() -> None:
    app, _ = app_for(spec())
    r = app.handle(req("GET", ONE))
    data = check("get", ONE, r)
    assert data["statuscode"] == 200 and data["price"] == "100.00" and data["min_price"] == "80.00"
    assert data["currency"] == "EUR" and data["max_price"] == "150.00"


def test_null_min_price_validates() -> None:
    app, _ = app_for(spec(min_price=None))
    data = check("get", ONE, app.handle(req("GET", ONE)))
    assert data["min_price"] is None


def test_unknown_listing_404_and_other_market_404() -> None:
    app, _ = app_for(spec())
    r = app.handle(req("GET", "/ws/listings/00000000-0000-4000-8000-000000000000"))
    assert r.status == 404
    check("get", ONE, r, envelope=True)
    r = app.handle(req("GET", ONE, market="de-de"))
    assert r.status == 404
    r = app.handle(req("GET", "/ws/backbox/v1/competitors/00000000-0000-4000-8000-000000000000"))
    assert r.status == 404
    check("get", COMP, r, envelope=True)


def test_auth_required_exactly() -> None:
    app, _ = app_for(spec(), token="s3cret")
    for headers in ({}, {"Authorization": "Basic sandbox"}, {"Authorization": "Bearer s3cret"},
                    {"Authorization": "basic s3cret"}):
        r = app.handle(req("GET", ONE, headers=headers))
        assert r.status == 401
        data = check("get", ONE, r, envelope=True)
        assert data["error"]["code"] == "unauthenticated"
    assert app.handle(req("GET", ONE, headers={"Authorization": "Basic s3cret"})).status == 200


@pytest.mark.parametrize("lang", ["FR-FR", "fr", "xx-yy", "fr_FR"])
def test_accept_language_must_be_a_known_market(lang) -> None:
    app, _ = app_for(spec())
    r = app.handle(req("GET", ONE, market=lang))
    assert r.status == 400
    check("get", ONE, r, envelope=True)


def test_update_price_validates_and_applies() -> None:
    app, _ = app_for(spec())
    sent = {"price": "97.50", "currency": "EUR", "min_price": "85.00", "quantity": 4}
    validate_request_body("/ws/listings/{listingId}", "post", sent)
    r = app.handle(req("POST", ONE, sent))
    data = check("post", ONE, r)
    assert r.status == 200 and data["price"] == "97.50" and data["min_price"] == "85.00"
    assert data["quantity"] == 4 and data["statuscode"] == 200
    assert body(app.handle(req("GET", ONE)))["price"] == "97.50"


def test_update_accepts_numbers_trailing_zeros_and_clearing_min_price() -> None:
    app, _ = app_for(spec())
    assert body(app.handle(req("POST", ONE, b'{"price": 96.5}')))["price"] == "96.50"
    assert body(app.handle(req("POST", ONE, {"price": "96.000"})))["price"] == "96.00"
    assert body(app.handle(req("POST", ONE, {"min_price": None})))["min_price"] is None


@pytest.mark.parametrize("payload,needle", [
    ({"price": "12.345"}, "too many decimals"),
    (b'{"price": 12.345}', "too many decimals"),
    ({"price": "0"}, "greater than zero"),
    ({"price": "-5.00"}, "greater than zero"),
    ({"price": "abc"}, "not a decimal"),
    ({"price": "1e3"}, "not a decimal"),
    ({"price": True}, "decimal string or a number"),
    ({"price": "10.00", "currency": "GBP"}, "does not match"),
    ({"min_price": "1.001"}, "too many decimals"),
    ({"quantity": -1}, "quantity"),
    ({"max_price": "10.00"}, "unknown field"),
    (b"not json", "not valid JSON"),
    (b"[]", "JSON object"),
    ({}, "JSON object"),
])
def test_update_refusals_are_400_and_change_nothing(payload, needle) -> None:
    app, _ = app_for(spec())
    r = app.handle(req("POST", ONE, payload))
    assert r.status == 400
    data = check("post", ONE, r)
    assert isinstance(data, str) and needle in data  # the spec's 400 here is a bare string
    assert body(app.handle(req("GET", ONE)))["price"] == "100.00"


def test_jpy_refuses_decimals_and_needs_currency() -> None:
    app, _ = app_for(spec("15000", ("14000",), min_price="12000", max_price="20000",
                          market="ja-jp", ident=JP))
    path = f"/ws/listings/{JP}"
    r = app.handle(req("POST", path, {"price": "13999.50", "currency": "JPY"}, market="ja-jp"))
    assert r.status == 400 and "JPY allows no decimals" in body(r)
    r = app.handle(req("POST", path, {"price": "13999"}, market="ja-jp"))
    assert r.status == 400 and "currency is required" in body(r)
    r = app.handle(req("POST", path, {"price": "13999", "currency": "JPY"}, market="ja-jp"))
    assert r.status == 200 and body(r)["price"] == "13999"


def test_gbp_needs_explicit_currency() -> None:
    app, _ = app_for(spec("100.00", ("95.00",), market="en-gb"))
    r = app.handle(req("POST", ONE, {"price": "94.99"}, market="en-gb"))
    assert r.status == 400 and "GBP" in body(r)
    assert app.handle(req("POST", ONE, {"price": "94.99", "currency": "GBP"}, market="en-gb")).status == 200


def test_competitors_array_validates(demo) -> None:
    app, mp = demo
    two = next(item for item in mp.listings() if len(item.offers) == 2)
    path = f"/ws/backbox/v1/competitors/{two.id}"
    r = app.handle(req("GET", path))
    data = check("get", path, r)
    assert r.status == 200 and {d["market"] for d in data} == {"FR", "DE"}
    for listing in mp.listings():
        path = f"/ws/backbox/v1/competitors/{listing.id}"
        check("get", path, app.handle(req("GET", path, market="ja-jp")))


def test_competitors_after_a_write() -> None:
    app, _ = app_for(spec("100.00", ("95.00",)))
    (before,) = body(app.handle(req("GET", COMP)))
    assert before["is_winning"] is False and before["price_to_win"] == {"amount": "94.99", "currency": "EUR"}
    assert before["winner_price"]["amount"] == "95.00" and before["market"] == "FR"
    app.handle(req("POST", ONE, {"price": "94.99"}))
    (after,) = body(app.handle(req("GET", COMP)))
    assert after["is_winning"] is True and after["price"]["amount"] == "94.99"


def test_competitors_needs_a_uuid() -> None:
    app, _ = app_for(spec())
    r = app.handle(req("GET", "/ws/backbox/v1/competitors/42"))
    assert r.status == 422
    check("get", COMP, r, envelope=True)


def test_unknown_route_and_method() -> None:
    app, _ = app_for(spec())
    assert app.handle(req("GET", "/ws/orders")).status == 404
    r = app.handle(req("DELETE", ONE))
    assert r.status == 405
    validate_schema("ErrorResponseV1", body(r))


def test_request_ids_are_unique() -> None:
    app, _ = app_for(spec())
    ids = {app.handle(req("GET", ONE)).header("x-request-id") for _ in range(20)}
    assert len(ids) == 20
