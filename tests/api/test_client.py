"""BackMarketClient: headers, hosts, request builders, pagination and the blocking conveniences."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from bmctl.api.client import (
    BackMarketClient,
    ClientConfig,
    RequestHeaders,
    default_user_agent,
    resolve_base_url,
    validate_listing_id,
)
from bmctl.api.errors import MalformedResponse, NetworkError, NotFound
from bmctl.api.markets import MARKETS
from bmctl.api.money import Money
from bmctl.errors import ExitCode, UsageError
from bmctl.traffic.queue import Priority
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError
from tests.api.helpers import (
    BASE_URL,
    LISTING_ID,
    OTHER_ID,
    REQUEST_ID,
    TOKEN,
    USER_AGENT,
    ScriptedTransport,
    competitors_json,
    fixed,
    json_response,
    listing_json,
    make_client,
    page_json,
    update_json,
)


def eur(text: str) -> Money:
    return Money.parse(text, "EUR")


# --- configuration ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("market", "env", "host"),
    [
        ("fr-fr", "prod", "https://www.backmarket.fr"),
        ("de-de", "preprod", "https://preprod.backmarket.fr"),
        ("en-gb", "prod", "https://www.backmarket.fr"),
        ("en-us", "prod", "https://www.backmarket.com"),
        ("en-us", "preprod", "https://preprod.backmarket.com"),
        ("ja-jp", "prod", "https://www.backmarket.co.jp"),
        ("en-au", "preprod", "https://preprod.backmarket.co.jp"),
    ],
)
def test_hosts_per_platform_and_env(market: str, env: str, host: str) -> None:
    assert resolve_base_url(market, env) == host


def test_base_url_override_wins_and_is_checked() -> None:
    assert resolve_base_url("en-us", "prod", "http://127.0.0.1:8765/") == "http://127.0.0.1:8765"
    with pytest.raises(UsageError, match="base_url"):
        resolve_base_url("fr-fr", "prod", "ftp://example.com")
    with pytest.raises(UsageError, match="unknown market"):
        resolve_base_url("xx-yy", "prod", "http://127.0.0.1:8765")
    with pytest.raises(UsageError, match="environment"):
        resolve_base_url("fr-fr", "staging")


def test_default_user_agent() -> None:
    assert default_user_agent("Acme", "ops@acme.example") == "BM-Acme-bmctl;ops@acme.example"
    assert "\n" not in default_user_agent("Ac\nme", "x@y")


def test_client_config_builds_a_client_and_hides_the_token() -> None:
    config = ClientConfig(token=TOKEN, market="en-us", env="preprod", user_agent=USER_AGENT)
    assert TOKEN not in repr(config)
    client = config.build(executor=None)  # type: ignore[arg-type]
    assert client.base_url == "https://preprod.backmarket.com"
    assert client.market == "en-us"


# --- headers ----------------------------------------------------------------------------------

@pytest.mark.parametrize("market", sorted(MARKETS))
def test_every_request_carries_the_headers(market: str) -> None:
    client, _ = make_client(fixed(json_response(200, {})), market=market)
    requests = [
        client.build_listings_page(1),
        client.build_get_listing(LISTING_ID),
        client.build_competitors(LISTING_ID),
        client.build_update_listing(LISTING_ID, market=market,
                                    price=Money.parse("1500" if market == "ja-jp" else "12.30",
                                                      MARKETS[market].currency)),
    ]
    for request in requests:
        headers = request.headers
        assert headers["Accept"] == "application/json"
        assert headers["Content-Type"] == "application/json"
        assert headers["Accept-Language"] == market
        assert headers["Authorization"] == f"Basic {TOKEN}"
        assert headers["User-Agent"] == USER_AGENT
        assert headers["authorization"] == headers["Authorization"]  # case-insensitive lookup
        assert request.market == market
        assert request.base_url == BASE_URL


def test_per_request_market_overrides_the_client_market() -> None:
    client, _ = make_client(fixed(json_response(200, {})), market="fr-fr")
    request = client.build_get_listing(LISTING_ID, market="de-de")
    assert request.headers["Accept-Language"] == "de-de" and request.market == "de-de"
    with pytest.raises(UsageError):
        client.build_get_listing(LISTING_ID, market="zz-zz")


def test_a_pasted_basic_prefix_is_not_doubled() -> None:
    client = BackMarketClient(None, base_url=BASE_URL, token=f"Basic {TOKEN}",  # type: ignore[arg-type]
                              user_agent=USER_AGENT)
    assert client.build_get_listing(LISTING_ID).headers["Authorization"] == f"Basic {TOKEN}"


@pytest.mark.parametrize("token", ["", "   ", "abc\ndef"])
def test_bad_tokens_are_refused_without_echo(token: str) -> None:
    with pytest.raises(UsageError) as caught:
        BackMarketClient(None, base_url=BASE_URL, token=token, user_agent=USER_AGENT)  # type: ignore[arg-type]
    if token.strip():
        assert token not in str(caught.value)


def test_token_never_in_repr_or_str() -> None:
    client, _ = make_client(fixed(json_response(200, {})))
    requests = [client.build_get_listing(LISTING_ID), client.build_listings_page(2),
                client.build_competitors(LISTING_ID),
                client.build_update_listing(LISTING_ID, market="fr-fr", price=eur("12.30"))]
    for text in [repr(client), str(client)] + [f(r) for r in requests for f in (repr, str)]:
        assert TOKEN not in text
    assert "Basic ***" in repr(requests[0])
    assert requests[0].headers.redacted()["Authorization"] == "Basic ***"


def test_request_headers_mapping_behaves_like_a_frozen_mapping() -> None:
    headers = RequestHeaders({"Authorization": "Basic x", "Accept": "a"})
    assert dict(headers) == {"Authorization": "Basic x", "Accept": "a"}
    assert "accept" in headers and "nope" not in headers
    assert headers == {"Authorization": "Basic x", "Accept": "a"}
    assert hash(headers) == hash(RequestHeaders({"authorization": "Basic x", "accept": "a"}))
    with pytest.raises(TypeError):
        headers["Accept"] = "b"  # type: ignore[index]


# --- listing ids ------------------------------------------------------------------------------

def test_validate_listing_id() -> None:
    assert validate_listing_id(f"  {LISTING_ID.upper()} ") == LISTING_ID
    for bad in ["", "4567", "not-a-uuid", LISTING_ID + "0", None, 4567, "../../ws/orders"]:
        with pytest.raises(UsageError, match="not a listing id") as caught:
            validate_listing_id(bad)
        assert caught.value.exit_code == ExitCode.BAD_INPUT
        if bad:
            assert str(bad) in str(caught.value)


def test_bad_ids_send_nothing() -> None:
    transport = fixed(json_response(200, listing_json()))
    client, _ = make_client(transport)
    for call in (lambda: client.get_listing("nope"), lambda: client.competitors("nope"),
                 lambda: client.update_listing("nope", market="fr-fr", price=eur("1.00"))):
        with pytest.raises(UsageError):
            call()
    assert transport.sent == []


# --- builders ---------------------------------------------------------------------------------

def test_build_listings_page_query() -> None:
    client, _ = make_client(fixed(json_response(200, {})))
    request = client.build_listings_page(3, 20, publication_state=2, min_quantity=1, max_quantity=9)
    assert request.method == "GET" and request.path == "/ws/listings"
    assert dict(request.query) == {"page": "3", "page-size": "20", "publication_state": "2",
                                   "min_quantity": "1", "max_quantity": "9"}
    assert request.listing_id is None and request.body is None
    for bad in [dict(page=0), dict(page_size=51), dict(page_size=0), dict(publication_state=5),
                dict(min_quantity=-1), dict(page=True)]:
        with pytest.raises(UsageError):
            client.build_listings_page(**bad)  # type: ignore[arg-type]


def test_build_get_and_competitors() -> None:
    client, _ = make_client(fixed(json_response(200, {})))
    get = client.build_get_listing(LISTING_ID)
    assert (get.method, get.path, get.listing_id) == ("GET", f"/ws/listings/{LISTING_ID}", LISTING_ID)
    comp = client.build_competitors(LISTING_ID, market="en-gb")
    assert comp.path == f"/ws/backbox/v1/competitors/{LISTING_ID}"
    assert comp.listing_id == LISTING_ID and comp.market == "en-gb"
    assert comp.url == f"{BASE_URL}/ws/backbox/v1/competitors/{LISTING_ID}"


@pytest.mark.parametrize(
    ("market", "price", "min_price", "body"),
    [
        ("fr-fr", Money.parse("12.3", "EUR"), None, '{"price":"12.30","currency":"EUR"}'),
        ("ja-jp", Money.parse("1500", "JPY"), None, '{"price":"1500","currency":"JPY"}'),
        ("en-gb", None, Money.parse("99", "GBP"), '{"min_price":"99.00","currency":"GBP"}'),
        ("sv-se", Money.parse("1299.5", "SEK"), Money.parse("999", "SEK"),
         '{"price":"1299.50","min_price":"999.00","currency":"SEK"}'),
        ("en-us", Money.parse("13.000", "USD"), None, '{"price":"13.00","currency":"USD"}'),
    ],
)
def test_build_update_listing_body(market: str, price: Money | None, min_price: Money | None,
                                   body: str) -> None:
    client, _ = make_client(fixed(json_response(200, {})))
    request = client.build_update_listing(LISTING_ID, market=market, price=price, min_price=min_price)
    assert request.method == "POST" and request.path == f"/ws/listings/{LISTING_ID}"
    assert request.body == body.encode()
    assert request.market == market and request.headers["Accept-Language"] == market
    assert request.listing_id == LISTING_ID


def test_build_update_listing_refuses_bad_input() -> None:
    client, _ = make_client(fixed(json_response(200, {})))
    cases = [
        dict(market="fr-fr"),  # nothing to change
        dict(market="en-gb", price=eur("10.00")),  # currency is not the market's
        dict(market="ja-jp", price=eur("10.00")),
        dict(market="fr-fr", price=12.3),  # a float
        dict(market="fr-fr", price="12.30"),  # a string, not Money
        dict(market="fr-fr", price=Money.parse("0", "EUR", positive=False)),
        dict(market="fr-fr", price=Money(eur("1.00").amount * -1, "EUR")),
        dict(market="fr-fr", price=eur("10.00"), min_price=eur("11.00")),
        dict(market="", price=eur("10.00")),
    ]
    for kwargs in cases:
        with pytest.raises(UsageError):
            client.build_update_listing(LISTING_ID, **kwargs)  # type: ignore[arg-type]


# --- conveniences -----------------------------------------------------------------------------

def test_get_listing_parses_and_passes_priority() -> None:
    transport = fixed(json_response(200, listing_json()))
    client, executor = make_client(transport)
    listing = client.get_listing(LISTING_ID, "fr-fr", priority=Priority.CRITICAL)
    assert listing.price == eur("389.00") and listing.market == "fr-fr"
    assert executor.priorities == [Priority.CRITICAL]
    client.get_listing(LISTING_ID)
    assert executor.priorities[-1] == Priority.NORMAL


def test_get_listing_refuses_an_answer_about_another_listing() -> None:
    client, _ = make_client(fixed(json_response(200, listing_json(OTHER_ID))))
    with pytest.raises(MalformedResponse, match=OTHER_ID):
        client.get_listing(LISTING_ID)


def test_update_listing_sends_the_body_and_reads_the_request_id() -> None:
    transport = fixed(json_response(200, update_json(price="379.99"), {"x-request-id": REQUEST_ID}))
    client, executor = make_client(transport)
    result = client.update_listing(LISTING_ID, market="fr-fr", price=eur("379.99"))
    assert json.loads(transport.sent[0].body or b"") == {"price": "379.99", "currency": "EUR"}
    assert result.request_id == REQUEST_ID and result.listing_id == LISTING_ID
    assert result.listing is not None and result.listing.price == eur("379.99")
    assert executor.priorities == [Priority.NORMAL]


def test_competitors_convenience() -> None:
    client, executor = make_client(fixed(json_response(200, competitors_json())))
    records = client.competitors(LISTING_ID)
    assert [r.market for r in records] == ["fr-fr", "en-gb"]
    assert executor.priorities == [Priority.NORMAL]


def controlled_client(answers: list[HttpResponse], default: HttpResponse):  # type: ignore[no-untyped-def]
    """A client over the real traffic controller (simulated time): ``answers`` first, then
    ``default``; returns the client, the transport and the attempt records."""
    from bmctl.traffic.buckets import DEFAULT_LIMITS
    from bmctl.traffic.clock import SimClock
    from bmctl.traffic.controller import TrafficController
    from bmctl.traffic.ledger import MemoryLedger

    queue = list(answers)
    transport = ScriptedTransport(lambda request: queue.pop(0) if queue else default)
    clock = SimClock()
    records: list = []
    controller = TrafficController(MemoryLedger(DEFAULT_LIMITS, clock.monotonic), None, transport,
                                   clock=clock, on_attempt=records.append)
    client = BackMarketClient(controller, base_url=BASE_URL, token=TOKEN, user_agent=USER_AGENT)
    return client, transport, records


def test_a_malformed_answer_to_a_read_is_asked_for_again() -> None:
    """Issue 13, point 4: not JSON, truncated JSON or the wrong shape, on a GET: retried."""
    good = json_response(200, competitors_json())
    for bad in (HttpResponse(200, {}, b"<html>oops</html>"), HttpResponse(200, {}, good.body[:40]),
                json_response(200, {"not": "a list"})):
        client, transport, records = controlled_client([bad], good)
        assert [r.market for r in client.competitors(LISTING_ID)] == ["fr-fr", "en-gb"]
        assert len(transport.sent) == 2
        assert [r.outcome for r in records] == ["retry", "ok"]
        assert records[0].error.startswith("malformed answer: ")
    other = json_response(200, listing_json(OTHER_ID))
    client, transport, records = controlled_client([other], json_response(200, listing_json()))
    assert client.get_listing(LISTING_ID).id == LISTING_ID and len(transport.sent) == 2
    assert OTHER_ID in records[0].error
    # A write answered 2xx was applied, malformed or not: it is never sent again.
    client, transport, records = controlled_client([], HttpResponse(200, {}, b'{"price": "37'))
    with pytest.raises(MalformedResponse):
        client.update_listing(LISTING_ID, market="fr-fr", price=eur("379.99"))
    assert len(transport.sent) == 1 and [r.outcome for r in records] == ["ok"]


def test_a_read_malformed_on_every_attempt_fails_with_the_malformed_error() -> None:
    client, transport, records = controlled_client([], HttpResponse(200, {}, b'[{"listing_id": "'))
    with pytest.raises(MalformedResponse, match="malformed answer: not JSON"):
        client.competitors(LISTING_ID)
    assert len(transport.sent) == 5
    assert [r.outcome for r in records] == ["retry"] * 4 + ["malformed"]


def test_transport_failure_becomes_network_error() -> None:
    def boom(request: HttpRequest) -> HttpResponse:
        raise TransportError("timeout", "timed out: ReadTimeout: read timed out")

    client, _ = make_client(ScriptedTransport(boom))
    with pytest.raises(NetworkError) as caught:
        client.get_listing(LISTING_ID)
    assert caught.value.kind == "timeout"
    assert f"GET /ws/listings/{LISTING_ID}" in str(caught.value)
    assert caught.value.exit_code == ExitCode.ITEMS_FAILED


# --- pagination -------------------------------------------------------------------------------

IDS = [f"00000000-0000-4000-8000-{n:012d}" for n in range(9)]


def paged(pages: int = 3, per_page: int = 3) -> ScriptedTransport:
    def answer(request: HttpRequest) -> HttpResponse:
        query = dict(request.query)
        page = int(query["page"])
        chunk = IDS[(page - 1) * per_page: page * per_page]
        return json_response(200, page_json(chunk, page=page, pages=pages,
                                            page_size=int(query["page-size"])))

    return ScriptedTransport(answer)


def test_iter_listings_follows_three_pages_at_low_priority() -> None:
    transport = paged()
    client, executor = make_client(transport)
    listings = list(client.iter_listings(min_quantity=1))
    assert [listing.id for listing in listings] == IDS
    assert [dict(r.query)["page"] for r in transport.sent] == ["1", "2", "3"]
    assert all(dict(r.query)["page-size"] == "50" for r in transport.sent)
    assert all(dict(r.query)["min_quantity"] == "1" for r in transport.sent)
    assert executor.priorities == [Priority.LOW] * 3


def test_iter_listings_stops_at_the_limit() -> None:
    transport = paged()
    client, _ = make_client(transport)
    listings = list(client.iter_listings({"publication_state": 2}, limit=4))
    assert [listing.id for listing in listings] == IDS[:4]
    assert len(transport.sent) == 2  # a third page is never asked for
    assert dict(transport.sent[0].query)["page-size"] == "4"
    assert dict(transport.sent[0].query)["publication_state"] == "2"
    assert list(client.iter_listings(limit=0)) == []
    assert len(transport.sent) == 2


def test_iter_listings_never_follows_the_next_host() -> None:
    """The token goes to base_url only: the `next` link lends its page number, not its host."""
    def answer(request: HttpRequest) -> HttpResponse:
        page = int(dict(request.query)["page"])
        data = page_json([IDS[page]], page=page, pages=2, base="https://evil.example")
        return json_response(200, data)

    transport = ScriptedTransport(answer)
    client, _ = make_client(transport)
    assert len(list(client.iter_listings())) == 2
    assert all(r.base_url == BASE_URL for r in transport.sent)


def test_iter_listings_stops_on_a_repeating_next_link() -> None:
    def answer(request: HttpRequest) -> HttpResponse:
        data = page_json([IDS[0]], page=1, pages=2)
        data["next"] = f"{BASE_URL}/ws/listings?page=1"
        return json_response(200, data)

    transport = ScriptedTransport(answer)
    client, _ = make_client(transport)
    assert len(list(client.iter_listings())) == 1
    assert len(transport.sent) == 1


def test_iter_listings_next_without_page_number_means_the_following_page() -> None:
    def answer(request: HttpRequest) -> HttpResponse:
        page = int(dict(request.query)["page"])
        data = page_json([IDS[page]], page=page, pages=3)
        if data["next"]:
            data["next"] = f"{BASE_URL}/ws/listings?cursor=abc"
        return json_response(200, data)

    transport = ScriptedTransport(answer)
    client, _ = make_client(transport)
    assert [listing.id for listing in client.iter_listings()] == IDS[1:4]
    assert [parse_qs(urlsplit(r.url).query)["page"] for r in transport.sent] == [["1"], ["2"], ["3"]]


def test_iter_listings_validates_before_sending() -> None:
    transport = paged()
    client, _ = make_client(transport)
    for kwargs in [dict(filters={"colour": "red"}), dict(limit=-1), dict(publication_state=9)]:
        with pytest.raises(UsageError):
            list(client.iter_listings(**kwargs))  # type: ignore[arg-type]
    assert transport.sent == []


def test_iter_listings_raises_mapped_errors() -> None:
    client, _ = make_client(fixed(json_response(404, {"error": {"code": "not_found",
                                                                  "message": "Nope"}})))
    with pytest.raises(NotFound):
        list(client.iter_listings())
