"""RequestsTransport against `responses`: headers on the wire, no redirects, error kinds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests
import responses
from responses import matchers
from urllib3.exceptions import ReadTimeoutError

from bmctl.api.client import BackMarketClient
from bmctl.api.errors import AuthFailed, NetworkError, WafBlocked
from bmctl.api.http import RequestsTransport
from bmctl.api.money import Money
from bmctl.traffic.transport import HttpRequest, TransportError
from tests.api.helpers import (
    BASE_URL,
    LISTING_ID,
    TOKEN,
    USER_AGENT,
    StandInExecutor,
    competitors_json,
    listing_json,
    page_json,
    update_json,
)


def real_client(market: str = "fr-fr", base_url: str = BASE_URL) -> BackMarketClient:
    return BackMarketClient(StandInExecutor(RequestsTransport()), base_url=base_url, token=TOKEN,
                            user_agent=USER_AGENT, market=market)


def wire_headers(market: str) -> list[object]:
    return [matchers.header_matcher({
        "Accept": "application/json",
        "Content-Type": "application/json",
        "Accept-Language": market,
        "Authorization": f"Basic {TOKEN}",
        "User-Agent": USER_AGENT,
    })]


@responses.activate
def test_headers_reach_the_wire_for_every_endpoint() -> None:
    market = "de-de"
    listing = f"{BASE_URL}/ws/listings/{LISTING_ID}"
    responses.get(listing, json=listing_json(), match=wire_headers(market))
    responses.post(listing, json=update_json(), match=wire_headers(market) + [
        matchers.json_params_matcher({"price": "12.30", "currency": "EUR"})])
    responses.get(f"{BASE_URL}/ws/backbox/v1/competitors/{LISTING_ID}", json=competitors_json(),
                  match=wire_headers(market))
    responses.get(f"{BASE_URL}/ws/listings", json=page_json([LISTING_ID], page=1, pages=1),
                  match=wire_headers(market) + [matchers.query_param_matcher(
                      {"page": "1", "page-size": "50", "min_quantity": "1"})])
    client = real_client(market)
    assert client.get_listing(LISTING_ID).id == LISTING_ID
    assert client.update_listing(LISTING_ID, market=market, price=Money.parse("12.3", "EUR"))
    assert len(client.competitors(LISTING_ID)) == 2
    assert len(list(client.iter_listings(min_quantity=1))) == 1


@responses.activate
def test_response_headers_are_lower_cased_and_body_kept() -> None:
    responses.get(f"{BASE_URL}/x", body=b"hello", status=418,
                  headers={"CF-Ray": "abc-CDG", "X-Request-Id": "r1"})
    answer = RequestsTransport().send(HttpRequest("GET", "/x", base_url=BASE_URL), 5)
    assert answer.status == 418 and answer.body == b"hello"
    assert answer.headers["cf-ray"] == "abc-CDG" and answer.header("X-Request-ID") == "r1"
    assert all(name == name.lower() for name in answer.headers)


@responses.activate
def test_redirects_are_not_followed() -> None:
    responses.get(f"{BASE_URL}/ws/listings", status=302, headers={"Location": "https://evil.example/"})
    responses.get("https://evil.example/", body="should never be asked")
    answer = RequestsTransport().send(HttpRequest("GET", "/ws/listings", base_url=BASE_URL), 5)
    assert answer.status == 302
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (requests.exceptions.ReadTimeout("read timed out"), "timeout"),
        (requests.exceptions.ConnectTimeout("connect timed out"), "timeout"),
        (requests.exceptions.ConnectionError("connection refused"), "connection"),
        (requests.exceptions.ChunkedEncodingError("broken chunk"), "connection"),
        (requests.exceptions.SSLError("bad certificate"), "connection"),
        (requests.exceptions.ConnectionError(ReadTimeoutError(None, "/x", "read timed out")), "timeout"),
    ],
)
@responses.activate
def test_transport_errors_map_to_kinds(raised: Exception, kind: str) -> None:
    responses.get(f"{BASE_URL}/ws/listings/{LISTING_ID}", body=raised)
    client = real_client()
    request = client.build_get_listing(LISTING_ID)
    with pytest.raises(TransportError) as caught:
        client.executor.transport.send(request, 5)  # type: ignore[attr-defined]
    assert caught.value.kind == kind
    assert TOKEN not in str(caught.value)
    with pytest.raises(NetworkError) as network:
        client.get_listing(LISTING_ID)
    assert network.value.kind == kind and TOKEN not in str(network.value)
    assert f"GET /ws/listings/{LISTING_ID}" in str(network.value)


def closed_port() -> int:
    """A loopback port that refuses connections: bound, noted, closed."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_refused_connection_is_its_own_kind_and_stops_the_run() -> None:
    """Issue 13, point 5, over a real socket: nothing listens on the port."""
    from bmctl.errors import HostUnreachable

    port = closed_port()
    client = real_client(base_url=f"http://127.0.0.1:{port}")
    request = client.build_competitors(LISTING_ID)
    with pytest.raises(TransportError) as caught:
        client.executor.transport.send(request, 5)  # type: ignore[attr-defined]
    assert caught.value.kind == "refused" and caught.value.unreachable
    assert "Connection refused" in (caught.value.detail or "")
    with pytest.raises(HostUnreachable) as stopped:
        client.competitors(LISTING_ID)
    assert str(stopped.value) == f"cannot connect to http://127.0.0.1:{port} (connection refused)"
    assert "HTTPConnectionPool" in (stopped.value.detail or "") and TOKEN not in (stopped.value.detail or "")


def test_a_host_name_that_does_not_resolve_is_its_own_kind(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_such_host(*args: object, **kwargs: object) -> object:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_such_host)
    client = real_client(base_url="https://api.nowhere.invalid")
    with pytest.raises(TransportError) as caught:
        client.executor.transport.send(client.build_get_listing(LISTING_ID), 5)  # type: ignore[attr-defined]
    assert caught.value.kind == "unresolved"


@responses.activate
def test_a_token_quoted_by_an_exception_is_scrubbed() -> None:
    responses.get(f"{BASE_URL}/ws/listings/{LISTING_ID}",
                  body=requests.exceptions.ConnectionError(f"proxy said: Basic {TOKEN}"))
    client = real_client()
    with pytest.raises(NetworkError) as caught:
        client.get_listing(LISTING_ID)
    assert TOKEN not in str(caught.value) and TOKEN not in (caught.value.detail or "")


@responses.activate
def test_waf_page_over_the_wire() -> None:
    responses.get(f"{BASE_URL}/ws/listings/{LISTING_ID}", status=403,
                  body="<html><title>Attention Required! | Cloudflare</title></html>",
                  content_type="text/html", headers={"cf-ray": "8a1b2c3d4e5f6789-CDG"})
    with pytest.raises(WafBlocked, match="8a1b2c3d4e5f6789-CDG") as caught:
        real_client().get_listing(LISTING_ID)
    assert isinstance(caught.value, AuthFailed) and "Cloudflare" in str(caught.value)


@responses.activate
def test_base_url_override_with_a_port() -> None:
    responses.get(f"http://127.0.0.1:8765/ws/listings/{LISTING_ID}", json=listing_json())
    client = real_client(base_url="http://127.0.0.1:8765/")
    assert client.get_listing(LISTING_ID).id == LISTING_ID


def test_a_given_session_is_used() -> None:
    session = requests.Session()
    transport = RequestsTransport(session)
    assert transport.session is session
    assert TOKEN not in repr(transport)
    transport.close()


def test_importing_the_api_does_not_import_requests() -> None:
    code = ("import sys, bmctl.api.http, bmctl.api.client, bmctl.api.errors, bmctl.api.models; "
            "print('requests' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_request_body_is_sent_verbatim() -> None:
    with responses.RequestsMock() as mock:
        mock.post(f"{BASE_URL}/ws/listings/{LISTING_ID}", json=update_json())
        client = real_client("ja-jp")
        client.update_listing(LISTING_ID, market="ja-jp", price=Money.parse("1500", "JPY"))
        body = mock.calls[0].request.body
        assert json.loads(body) == {"price": "1500", "currency": "JPY"}
        assert body == b'{"price":"1500","currency":"JPY"}'
