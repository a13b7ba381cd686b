"""Every HTTP error mapping: one clear line, the right class and exit code, never the token."""

from __future__ import annotations

import json

import pytest

from bmctl.api.errors import (
    ApiError,
    AuthFailed,
    InvalidRequest,
    MalformedResponse,
    NetworkError,
    NotFound,
    RateLimited,
    ServerError,
    WafBlocked,
    error_from_transport,
    raise_for_response,
)
from bmctl.api.money import Money
from bmctl.errors import AuthError, ExitCode, ItemError, exit_code_for
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError
from tests.api.helpers import (
    LISTING_ID,
    REQUEST_ID,
    TOKEN,
    error_v1,
    fixed,
    json_response,
    make_client,
)

CF_RAY = "8a1b2c3d4e5f6789-CDG"
WAF_HTML = (b"<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
            b"<body><h1>Sorry, you have been blocked</h1><span>Ray ID: 8a1b2c3d4e5f6789</span>"
            b"</body></html>")


def get_request() -> HttpRequest:
    client, _ = make_client(fixed(json_response(200, {})))
    return client.build_get_listing(LISTING_ID, market="fr-fr")


def post_request() -> HttpRequest:
    client, _ = make_client(fixed(json_response(200, {})))
    return client.build_update_listing(LISTING_ID, market="fr-fr", price=Money.parse("10", "EUR"))


def mapped(response: HttpResponse, request: HttpRequest | None = None) -> Exception:
    request = request or get_request()
    with pytest.raises(Exception) as caught:
        raise_for_response(request, response)
    return caught.value


def assert_clean(error: Exception) -> None:
    """One line, and no token anywhere a user or a log could see it."""
    text = str(error)
    assert "\n" not in text
    for shown in (text, repr(error), getattr(error, "detail", "") or "", repr(error.args)):
        assert TOKEN not in shown


def test_2xx_passes() -> None:
    raise_for_response(get_request(), json_response(200, {}))
    raise_for_response(get_request(), HttpResponse(204))


def test_401() -> None:
    error = mapped(json_response(401, error_v1("unauthenticated", "Invalid token")))
    assert type(error) is AuthFailed and isinstance(error, AuthError)
    assert exit_code_for(error) == ExitCode.AUTH
    text = str(error)
    assert text.startswith(f"GET /ws/listings/{LISTING_ID}: HTTP 401")
    assert "Invalid token" in text and REQUEST_ID in text
    assert error.status == 401 and error.request_id == REQUEST_ID and error.code == "unauthenticated"
    assert_clean(error)


def test_403_json_is_auth_not_waf() -> None:
    error = mapped(json_response(403, error_v1("forbidden", "Authenticated user is not a merchant")))
    assert type(error) is AuthFailed
    assert "not a merchant" in str(error) and exit_code_for(error) == ExitCode.AUTH
    assert_clean(error)


def test_waf_html_403_names_cloudflare_and_the_cf_ray() -> None:
    response = HttpResponse(403, {"content-type": "text/html; charset=UTF-8", "cf-ray": CF_RAY,
                                  "server": "cloudflare"}, WAF_HTML)
    error = mapped(response)
    assert isinstance(error, WafBlocked) and isinstance(error, AuthFailed)
    assert exit_code_for(error) == ExitCode.AUTH
    assert "Cloudflare" in str(error) and CF_RAY in str(error)
    assert error.cf_ray == CF_RAY
    assert "Sorry, you have been blocked" in (error.detail or "")  # the page is for --verbose
    assert "<html" not in str(error)
    assert_clean(error)


def test_waf_without_cf_ray_still_says_so() -> None:
    error = mapped(HttpResponse(403, {"content-type": "text/html"}, WAF_HTML))
    assert isinstance(error, WafBlocked) and "cf-ray" in str(error) and error.cf_ray is None


def test_waf_bot_need_challenge_json() -> None:
    body = {"errors": [{"code": "bot-need-challenge", "message": "Forbidden",
                        "challengePath": "/bm/challenge"}]}
    error = mapped(json_response(403, body, {"cf-ray": CF_RAY}))
    assert isinstance(error, WafBlocked) and CF_RAY in str(error) and "Cloudflare" in str(error)
    assert error.code == "bot-need-challenge"
    assert_clean(error)


def test_404() -> None:
    error = mapped(json_response(404, error_v1("listing_not_found", "Listing not found")))
    assert type(error) is NotFound and isinstance(error, ItemError)
    assert exit_code_for(error) == ExitCode.ITEMS_FAILED
    assert "HTTP 404" in str(error) and "Listing not found" in str(error)
    assert error.listing_id == LISTING_ID and error.market == "fr-fr"
    assert_clean(error)


def test_404_without_body_still_reads_well() -> None:
    error = mapped(HttpResponse(404))
    assert isinstance(error, NotFound) and "not found" in str(error).lower()


@pytest.mark.parametrize(
    ("status", "body", "said"),
    [
        (400, error_v1("invalid_price", "Price has too many decimals"), "Price has too many decimals"),
        (400, "parameter price is invalid", "parameter price is invalid"),  # a bare JSON string
        (422, {"detail": [{"loc": ["path", "listingId"], "msg": "value is not a valid uuid",
                           "type": "type_error.uuid"}]}, "path.listingId: value is not a valid uuid"),
        (422, {"type": "/errors/bad-request", "title": "Your request parameters didn't validate.",
               "status": 422, "detail": "min_price above price"}, "min_price above price"),
        (400, {"errors": [{"code": "bad", "message": "currency mismatch"}], "requestId": REQUEST_ID},
         "currency mismatch"),
    ],
)
def test_400_422_carry_back_markets_message(status: int, body: object, said: str) -> None:
    error = mapped(json_response(status, body), post_request())
    assert type(error) is InvalidRequest
    assert str(error).startswith(f"POST /ws/listings/{LISTING_ID}: HTTP {status}")
    assert said in str(error)
    assert_clean(error)


def test_429_after_retries() -> None:
    error = mapped(json_response(429, error_v1("too_many_requests", "Too many requests"),
                                 {"retry-after": "10"}))
    assert type(error) is RateLimited and isinstance(error, ApiError)
    assert exit_code_for(error) == ExitCode.LIMITED
    assert "HTTP 429" in str(error)
    assert_clean(error)


@pytest.mark.parametrize("status", [500, 502, 503, 520])
def test_5xx_after_retries(status: int) -> None:
    error = mapped(HttpResponse(status, {"content-type": "text/html"}, b"<html>Bad gateway</html>"))
    assert type(error) is ServerError and f"HTTP {status}" in str(error)
    assert "<html" not in str(error)
    assert_clean(error)


def test_other_statuses_are_api_errors() -> None:
    error = mapped(HttpResponse(409, {}, b""))
    assert type(error) is ApiError and "HTTP 409" in str(error)


def test_request_id_from_header_when_body_has_none() -> None:
    error = mapped(json_response(404, error_v1("nf", "Nope", request_id=None),
                                 {"x-request-id": "hdr-77"}))
    assert isinstance(error, NotFound) and error.request_id == "hdr-77" and "hdr-77" in str(error)


def test_long_and_multiline_messages_stay_one_short_line() -> None:
    error = mapped(json_response(400, error_v1("x", "line one\nline two " + "x" * 500)))
    assert "\n" not in str(error) and len(str(error)) < 400


def test_an_echoed_token_is_scrubbed() -> None:
    """Should a server or proxy ever echo the Authorization header, it is masked."""
    body = error_v1("x", f"bad header Basic {TOKEN}")
    error = mapped(json_response(401, body))
    assert_clean(error)
    assert "***" in str(error)
    error = mapped(json_response(500, {"echo": f"Authorization: Basic {TOKEN}"}))
    assert_clean(error)


def test_detail_holds_more_for_verbose() -> None:
    error = mapped(json_response(400, error_v1("invalid", "Bad price"), {"cf-ray": CF_RAY}))
    assert isinstance(error, InvalidRequest)
    detail = error.detail or ""
    assert "HTTP 400" in detail and CF_RAY in detail and '"invalid"' in detail
    assert len(detail) <= 1500


def test_error_from_transport() -> None:
    request = get_request()
    timeout = error_from_transport(request, TransportError("timeout", "timed out: ReadTimeout"))
    assert isinstance(timeout, NetworkError) and timeout.kind == "timeout"
    assert str(timeout).startswith(f"GET /ws/listings/{LISTING_ID}: timed out")
    assert exit_code_for(timeout) == ExitCode.ITEMS_FAILED
    refused = error_from_transport(request, TransportError("connection", f"refused Basic {TOKEN}"))
    assert refused.kind == "connection" and "connection failed" in str(refused)
    assert_clean(refused)


@pytest.mark.parametrize(("base_url", "kind", "line"), [
    ("http://127.0.0.1:8765", "refused", "cannot connect to http://127.0.0.1:8765 (connection refused)"),
    ("https://user:secret@api.example.com/prefix/", "unresolved",
     "cannot connect to https://api.example.com (host name not resolved)"),
    ("http://[::1]:9000", "refused", "cannot connect to http://[::1]:9000 (connection refused)"),
])
def test_a_host_never_connected_to_stops_the_run_with_one_line(base_url: str, kind: str, line: str) -> None:
    """Issue 13, point 5: scheme://host:port of the base URL only; the raw text for --verbose."""
    from bmctl.errors import HostUnreachable, RunStopped

    client, _ = make_client(fixed(json_response(200, {})), base_url=base_url)
    request = client.build_competitors(LISTING_ID)
    raw = f"connection {kind}: ConnectionError: HTTPConnectionPool(...) Basic {TOKEN} [Errno 111]"
    error = error_from_transport(request, TransportError(kind, raw[:40], raw))
    assert isinstance(error, HostUnreachable) and isinstance(error, RunStopped)
    assert not isinstance(error, ItemError)  # a batch must not go on to the next item
    assert str(error) == line and exit_code_for(error) == ExitCode.ITEMS_FAILED
    assert "secret" not in str(error) + (error.detail or "") and "prefix" not in str(error)
    assert "HTTPConnectionPool" in (error.detail or "") and "[Errno 111]" in (error.detail or "")
    assert f"/ws/backbox/v1/competitors/{LISTING_ID}" in (error.detail or "")
    assert_clean(error)


def test_malformed_json_names_path_and_request_id() -> None:
    client, _ = make_client(fixed(HttpResponse(200, {"x-request-id": "hdr-9"}, b"{not json")))
    with pytest.raises(MalformedResponse) as caught:
        client.get_listing(LISTING_ID)
    text = str(caught.value)
    assert f"GET /ws/listings/{LISTING_ID}" in text and "hdr-9" in text and "not JSON" in text
    assert caught.value.request_id == "hdr-9"
    assert_clean(caught.value)


def test_missing_field_names_path_field_and_request_id() -> None:
    from tests.api.helpers import listing_json

    body = listing_json(requestId=REQUEST_ID)
    del body["price"]
    client, _ = make_client(fixed(json_response(200, body)))
    with pytest.raises(MalformedResponse) as caught:
        client.get_listing(LISTING_ID)
    text = str(caught.value)
    assert f"/ws/listings/{LISTING_ID}" in text and "price" in text and REQUEST_ID in text
    assert_clean(caught.value)


def test_parsers_raise_mapped_errors_first() -> None:
    client, _ = make_client(fixed(json_response(401, error_v1("u", "Invalid token"))))
    for call in (lambda: client.get_listing(LISTING_ID), lambda: client.competitors(LISTING_ID),
                 lambda: client.update_listing(LISTING_ID, market="fr-fr",
                                               price=Money.parse("1", "EUR")),
                 lambda: list(client.iter_listings())):
        with pytest.raises(AuthFailed):
            call()


def test_error_bodies_never_crash_the_mapping() -> None:
    for body in [b"", b"null", b"[]", b"42", b'{"error": "flat"}', b'{"errors": "x"}',
                 b'{"error": {"message": null}}', b"\xff\xfe", json.dumps({"detail": 5}).encode()]:
        error = mapped(HttpResponse(400, {"content-type": "application/json"}, body))
        assert isinstance(error, InvalidRequest) and "HTTP 400" in str(error)
