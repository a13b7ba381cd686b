"""The vocabulary of a probe: what it is asked to do (target, parameters), what it yields to
the batch (``Send``, ``Wait``), what it reports (``ProbeResult``) and what it needs from the
outside (``ProbeClient``, ``ProbeHooks``). The steps themselves are in ``bmctl.pricing.probe``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Protocol

from bmctl.api.client import MAX_PAGE_SIZE
from bmctl.api.money import Money, money_text
from bmctl.pricing.guardrails import Bounds
from bmctl.traffic.queue import Priority
from bmctl.traffic.transport import HttpRequest


@dataclass(frozen=True)
class Sighting:
    """A competitors answer already read for a listing: its record for one market, the whole
    answer (the history's snapshot) and when it was read (controller time)."""

    record: Any
    snapshot: Any
    at: float


@dataclass(frozen=True)
class ProbeTarget:
    """One listing in one market, with the operator's optional bounds.

    ``discover``: the markets it may be probed in, when which of them it competes in is not
    known yet (``probe --all`` over every market): the probe's first competitors read names
    them all; the probe takes ``market`` if it is one of them (else the first) and hands the
    others to the batch as new targets, each with its ``seen`` record (no second read)."""

    listing_id: str
    market: str
    floor: Money | None = None
    ceiling: Money | None = None
    discover: tuple[str, ...] = ()
    seen: Sighting | None = field(default=None, compare=False)
    source: str = "option"  # where floor and ceiling came from: "option" or "file"


@dataclass(frozen=True)
class ProbeParams:
    """How probes behave (``[probe]`` settings and options)."""

    settle: float = 2.0
    max_raises: int = 3
    max_dip: float = 120.0
    peek_retries: int = 5
    step: str = ""
    dry_run: bool = False
    headroom: str = "auto"  # auto | revealed | hidden: does price_to_win reveal headroom?
    rules: Any = None  # bmctl.pricing.costs.PricingRules: costs, fees, margins, caps per write


@dataclass(frozen=True)
class Send:
    """Ask the controller to send ``request``; the probe resumes with the finished call.
    ``accept``: a read's parser, so that an answer it cannot use is asked for again."""

    request: HttpRequest
    priority: Priority
    reserve_exit: bool = False
    reservation: Any = None
    accept: Callable[[HttpRequest, Any], Any] | None = None


@dataclass(frozen=True)
class Wait:
    """Resume the probe after ``seconds``."""

    seconds: float


Action = Send | Wait

#: How old a competitors answer read by another market's probe may be and still serve as this
#: probe's first look (seconds): the batch starts the markets it found at once, so it is fresh.
SIGHTING_MAX_AGE = 30.0

ProbeGenerator = Generator[Action, Any, "ProbeResult"]


@dataclass
class ProbeResult:
    """What a probe did; ``to_json`` gives the contract's fields."""

    listing_id: str
    market: str
    currency: str | None = None
    outcome: str = "error"
    start_price: Money | None = None
    dip_price: Money | None = None
    final_price: Money | None = None
    floor: Money | None = None
    ceiling: Money | None = None
    writes: int = 0
    dip_seconds: float = 0.0
    reason: str = ""
    floor_source: str | None = None  # cost | min_price | option | file
    ceiling_source: str | None = None  # cost | max_price | option | file | start_price
    dry_run: bool = False
    planned: list[str] = field(default_factory=list)
    floor_hit: bool = False
    exit_code: int = 0  # of the error behind an ``error`` outcome (4: rate limits, else 1)

    def to_json(self) -> dict[str, Any]:
        text = money_text
        data: dict[str, Any] = {
            "listing_id": self.listing_id,
            "market": self.market,
            "currency": self.currency,
            "outcome": self.outcome,
            "start_price": text(self.start_price),
            "dip_price": text(self.dip_price),
            "final_price": text(self.final_price),
            "floor": text(self.floor),
            "ceiling": text(self.ceiling),
            "floor_source": self.floor_source,
            "ceiling_source": self.ceiling_source,
            "writes": self.writes,
            "dip_seconds": round(self.dip_seconds, 3),
            "reason": self.reason,
        }
        if self.dry_run:
            data["dry_run"] = True
            data["planned_writes"] = list(self.planned)
        return data


class ProbeClient(Protocol):
    """What the probe needs of the Back Market client: request builders and answer parsers."""

    def build_get_listing(self, listing_id: str, market: str | None = None) -> HttpRequest: ...

    def build_competitors(self, listing_id: str, market: str | None = None) -> HttpRequest: ...

    def build_update_listing(self, listing_id: str, *, market: str, price: Money | None = None,
                             min_price: Money | None = None) -> HttpRequest: ...

    def parse_listing(self, request: HttpRequest, response: Any) -> Any: ...

    def parse_competitors(self, request: HttpRequest, response: Any) -> Any: ...

    def parse_update(self, request: HttpRequest, response: Any) -> Any: ...

    def build_listings_page(self, page: int = 1, page_size: int = MAX_PAGE_SIZE, *,
                            publication_state: int | None = None,
                            min_quantity: int | None = None, max_quantity: int | None = None,
                            market: str | None = None) -> HttpRequest: ...

    def parse_listings_page(self, request: HttpRequest, response: Any) -> Any: ...


class ProbeHooks(Protocol):
    """Side effects of a probe: the journal, the breaker, the clock, and what the run knows of
    our own listings (``own``: ``bmctl.pricing.own.OwnOffers``; None: no own-offer rule)."""

    own: Any

    def now(self) -> float: ...

    def open_probe(self, target: ProbeTarget, original: Money, bounds: Bounds) -> int: ...

    def step(self, probe_id: int, **fields: Any) -> None: ...

    def change(self, probe_id: int | None, target: ProbeTarget, old: Money | None, new: Money,
               reason: str, snapshot: Any, request_id: str | None, status: str) -> None: ...

    def floor_hit(self, target: ProbeTarget) -> bool:
        """Count a dip to the floor; False means the circuit breaker forbids it."""
        ...

    def headroom_revealed(self) -> bool:
        """Whether this run has seen the market reveal headroom above a winning price."""
        ...

    def saw_revealed_headroom(self) -> None: ...

    def hold(self, target: ProbeTarget) -> str | None:
        """Why the price-war cooldown holds this listing (no request), or None."""
        ...

    def raise_back_wait(self, target: ProbeTarget) -> str | None:
        """None when a listing winning at the start may be searched upwards; else why not yet."""
        ...
