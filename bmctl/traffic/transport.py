"""The seam between the traffic controller and the network: requests, answers, transports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Protocol
from urllib.parse import urlencode


@dataclass(frozen=True)
class HttpRequest:
    """One HTTP request as bmctl means to send it; ``listing_id``/``market`` are for the log."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    base_url: str = ""
    listing_id: str | None = None
    market: str | None = None

    @property
    def url(self) -> str:
        url = self.base_url.rstrip("/") + self.path
        return f"{url}?{urlencode(self.query)}" if self.query else url


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer; header names are lower-cased."""

    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


#: Kinds of TransportError for a connection that was never established (nothing reached the
#: server: the host itself is down or unknown), and how a user is told.
UNREACHABLE_WHY = {"refused": "connection refused", "unresolved": "host name not resolved"}


class TransportError(Exception):
    """The request got no HTTP answer: ``kind`` is ``timeout``, ``connection`` (failed after
    connecting, or unknown), ``refused`` (the host refused the connection) or ``unresolved``
    (the host name does not resolve). ``detail``: the raw exception, whole (for ``--verbose``)."""

    def __init__(self, kind: str, message: str, detail: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.detail = detail

    @property
    def unreachable(self) -> bool:
        """True when no connection was ever established (``refused`` or ``unresolved``)."""
        return self.kind in UNREACHABLE_WHY


class UnusableAnswer(Exception):
    """Raised by a call's ``accept`` check: a 2xx answer whose body the caller cannot use (not
    JSON, truncated, the wrong shape). ``reason`` says why in a few words, never quoting the body."""

    reason: str = ""


class Transport(Protocol):
    """Sends one request and returns the answer, or raises :class:`TransportError`."""

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse: ...
