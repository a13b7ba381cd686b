"""The Back Market seller API client: request builders, parsers and blocking conveniences.

Builders return :class:`HttpRequest` objects and parsers turn answers into models, so the probe
can pipeline requests through ``TrafficController.submit``; the blocking conveniences go through
``executor.execute`` one request at a time.

The token: it lives in one attribute of the client and in the ``Authorization`` header of each
request. Request headers are a :class:`RequestHeaders` mapping whose ``repr`` masks it, so the
``repr``/``str`` of an ``HttpRequest`` (a frozen dataclass that prints its headers) never shows
it; the client's own ``repr`` masks it too. Nothing here logs ``request.headers``; the request
log records method, path, listing and market only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from bmctl.api.errors import MalformedResponse, error_from_transport, raise_for_response, request_id_of
from bmctl.api.markets import get_market, host_for
from bmctl.api.models import Competitor, Listing, ListingsPage, Reader, UpdateResult, decode
from bmctl.api.money import Money
from bmctl.errors import UsageError
from bmctl.traffic.queue import Priority
from bmctl.traffic.transport import HttpRequest, HttpResponse, TransportError

MAX_PAGE_SIZE = 50  # the API's maximum for page-size
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SECRET_HEADERS = frozenset({"authorization"})
_MASK = "***"


T = TypeVar("T")
Parse = Callable[[HttpRequest, HttpResponse], T]


class Executor(Protocol):
    """What the client needs of the traffic controller: send one request, get its final answer
    (``accept``: the parse a 2xx answer to a read must pass, else it is asked for again)."""

    def execute(self, request: HttpRequest, priority: Priority = Priority.NORMAL, *,
                accept: Callable[[HttpRequest, HttpResponse], Any] | None = None) -> HttpResponse: ...


def answer_of(request: HttpRequest, call: Any, parse: Parse[T]) -> T:
    """What ``parse`` makes of a finished call's answer: the value its ``accept`` check kept (so
    the answer is not parsed twice), else the parse of the final answer (an error answer raises
    its mapped error); a call that got no answer at all raises NetworkError or HostUnreachable."""
    if call.error is not None:
        raise error_from_transport(request, call.error)
    if getattr(call, "accepted", False):
        return call.value  # type: ignore[no-any-return]
    return parse(request, call.response)


class RequestHeaders(Mapping[str, str]):
    """Immutable, case-insensitive request headers whose ``repr`` masks ``Authorization``."""

    __slots__ = ("_items", "_lower")

    def __init__(self, items: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._items: dict[str, str] = dict(items)
        self._lower: dict[str, str] = {k.lower(): v for k, v in self._items.items()}

    def __getitem__(self, name: str) -> str:
        return self._lower[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lower

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(frozenset(self._lower.items()))

    def redacted(self) -> dict[str, str]:
        """The headers with credentials masked (for logs and debugging)."""
        return {k: _mask(v) if k.lower() in _SECRET_HEADERS else v for k, v in self._items.items()}

    def __repr__(self) -> str:
        return repr(self.redacted())

    __str__ = __repr__


def _mask(value: str) -> str:
    scheme = value.split(" ", 1)[0] if " " in value else ""
    return f"{scheme} {_MASK}" if scheme else _MASK


# --- configuration helpers ------------------------------------------------------------------


def resolve_base_url(market: str, env: str = "prod", base_url_override: str | None = None) -> str:
    """The API root: ``base_url_override`` when given (sandbox, proxy, tests), else the host of
    the market's platform in ``env``."""
    get_market(market)  # an unknown market is bad usage even with an override
    if base_url_override:
        url = base_url_override.strip().rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"base_url must be an http(s) URL such as http://127.0.0.1:8765, "
                             f"got {base_url_override!r}")
        return url
    return host_for(market, env)


INTEGRATION = "bmctl"
# BM-<company>-<integration>;<email>: dashes separate the parts, ';' the e-mail, so the company
# is a slug of letters, digits, dots and underscores; the e-mail needs an @ and a dotted domain.
_USER_AGENT = re.compile(r"BM-[A-Za-z0-9._]+-[A-Za-z0-9._]+;[^@\s;]+@[^@\s;.]+(\.[^@\s;.]+)+")


def company_slug(company: str) -> str:
    """The company as the User-Agent can carry it: runs of other characters become one '_'."""
    return re.sub(r"[^A-Za-z0-9._]+", "_", company).strip("_")


def default_user_agent(company: str, email: str) -> str:
    """``BM-<company slug>-bmctl;<email>``, the User-Agent format Back Market asks for."""
    # No whitespace (CR/LF would inject headers) and no ';' (it separates the e-mail).
    contact = re.sub(r"[\s;]+", "", email)
    return f"BM-{company_slug(company)}-{INTEGRATION};{contact}"


def user_agent_problem(user_agent: str) -> str | None:
    """Why ``user_agent`` is not ``BM-<company>-<integration>;<email>``, or None if it is."""
    if not user_agent:
        return "none is set"
    if _USER_AGENT.fullmatch(user_agent) is None:
        return (f"{user_agent!r} is not BM-<company>-<integration>;<email> (company and integration: "
                "letters, digits, '.', '_'; an e-mail with an @ and a dotted domain)")
    return None


def validate_listing_id(text: Any) -> str:
    """A listing id as the API wants it (a lower-case UUID); UsageError naming the bad value."""
    value = text.strip().lower() if isinstance(text, str) else None
    if value is None or not _UUID.match(value):
        shown = repr(text) if len(repr(text)) <= 60 else repr(text)[:57] + "..."
        raise UsageError(f"not a listing id: {shown} (expected a UUID such as "
                         "3fa85f64-5717-4562-b3fc-2c963f66afa6)")
    return value


@dataclass(frozen=True)
class ClientConfig:
    """What a client needs besides the executor; ``token`` never shows in its repr."""

    token: str = field(repr=False)
    market: str = "fr-fr"
    env: str = "prod"
    base_url: str | None = None
    user_agent: str = "BM-unknown-bmctl;unknown"

    def build(self, executor: Executor) -> "BackMarketClient":
        return BackMarketClient(
            executor, base_url=resolve_base_url(self.market, self.env, self.base_url),
            token=self.token, user_agent=self.user_agent, market=self.market,
        )


# --- the client -----------------------------------------------------------------------------


class BackMarketClient:
    """Builds, sends (through the executor) and parses Back Market seller API requests."""

    def __init__(self, executor: Executor, *, base_url: str, token: str, user_agent: str,
                 market: str = "fr-fr") -> None:
        token = (token or "").strip()
        if not token:
            raise UsageError("no API token: set BMCTL_TOKEN or `token` in the config file")
        if any(c in token for c in "\r\n\0"):
            raise UsageError("the API token contains a line break or NUL; copy it again")
        if not user_agent or any(c in user_agent for c in "\r\n\0"):
            raise UsageError("the User-Agent must be one non-empty line")
        self.executor = executor
        self.base_url = base_url.rstrip("/")
        self.user_agent = user_agent
        self.market = get_market(market).code
        # The token as issued, after "Basic "; a pasted "Basic xyz" is not prefixed twice.
        self._authorization = token if token.lower().startswith("basic ") else f"Basic {token}"
        self._headers: dict[str, RequestHeaders] = {}

    def __repr__(self) -> str:
        return (f"BackMarketClient(base_url={self.base_url!r}, market={self.market!r}, "
                f"user_agent={self.user_agent!r}, token={_MASK!r})")

    __str__ = __repr__

    # --- building ---------------------------------------------------------------------------

    def headers(self, market: str | None = None) -> RequestHeaders:
        """The headers of every request, for ``market`` (default: the client's)."""
        code = self._market(market)
        headers = self._headers.get(code)
        if headers is None:
            # Immutable, so one instance per market is shared by every request (batch speed).
            headers = self._headers[code] = RequestHeaders({
                "Accept": "application/json",
                "Content-Type": "application/json",
                "Accept-Language": code,
                "Authorization": self._authorization,
                "User-Agent": self.user_agent,
            })
        return headers

    def _market(self, market: str | None) -> str:
        return get_market(market).code if market else self.market

    def _request(self, method: str, path: str, *, market: str | None, listing_id: str | None = None,
                 query: tuple[tuple[str, str], ...] = (), body: bytes | None = None) -> HttpRequest:
        code = self._market(market)
        return HttpRequest(method=method, path=path, query=query, headers=self.headers(code),
                           body=body, base_url=self.base_url, listing_id=listing_id, market=code)

    def build_listings_page(self, page: int = 1, page_size: int = MAX_PAGE_SIZE, *,
                            publication_state: int | None = None, min_quantity: int | None = None,
                            max_quantity: int | None = None, market: str | None = None) -> HttpRequest:
        """``GET /ws/listings`` for one page (``page`` from 1, ``page_size`` at most 50)."""
        _check_int("page", page, 1)
        _check_int("page size", page_size, 1, MAX_PAGE_SIZE)
        query: list[tuple[str, str]] = [("page", str(page)), ("page-size", str(page_size))]
        if publication_state is not None:
            _check_int("publication_state", publication_state, 0, 4)
            query.append(("publication_state", str(publication_state)))
        if min_quantity is not None:
            _check_int("min_quantity", min_quantity, 0)
            query.append(("min_quantity", str(min_quantity)))
        if max_quantity is not None:
            _check_int("max_quantity", max_quantity, 0)
            query.append(("max_quantity", str(max_quantity)))
        return self._request("GET", "/ws/listings", market=market, query=tuple(query))

    def build_get_listing(self, listing_id: str, market: str | None = None) -> HttpRequest:
        """``GET /ws/listings/{id}`` in ``market``."""
        listing_id = validate_listing_id(listing_id)
        return self._request("GET", f"/ws/listings/{listing_id}", market=market, listing_id=listing_id)

    def build_update_listing(self, listing_id: str, *, market: str, price: Money | None = None,
                             min_price: Money | None = None) -> HttpRequest:
        """``POST /ws/listings/{id}`` changing only ``price`` and/or ``min_price`` in ``market``.

        Amounts go as decimal strings with the currency's decimals; ``currency`` is always sent
        (the API requires it outside EUR/USD) and must be the market's."""
        listing_id = validate_listing_id(listing_id)
        if not market:
            raise UsageError("a price update needs a market")
        target = get_market(market)
        if price is None and min_price is None:
            raise UsageError("nothing to update: give a price and/or a min_price")
        body: dict[str, str] = {}
        for name, value in (("price", price), ("min_price", min_price)):
            if value is None:
                continue
            if not isinstance(value, Money):
                raise UsageError(f"{name} must be a Money amount, got {type(value).__name__} {value!r}")
            if value.currency != target.currency:
                raise UsageError(f"{name} {value} is not in {target.currency}, "
                                 f"the currency of market {target.code}")
            if value.amount <= 0:
                raise UsageError(f"{name} must be greater than zero, got {value}")
            body[name] = value.to_api()
        if price is not None and min_price is not None and min_price > price:
            raise UsageError(f"min_price {min_price} is above price {price}")
        body["currency"] = target.currency
        data = json.dumps(body, separators=(",", ":")).encode()
        return self._request("POST", f"/ws/listings/{listing_id}", market=target.code,
                             listing_id=listing_id, body=data)

    def build_competitors(self, listing_id: str, market: str | None = None) -> HttpRequest:
        """``GET /ws/backbox/v1/competitors/{id}`` (answers every market of the listing)."""
        listing_id = validate_listing_id(listing_id)
        return self._request("GET", f"/ws/backbox/v1/competitors/{listing_id}", market=market,
                             listing_id=listing_id)

    # --- parsing ----------------------------------------------------------------------------

    @staticmethod
    def parse_listings_page(request: HttpRequest, response: HttpResponse) -> ListingsPage:
        """A page of listings; raises the mapped error for non-2xx answers."""
        raise_for_response(request, response)
        data = decode(request, response)
        r = Reader(request, response, data, data)
        count = r.integer("count")
        results = r.data.get("results")
        if not isinstance(results, list):
            r.fail("missing required field" if results is None else "expected an array", "results")
        listings = tuple(
            Listing.from_reader(r.child(item, f"results[{i}]"), request.market)
            for i, item in enumerate(results)  # type: ignore[arg-type]
        )
        return ListingsPage(count=count or 0, next=r.text("next", required=False, nullable=True),
                            previous=r.text("previous", required=False, nullable=True),
                            results=listings)

    @staticmethod
    def parse_listing(request: HttpRequest, response: HttpResponse) -> Listing:
        """One listing; MalformedResponse when the answer is about another listing."""
        raise_for_response(request, response)
        data = decode(request, response)
        listing = Listing.from_reader(Reader(request, response, data, data), request.market)
        if request.listing_id and listing.id.lower() != request.listing_id.lower():
            Reader(request, response, data, data).fail(
                f"answer is about listing {listing.id}, not {request.listing_id}", "id")
        return listing

    @staticmethod
    def parse_update(request: HttpRequest, response: HttpResponse) -> UpdateResult:
        """The result of a listing update; ``request_id`` from the body or a header.

        A 2xx means Back Market applied the change, so an answer that lacks listing fields is
        not an error (``listing`` is then None); only a body that is not JSON at all is."""
        raise_for_response(request, response)
        data: Any = decode(request, response) if response.body.strip() else {}
        listing: Listing | None = None
        if isinstance(data, dict):
            try:
                listing = Listing.from_reader(Reader(request, response, data, data), request.market)
            except MalformedResponse:  # a partial answer to an applied write is still a success
                listing = None
        return UpdateResult(
            listing_id=request.listing_id or "", market=request.market,
            request_id=request_id_of(response, data), listing=listing,
            raw=data if isinstance(data, dict) else {},
        )

    @staticmethod
    def parse_competitors(request: HttpRequest, response: HttpResponse) -> list[Competitor]:
        """The Backbox records of a listing, one per market."""
        raise_for_response(request, response)
        data = decode(request, response)
        if not isinstance(data, list):
            Reader(request, response, data, {}).fail("expected an array of competitors")
        root = Reader(request, response, data, {})
        return [Competitor.from_reader(root.child(item, f"[{i}]")) for i, item in enumerate(data)]

    # --- blocking conveniences ----------------------------------------------------------------

    def send(self, request: HttpRequest, priority: Priority = Priority.NORMAL, *,
             accept: Callable[[HttpRequest, HttpResponse], Any] | None = None) -> HttpResponse:
        """Execute one request; a transport failure after retries becomes NetworkError (or
        HostUnreachable). ``accept``: see :class:`Executor` (reads only)."""
        try:
            return self.executor.execute(request, priority, accept=accept)
        except TransportError as error:
            raise error_from_transport(request, error) from None

    def _read(self, request: HttpRequest, parse: Parse[T], priority: Priority) -> T:
        """A blocking read whose unusable (malformed) 2xx answers are asked for again."""
        return parse(request, self.send(request, priority, accept=parse))

    def get_listing(self, listing_id: str, market: str | None = None, *,
                    priority: Priority = Priority.NORMAL) -> Listing:
        request = self.build_get_listing(listing_id, market)
        return self._read(request, self.parse_listing, priority)

    def update_listing(self, listing_id: str, *, market: str, price: Money | None = None,
                       min_price: Money | None = None,
                       priority: Priority = Priority.NORMAL) -> UpdateResult:
        request = self.build_update_listing(listing_id, market=market, price=price, min_price=min_price)
        return self.parse_update(request, self.send(request, priority))

    def competitors(self, listing_id: str, market: str | None = None, *,
                    priority: Priority = Priority.NORMAL) -> list[Competitor]:
        request = self.build_competitors(listing_id, market)
        return self._read(request, self.parse_competitors, priority)

    def iter_listings(self, filters: Mapping[str, Any] | None = None, *, limit: int | None = None,
                      market: str | None = None, publication_state: int | None = None,
                      min_quantity: int | None = None, max_quantity: int | None = None,
                      page_size: int = MAX_PAGE_SIZE,
                      priority: Priority = Priority.LOW, first: tuple[HttpRequest, Any] | None = None,
                      ) -> Iterator[Listing]:
        """Every listing, page after page, up to ``limit``. ``filters`` may hold
        ``publication_state``, ``min_quantity``, ``max_quantity`` (keywords win). ``first``:
        the first page's request, already submitted, and its call."""
        options = dict(filters or {})
        unknown = set(options) - {"publication_state", "min_quantity", "max_quantity"}
        if unknown:
            raise UsageError(f"unknown listing filter(s): {', '.join(sorted(unknown))}")
        for name, value in (("publication_state", publication_state), ("min_quantity", min_quantity),
                            ("max_quantity", max_quantity)):
            if value is not None:
                options[name] = value
        if limit is not None:
            _check_int("limit", limit, 0)
            if limit == 0:
                return
            # Same page size on every page, so page numbers stay consistent.
            page_size = min(page_size, limit)
        _check_int("page size", page_size, 1, MAX_PAGE_SIZE)
        # Validate every argument before the first request goes out.
        self.build_listings_page(1, page_size, market=market, **options)
        page, seen, yielded = 1, set(), 0
        while True:
            if first is not None and page == 1:
                request, result = first[0], self._awaited_page(*first)
            else:
                request = self.build_listings_page(page, page_size, market=market, **options)
                result = self._read(request, self.parse_listings_page, priority)
            for listing in result.results:
                yield listing
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            seen.add(page)
            following = next_page_number(result.next, page)
            # Never fetch the `next` URL itself: it names a host, and the token must only go
            # to our base_url. Its page number is all we take from it.
            if not result.results or following is None or following in seen:
                return
            if page == 1 and following == 2 and result.count:
                # Numbered pages and a known count: ask for the following ones several at a
                # time (as many as the wire carries), and hand them over in order. The first
                # page is full: its length is the server's page size.
                served = len(result.results)
                last = -(-result.count // served)
                if limit is not None:
                    last = min(last, -(-limit // served))
                yield from self._pages_ahead(2, last, page_size, market, options, priority,
                                             None if limit is None else limit - yielded)
                return
            page = following

    def iter_listings_by_market(self, markets: Iterable[str], *, min_quantity: int | None = None,
                                priority: Priority = Priority.LOW) -> Iterator[tuple[str, Listing]]:
        """``(market, listing)`` for every listing of each market in turn; the first page of
        every market is asked for at once when the wire carries several requests."""
        markets = list(markets)
        executor: Any = self.executor
        firsts: dict[str, tuple[HttpRequest, Any]] = {}
        if len(markets) > 1 and hasattr(executor, "submit") and getattr(executor, "max_in_flight", 1) > 1:
            for market in markets:
                request = self.build_listings_page(1, MAX_PAGE_SIZE, market=market, min_quantity=min_quantity)
                firsts[market] = (request, executor.submit(request, priority, accept=self.parse_listings_page))
        for market in markets:
            for listing in self.iter_listings(min_quantity=min_quantity, market=market, priority=priority,
                                              first=firsts.get(market)):
                yield market, listing

    def _awaited_page(self, request: HttpRequest, call: Any) -> ListingsPage:
        """The page a submitted call brings, running the controller until it is in."""
        self.executor.run(lambda: call.done)  # type: ignore[attr-defined]
        return answer_of(request, call, self.parse_listings_page)

    def _pages_ahead(self, first: int, last: int, page_size: int, market: str | None,
                     options: Mapping[str, Any], priority: Priority, limit: int | None) -> Iterator[Listing]:
        """Pages ``first..last`` with up to the wire's capacity of them requested ahead."""
        executor: Any = self.executor  # a TrafficController pipelines; a bare Executor does not
        window = max(1, int(getattr(executor, "max_in_flight", 1)))
        if not hasattr(executor, "submit"):
            window = 1
        pending: dict[int, tuple[HttpRequest, Any]] = {}
        ahead = first
        yielded = 0
        for page in range(first, last + 1):
            while ahead <= last and ahead < page + window:
                request = self.build_listings_page(ahead, page_size, market=market, **options)
                pending[ahead] = (request, executor.submit(request, priority, accept=self.parse_listings_page)
                                  if window > 1 else None)
                ahead += 1
            request, call = pending.pop(page)
            if call is None:
                result = self._read(request, self.parse_listings_page, priority)
            else:
                result = self._awaited_page(request, call)
            for listing in result.results:
                yield listing
                yielded += 1
                if limit is not None and yielded >= limit:
                    return
            if not result.results:
                return


def next_page_number(next_url: str | None, current: int) -> int | None:
    """The page number a ``next`` link points to (current + 1 when it has none)."""
    if not next_url:
        return None
    values = parse_qs(urlsplit(next_url).query).get("page")
    if values and values[0].isdigit() and int(values[0]) > 0:
        return int(values[0])
    return current + 1


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (
        high is not None and value > high
    ):
        bounds = f"{low}..{high}" if high is not None else f">= {low}"
        raise UsageError(f"{name} must be an integer {bounds}, got {value!r}")
