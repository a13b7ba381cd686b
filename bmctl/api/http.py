"""The real HTTP transport: one pooled ``requests.Session``, no redirects, no retries.

``requests`` is imported when a transport is built, never at module import: ``bmctl --help``
must not pay for it. Retrying is the traffic controller's job, so urllib3 retries are off.
"""

from __future__ import annotations

import socket
from typing import Any

from bmctl.api.errors import one_line, scrub, secrets_of
from bmctl.traffic.transport import UNREACHABLE_WHY, HttpRequest, HttpResponse, TransportError

_POOL_SIZE = 10


class RequestsTransport:
    """:class:`~bmctl.traffic.transport.Transport` over a ``requests.Session``."""

    def __init__(self, session: Any = None) -> None:
        import requests
        from requests.adapters import HTTPAdapter
        from urllib3.exceptions import ReadTimeoutError

        self._requests = requests
        self._read_timeout = ReadTimeoutError
        if session is None:
            session = requests.Session()
            # max_retries=0: a failed attempt is reported at once; the controller decides.
            adapter = HTTPAdapter(pool_connections=_POOL_SIZE, pool_maxsize=_POOL_SIZE, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session

    def __repr__(self) -> str:
        return "RequestsTransport()"

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        """Send one request; ``TransportError`` when no HTTP answer came back."""
        requests = self._requests
        exc = requests.exceptions
        try:
            answer = self.session.request(
                request.method,
                request.base_url.rstrip("/") + request.path,
                params=list(request.query) or None,
                headers=dict(request.headers.items()),
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
                # An explicit Authorization header must not be replaced by ~/.netrc.
                auth=_NoAuth(),
            )
            body = answer.content  # reads the whole body: errors while reading land below
        except (exc.Timeout, TimeoutError) as error:
            # ConnectTimeout is both a Timeout and a ConnectionError: it is a timeout here.
            raise TransportError("timeout", self._message("timed out", request, error)) from None
        except (
            exc.ConnectionError,
            exc.ChunkedEncodingError,
            exc.ContentDecodingError,
            exc.TooManyRedirects,
            exc.InvalidURL,
            exc.InvalidHeader,
            ConnectionError,
            OSError,
        ) as error:
            if self._is_read_timeout(error):
                raise TransportError("timeout", self._message("timed out", request, error)) from None
            never = _never_connected(error)
            if never is not None:
                raise TransportError(never, self._message(UNREACHABLE_WHY[never], request, error),
                                     self._message(UNREACHABLE_WHY[never], request, error, 2000)) from None
            raise TransportError("connection", self._message("connection failed", request, error)) from None
        except exc.RequestException as error:
            raise TransportError("connection", self._message("request failed", request, error)) from None
        headers = {name.lower(): value for name, value in answer.headers.items()}
        return HttpResponse(status=answer.status_code, headers=headers, body=body)

    def _is_read_timeout(self, error: BaseException) -> bool:
        # A read timeout while streaming the body surfaces as ConnectionError(ReadTimeoutError).
        return any(isinstance(arg, self._read_timeout) for arg in getattr(error, "args", ()))

    @staticmethod
    def _message(what: str, request: HttpRequest, error: BaseException, limit: int = 300) -> str:
        # Method and path are added by error_from_transport; the token is scrubbed in case an
        # exception ever quotes the request.
        return one_line(scrub(f"{what}: {type(error).__name__}: {error}", secrets_of(request)), limit)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()


def _never_connected(error: BaseException) -> str | None:
    """``refused`` or ``unresolved`` when no connection was ever established, else None.

    requests wraps urllib3's MaxRetryError, whose ``reason`` is a NewConnectionError caused by
    the socket's ConnectionRefusedError, or a NameResolutionError caused by socket.gaierror:
    the chain is walked through args, ``reason``, causes and contexts. A ConnectTimeout never
    gets here (it is a timeout)."""
    pending: list[Any] = [error]
    seen: set[int] = set()
    while pending and len(seen) < 32:
        item = pending.pop()
        if not isinstance(item, BaseException) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, ConnectionRefusedError):
            return "refused"
        if isinstance(item, socket.gaierror):
            return "unresolved"
        pending.extend((item.__cause__, item.__context__, getattr(item, "reason", None), *item.args))
    return None


class _NoAuth:
    """A requests auth hook that leaves the request untouched (disables netrc lookup)."""

    def __call__(self, prepared: Any) -> Any:
        return prepared
