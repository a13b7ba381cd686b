"""API errors: HTTP answers and transport failures mapped onto the ``bmctl.errors`` hierarchy.

Every message is one line (method, path, status, Back Market's message, requestId); ``detail``
holds a body excerpt for ``--verbose``. Neither ever holds the token: it is scrubbed from
anything that could echo it back.
"""

from __future__ import annotations

import json
import re
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from bmctl.errors import AuthError, ExitCode, HostUnreachable, ItemError
from bmctl.traffic.transport import UNREACHABLE_WHY, HttpRequest, HttpResponse, TransportError, UnusableAnswer

# Header names under which a request id may come back (Back Market documents only the body's).
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-correlation-id")
WAF_CODE = "bot-need-challenge"
_MESSAGE_MAX = 200
_DETAIL_MAX = 1000


class _Answered:
    """What every API failure carries about its request and Back Market's answer."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str | None = None,
        path: str | None = None,
        request_id: str | None = None,
        code: str | None = None,
        detail: str | None = None,
    ) -> None:
        super().__init__(message, detail=detail)  # type: ignore[call-arg]
        self.status = status
        self.method = method
        self.path = path
        self.request_id = request_id
        self.code = code


class ApiError(_Answered, ItemError):
    """A request about one item that Back Market answered with an error (or did not answer)."""

    def __init__(self, message: str, *, listing_id: str | None = None, market: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.listing_id = listing_id
        self.market = market


class NotFound(ApiError):
    """404: the listing does not exist or is not the seller's."""


class InvalidRequest(ApiError):
    """400/422: Back Market refused the data (its message says why)."""


class RateLimited(ApiError):
    """429 still there after the controller's retries.

    Exit code 4, not 1: the contract says rate limits stopping a run exit 4 (rerun resumes)."""

    exit_code = ExitCode.LIMITED


class ServerError(ApiError):
    """5xx still there after the controller's retries."""


class NetworkError(ApiError):
    """No HTTP answer at all (timeout, connection failure) after the controller's retries."""

    def __init__(self, message: str, *, kind: str = "connection", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.kind = kind


class MalformedResponse(ApiError, UnusableAnswer):
    """An answer whose JSON does not parse or lacks/mistypes a field bmctl needs; ``reason`` is
    the problem alone (no path, no body), for the request log. An idempotent read that gets one
    is asked again by the traffic controller (the parsers are its ``accept`` checks)."""


class AuthFailed(_Answered, AuthError):
    """401/403: the token is refused or the account may not do this (exit 3)."""


class WafBlocked(AuthFailed):
    """403 from Cloudflare's WAF (HTML page or ``bot-need-challenge``); ``cf_ray`` is for support."""

    def __init__(self, message: str, *, cf_ray: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.cf_ray = cf_ray


# --- helpers ------------------------------------------------------------------------------


def secrets_of(request: HttpRequest) -> list[str]:
    """The credential strings of a request (``Basic <token>`` and the bare token)."""
    headers = request.headers
    value = headers.get("authorization") or headers.get("Authorization") or ""
    token = value.split(None, 1)[1] if len(value.split(None, 1)) == 2 else ""
    return [s for s in (value, token) if s]


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every credential in ``text`` with ``***``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return text


def one_line(text: str, limit: int = _MESSAGE_MAX) -> str:
    """Collapse whitespace and cut to ``limit`` characters: messages are one line."""
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_json(body: bytes) -> Any:
    """The parsed JSON body, or ``None`` when it is not JSON."""
    if not body:
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def request_id_of(response: HttpResponse, data: Any = None) -> str | None:
    """The requestId of an answer: from the JSON body, else a request-id header."""
    if isinstance(data, dict):
        for key in ("requestId", "request_id"):
            value = data.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
    for name in REQUEST_ID_HEADERS:
        value = response.header(name)
        if value:
            return value
    return None


def _error_entries(data: Any) -> list[dict[str, Any]]:
    if not isinstance(data, dict):
        return []
    entries: list[dict[str, Any]] = []
    if isinstance(data.get("error"), dict):  # ErrorResponseV1
        entries.append(data["error"])
    if isinstance(data.get("errors"), list):  # ErrorResponseV2 / WAF / ProblemValidation
        entries.extend(e for e in data["errors"] if isinstance(e, dict))
    return entries


def error_code_and_message(data: Any) -> tuple[str | None, str | None]:
    """Back Market's error code and message from any of its envelopes (V1, V2, Problem,
    a bare JSON string, FastAPI's ``detail``)."""
    if isinstance(data, str):
        return None, data
    entries = _error_entries(data)
    if entries:
        first = entries[0]
        code = first.get("code") if isinstance(first.get("code"), str) else None
        # V1/V2 entries carry "message"; ProblemValidation members "detail"/"title".
        message = first.get("message") or first.get("detail") or first.get("title")
        if message is None and isinstance(data, dict):
            message = data.get("detail") or data.get("title")
        return code, str(message) if message is not None else None
    if isinstance(data, dict):
        detail = data.get("detail")
        if isinstance(detail, list):  # FastAPI validation errors: [{"loc": [...], "msg": ...}]
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    parts.append(f"{loc}: {item.get('msg')}" if loc else str(item.get("msg")))
            return None, "; ".join(parts) or None
        title = data.get("title") if isinstance(data.get("title"), str) else None
        code = data.get("type") if isinstance(data.get("type"), str) else None
        message = detail if isinstance(detail, str) else title or data.get("message")
        return code, str(message) if message is not None else None
    return None, None


def _is_html(response: HttpResponse) -> bool:
    ctype = (response.header("content-type") or "").lower()
    return "html" in ctype or response.body.lstrip()[:1] == b"<"


def is_waf(response: HttpResponse, data: Any = None) -> bool:
    """True for Cloudflare's WAF: a 403 HTML page, or the ``bot-need-challenge`` JSON."""
    if any(e.get("code") == WAF_CODE for e in _error_entries(data)):
        return True
    return response.status == 403 and _is_html(response)


def body_excerpt(response: HttpResponse, secrets: list[str], limit: int = _DETAIL_MAX) -> str:
    """The start of the body as text, token scrubbed (for ``--verbose``)."""
    text = response.body[: limit * 4].decode("utf-8", errors="replace")
    text = scrub(text, secrets)
    return text if len(text) <= limit else text[:limit] + "…"


def _detail(request: HttpRequest, response: HttpResponse) -> str:
    secrets = secrets_of(request)
    lines = [f"{request.method} {request.url}", f"HTTP {response.status}"]
    for name in ("content-type", "cf-ray", "server", *REQUEST_ID_HEADERS, "retry-after"):
        value = response.header(name)
        if value:
            lines.append(f"{name}: {value}")
    excerpt = body_excerpt(response, secrets)
    if excerpt:
        lines.append("body: " + excerpt)
    return scrub("\n".join(lines), secrets)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- the mapping --------------------------------------------------------------------------


def error_for_response(request: HttpRequest, response: HttpResponse) -> Exception | None:
    """The exception an answer means (``None`` for 2xx)."""
    status = response.status
    if 200 <= status < 300:
        return None
    secrets = secrets_of(request)
    data = decode_json(response.body)
    request_id = request_id_of(response, data)
    code, bm_message = error_code_and_message(data)
    where = f"{request.method} {request.path}"
    head = f"{where}: HTTP {status} {_reason(status)}".rstrip()
    suffix = f" (requestId {request_id})" if request_id else ""
    said = f": {one_line(scrub(bm_message, secrets))}" if bm_message else ""
    detail = _detail(request, response)
    common: dict[str, Any] = dict(
        status=status, method=request.method, path=request.path, request_id=request_id,
        code=code, detail=detail,
    )
    item: dict[str, Any] = dict(listing_id=request.listing_id, market=request.market)

    if is_waf(response, data):
        cf_ray = response.header("cf-ray")
        message = (
            f"{where}: HTTP {status} blocked by Cloudflare's WAF (Back Market's firewall); "
            f"send this cf-ray to Back Market support: {cf_ray or 'none in the answer'}"
        )
        return WafBlocked(message, cf_ray=cf_ray, **common)
    if status == 401:
        return AuthFailed(f"{head}{said}{suffix}; check the token (BMCTL_TOKEN) and that it is for "
                          "this platform and environment", **common)
    if status == 403:
        return AuthFailed(f"{head}{said}{suffix}; the account may not do this", **common)
    if status == 404:
        return NotFound(f"{head}{said or ': listing not found or not yours'}{suffix}", **common, **item)
    if status in (400, 422):
        return InvalidRequest(f"{head}{said}{suffix}", **common, **item)
    if status == 429:
        return RateLimited(f"{head}{said}{suffix}, still after retries", **common, **item)
    if status >= 500:
        # An HTML 5xx page (Cloudflare 52x) says nothing useful in one line.
        return ServerError(f"{head}{said if data is not None else ''}{suffix}, still after retries",
                           **common, **item)
    return ApiError(f"{head}{said}{suffix}", **common, **item)


def raise_for_response(request: HttpRequest, response: HttpResponse) -> None:
    """Raise the error an answer means; return quietly on 2xx."""
    error = error_for_response(request, response)
    if error is not None:
        raise error


def malformed(request: HttpRequest, response: HttpResponse | None, problem: str,
              data: Any = None) -> MalformedResponse:
    """A MalformedResponse naming the request path and requestId."""
    request_id = request_id_of(response, data) if response is not None else None
    status = response.status if response is not None else None
    suffix = f" (requestId {request_id})" if request_id else " (no requestId)"
    reason = one_line(problem)
    message = f"{request.method} {request.path}: malformed answer: {reason}{suffix}"
    detail = _detail(request, response) if response is not None else None
    error = MalformedResponse(
        message, status=status, method=request.method, path=request.path, request_id=request_id,
        detail=detail, listing_id=request.listing_id, market=request.market,
    )
    error.reason = reason
    return error




def host_of(base_url: str) -> str:
    """``scheme://host[:port]`` of a base URL: no user info, path or query (nothing secret)."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def error_from_transport(request: HttpRequest, error: TransportError) -> NetworkError | HostUnreachable:
    """The NetworkError for a request that got no answer after every attempt; HostUnreachable
    when it never connected (refused, no such host), which stops the whole run."""
    kind = getattr(error, "kind", "connection")
    if error.unreachable:
        raw = one_line(scrub(getattr(error, "detail", None) or str(error), secrets_of(request)), 2000)
        return HostUnreachable(
            f"cannot connect to {host_of(request.base_url)} ({UNREACHABLE_WHY[kind]})",
            detail=scrub(f"{request.method} {host_of(request.base_url)}{request.path}\n{raw}",
                         secrets_of(request)),
        )
    what = "timed out" if kind == "timeout" else "connection failed"
    text = one_line(scrub(str(error), secrets_of(request)), 300)
    message = f"{request.method} {request.path}: {what}, no answer after retries" + (
        f" ({text})" if text else ""
    )
    return NetworkError(
        message, kind=kind, method=request.method, path=request.path,
        detail=f"{request.method} {request.url}\n{type(error).__name__}: {text}",
        listing_id=request.listing_id, market=request.market,
    )
