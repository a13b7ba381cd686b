"""The sandbox marketplace: listings, per-market Backboxes, settle delay and competitor drift.

Pure and single-threaded: time comes from an injected callable (seconds), randomness from an
injected ``random.Random``. The rules it implements (tests hold it to them):

- **Competing**: an offer (listing x market) competes when the listing has stock
  (``quantity > 0``), is published (``publication_state == 2``) and the price the Backbox sees
  is not above ``max_price`` (above it the listing is offline in that market). Offers that do not
  compete are left out of :meth:`Marketplace.competitors` (the API lists "your online listings
  competing in a Backbox") and never hold the Backbox.
- **Winner**: the lowest price wins; a tie stays with the incumbent (whoever held the Backbox
  just before). Alone in its Backbox, a competing offer wins.
- **Settle**: after a price write the Backbox keeps seeing the old price for ``settle`` seconds;
  the listing itself shows the new price at once. ``Competitor.price`` is the Backbox's view.
- **price_to_win** (on the currency's tick grid), with ``best`` the lowest rival price:
  ``best - tick`` (the highest price that wins outright, without relying on a tie) while not
  winning, and while winning with ``reveal`` (below our own price when we hold a tie), or
  ``max_price`` when there is no rival; while winning without ``reveal``, our own price. It is not capped at
  ``max_price`` when rivals exist: it describes the market, the ceiling is the seller's business.
- **winner_price**: our (Backbox-seen) price when we win, else ``best``.
- **Reacting rivals** (``OfferSpec.reacting``): an *undercutter* reprices every ``interval``
  seconds to one tick under the lowest other price in the Backbox (ours, while we compete, and
  the other rivals'), never below its ``floor`` nor above its start price; a *leaver* is in the
  Backbox at its price for ``present`` seconds, then gone for ``away`` seconds, and so on (from
  ``offset`` seconds after the listing was loaded). Each counts as a rival while present.
- **Drift** (optional): every ``interval`` seconds each rival price takes a seeded random step
  of up to ``step`` (fraction of its start price, at least one tick), kept within ``band``
  (fraction) of its start price. Each offer has its own rng stream, so the walk does not depend
  on the order in which offers are queried.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Callable, Iterable, Iterator

from bmctl.api.markets import MARKETS, Market
from bmctl.api.money import Money, tick

ONLINE = 2  # publication_state of a published listing
GRADES = {"PREMIUM": 9, "EXCELLENT": 0, "VERY_GOOD": 1, "GOOD": 2, "FAIR": 3, "STALLONE": 4}


class UnknownListing(KeyError):
    """No such listing, or the listing is not offered in that market."""


@dataclass(frozen=True)
class ReactingRival:
    """A rival seller that reacts (module docstring): ``kind`` ``undercut`` (reprices every
    ``interval`` s to one tick under the lowest other price, within ``[floor, price]``) or
    ``leave`` (present ``present`` s, away ``away`` s, from ``offset`` s)."""

    kind: str
    price: Money
    floor: Money | None = None
    interval: float = 300.0
    present: float = 3600.0
    away: float = 3600.0
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in REACTING_KINDS:
            raise ValueError(f"unknown reacting rival {self.kind!r} (known: {', '.join(REACTING_KINDS)})")
        if self.interval <= 0 or self.present <= 0 or self.away <= 0 or self.offset < 0:
            raise ValueError("a reacting rival needs interval, present and away > 0 and offset >= 0")
        if self.floor is not None and (self.floor.currency != self.price.currency or self.floor > self.price):
            raise ValueError("an undercutter's floor is in its price's currency and not above it")


REACTING_KINDS = ("undercut", "leave")


@dataclass(frozen=True)
class OfferSpec:
    """A listing in one market at start: our prices and the rivals' (all in the market's currency)."""

    market: str
    price: Money
    max_price: Money
    min_price: Money | None = None
    rivals: tuple[Money, ...] = ()
    incumbent: bool = False  # we hold the Backbox at start (decides a tie)
    reacting: tuple[ReactingRival, ...] = ()


@dataclass(frozen=True)
class ListingSpec:
    """A listing at start; quantity is shared by all its markets."""

    id: str
    sku: str
    offers: tuple[OfferSpec, ...]
    quantity: int = 5
    listing_id: int = 0
    product_id: str = ""
    backmarket_id: int = 0
    title: str = ""
    grade: str = "EXCELLENT"
    publication_state: int = ONLINE
    warranty_delay: int = 12
    comment: str | None = None


@dataclass(frozen=True)
class Drift:
    """Random walk of rival prices: a step every ``interval`` s, bounded to ``band`` around start."""

    interval: float = 60.0
    step: Decimal = Decimal("0.01")
    band: Decimal = Decimal("0.10")

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.step < 0 or not 0 <= self.band < 1:
            raise ValueError("drift needs interval > 0, step >= 0 and 0 <= band < 1")


def parse_drift(text: str) -> Drift:
    """Parse ``interval=60,step=0.01,band=0.10`` (any subset); ValueError says what is wrong."""
    values: dict[str, Any] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, raw = (x.strip() for x in part.partition("="))
        if not sep or key not in ("interval", "step", "band"):
            raise ValueError(f"{part!r}: expected interval=SECONDS, step=AMOUNT or band=FRACTION")
        if key in values:
            raise ValueError(f"{key!r} given twice")
        try:
            number = Decimal(raw)
        except ArithmeticError:
            raise ValueError(f"{key}={raw!r}: not a number") from None
        if not number.is_finite():
            raise ValueError(f"{key}={raw!r}: not a finite number")
        values[key] = float(number) if key == "interval" else number
    return Drift(**values)


@dataclass(frozen=True)
class BackboxView:
    """One offer as the competitors endpoint shows it."""

    listing_id: str
    product_id: str
    market: Market
    price: Money
    min_price: Money | None
    price_to_win: Money
    winner_price: Money | None
    is_winning: bool


@dataclass
class Reactor:
    """Mutable state of a reacting rival: its price now, whether it is in the Backbox, and
    when it acts next."""

    spec: ReactingRival
    price: Decimal
    present: bool
    next_at: float

    def step(self, others: list[Decimal], grid: Decimal) -> None:
        """Act once: an undercutter reprices, a leaver leaves or comes back."""
        spec = self.spec
        if spec.kind == "leave":
            self.present = not self.present
            self.next_at += spec.present if self.present else spec.away
            return
        top = spec.price.amount
        low = spec.floor.amount if spec.floor is not None else grid
        target = min(others) - grid if others else top
        self.price = min(top, max(low, target))
        self.next_at += spec.interval


@dataclass
class Offer:
    """Mutable state of a listing in one market."""

    market: Market
    price: Decimal
    max_price: Decimal
    min_price: Decimal | None
    seen: Decimal  # the price the Backbox sees (lags writes by `settle`)
    rivals: list[Decimal]
    starts: list[Decimal]  # rivals' start prices, the centre of the drift band
    we_hold: bool
    rng: random.Random
    next_drift: float
    pending: list[tuple[float, int, Decimal]] = field(default_factory=list)
    reactors: list[Reactor] = field(default_factory=list)

    def rival_prices(self) -> list[Decimal]:
        """Every other seller's price in the Backbox now (reacting ones while present)."""
        return self.rivals + [r.price for r in self.reactors if r.present]

    @property
    def currency(self) -> str:
        return self.market.currency

    def money(self, amount: Decimal) -> Money:
        return Money(amount, self.market.currency)


@dataclass
class Listing:
    """Mutable state of one listing."""

    spec: ListingSpec
    quantity: int
    publication_state: int
    warranty_delay: int
    comment: str | None
    offers: dict[str, Offer]

    @property
    def id(self) -> str:
        return self.spec.id


class Marketplace:
    """Listings and their Backboxes; see the module docstring for the rules."""

    def __init__(self, clock: Callable[[], float], *, settle: float = 2.0, reveal: bool = True,
                 drift: Drift | None = None, rng: random.Random | None = None) -> None:
        if settle < 0:
            raise ValueError("settle must be >= 0")
        self.clock = clock
        self.settle = settle
        self.reveal = reveal
        self.drift = drift
        self.rng = rng if rng is not None else random.Random(0)
        self._listings: dict[str, Listing] = {}
        self._legacy: dict[int, str] = {}
        self._seq = 0  # orders pending writes made at the same instant

    # --- catalogue ------------------------------------------------------------------------

    def load(self, specs: Iterable[ListingSpec]) -> None:
        """Add every listing of a catalogue."""
        for spec in specs:
            self.add_listing(spec)

    def add_listing(self, spec: ListingSpec) -> Listing:
        """Add one listing; its rivals' drift streams are seeded from the marketplace rng."""
        key = spec.id.lower()
        if key in self._listings:
            raise ValueError(f"duplicate listing id {spec.id}")
        if not spec.offers:
            raise ValueError(f"listing {spec.id} is offered in no market")
        now = self.clock()
        offers: dict[str, Offer] = {}
        for o in spec.offers:
            market = MARKETS.get(o.market)
            if market is None:
                raise ValueError(f"listing {spec.id}: unknown market {o.market!r}")
            if o.market in offers:
                raise ValueError(f"listing {spec.id}: market {o.market} given twice")
            amounts = [o.price, o.max_price, *o.rivals, *(r.price for r in o.reacting)] + (
                [o.min_price] if o.min_price else [])
            if any(m.currency != market.currency for m in amounts):
                raise ValueError(f"listing {spec.id}: amounts in {o.market} must be in {market.currency}")
            rivals = [m.amount for m in o.rivals]
            offers[o.market] = Offer(
                market=market, price=o.price.amount, max_price=o.max_price.amount,
                min_price=o.min_price.amount if o.min_price else None, seen=o.price.amount,
                rivals=list(rivals), starts=list(rivals), we_hold=o.incumbent,
                rng=random.Random(self.rng.getrandbits(64)),
                next_drift=now + (self.drift.interval if self.drift else 0.0),
                # A leaver is there at first and leaves offset + present seconds later.
                reactors=[Reactor(r, r.price.amount, present=True,
                                  next_at=now + (r.offset + r.present if r.kind == "leave" else r.interval))
                          for r in o.reacting],
            )
        listing = Listing(spec=spec, quantity=spec.quantity, publication_state=spec.publication_state,
                          warranty_delay=spec.warranty_delay, comment=spec.comment, offers=offers)
        self._listings[key] = listing
        if spec.listing_id:
            self._legacy[spec.listing_id] = key
        for offer in offers.values():
            self._evaluate(listing, offer)
        return listing

    def specs(self) -> list[ListingSpec]:
        """The current state as a catalogue (prices as the listings show them)."""
        self.refresh()
        out = []
        for listing in self._listings.values():
            offers = tuple(
                OfferSpec(market=code, price=o.money(o.price), max_price=o.money(o.max_price),
                          min_price=o.money(o.min_price) if o.min_price is not None else None,
                          rivals=tuple(o.money(r) for r in o.rivals), incumbent=o.we_hold,
                          reacting=tuple(r.spec for r in o.reactors))
                for code, o in listing.offers.items())
            out.append(replace(listing.spec, offers=offers, quantity=listing.quantity,
                               publication_state=listing.publication_state,
                               warranty_delay=listing.warranty_delay, comment=listing.comment))
        return out

    # --- reads ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._listings)

    def listings(self) -> Iterator[Listing]:
        """Every listing, in catalogue order."""
        return iter(self._listings.values())

    def get(self, listing_id: str) -> Listing:
        """A listing by UUID (any case) or legacy integer id; UnknownListing otherwise."""
        key = str(listing_id).strip().lower()
        if key.isdigit() and int(key) in self._legacy:
            key = self._legacy[int(key)]
        listing = self._listings.get(key)
        if listing is None:
            raise UnknownListing(listing_id)
        return listing

    def offer(self, listing_id: str, market: str) -> Offer:
        """The listing in one market, brought up to date; UnknownListing when not offered there."""
        listing = self.get(listing_id)
        offer = listing.offers.get(market)
        if offer is None:
            raise UnknownListing(f"{listing_id} in {market}")
        self._advance(listing, offer, self.clock())
        return offer

    def backbox(self, listing_id: str, market: str) -> BackboxView | None:
        """The Backbox view of one offer, or None when it does not compete."""
        offer = self.offer(listing_id, market)
        return self._view(self.get(listing_id), offer)

    def competitors(self, listing_id: str) -> list[BackboxView]:
        """One view per market in which the listing competes (the competitors endpoint)."""
        listing = self.get(listing_id)
        now = self.clock()
        views = []
        for offer in listing.offers.values():
            self._advance(listing, offer, now)
            view = self._view(listing, offer)
            if view is not None:
                views.append(view)
        return views

    def refresh(self, listings: Iterable[Listing] | None = None) -> None:
        """Bring every offer (of ``listings``, default all) up to the clock (settled writes,
        drift). Each offer replays its own steps with its own rng, so bringing some up to date
        and others later gives the same market."""
        now = self.clock()
        for listing in self._listings.values() if listings is None else listings:
            for offer in listing.offers.values():
                self._advance(listing, offer, now)

    # --- writes -----------------------------------------------------------------------------

    def set_price(self, listing_id: str, market: str, price: Money) -> None:
        """Write a price: the listing shows it now, the Backbox after ``settle`` seconds."""
        offer = self.offer(listing_id, market)
        self._check_currency(offer, price)
        offer.price = price.amount
        self._seq += 1
        bisect.insort(offer.pending, (self.clock() + self.settle, self._seq, price.amount))
        self._advance(self.get(listing_id), offer, self.clock())

    def set_min_price(self, listing_id: str, market: str, min_price: Money | None) -> None:
        """Set or clear the floor (no effect on the Backbox)."""
        offer = self.offer(listing_id, market)
        if min_price is not None:
            self._check_currency(offer, min_price)
        offer.min_price = min_price.amount if min_price is not None else None

    def set_quantity(self, listing_id: str, quantity: int) -> None:
        """Set the shared stock; at 0 the listing stops competing in every market."""
        if quantity < 0:
            raise ValueError("quantity must be >= 0")
        listing = self._settle_all(listing_id)
        listing.quantity = quantity
        self._evaluate_all(listing)

    def set_publication_state(self, listing_id: str, state: int) -> None:
        """Publish (2) or unpublish a listing."""
        listing = self._settle_all(listing_id)
        listing.publication_state = state
        self._evaluate_all(listing)

    def set_details(self, listing_id: str, *, comment: str | None = None,
                    warranty_delay: int | None = None, clear_comment: bool = False) -> None:
        """Fields that do not touch the Backbox."""
        listing = self.get(listing_id)
        if comment is not None or clear_comment:
            listing.comment = comment
        if warranty_delay is not None:
            listing.warranty_delay = warranty_delay

    def set_rivals(self, listing_id: str, market: str, prices: Iterable[Money]) -> None:
        """Replace the other sellers' prices (tests and rehearsals); they become the drift centre."""
        offer = self.offer(listing_id, market)
        amounts = []
        for price in prices:
            self._check_currency(offer, price)
            amounts.append(price.amount)
        offer.rivals, offer.starts = list(amounts), list(amounts)
        self._evaluate(self.get(listing_id), offer)

    # --- internals --------------------------------------------------------------------------

    @staticmethod
    def _check_currency(offer: Offer, money: Money) -> None:
        if money.currency != offer.currency:
            raise ValueError(f"{money} is not in {offer.currency}, the currency of {offer.market.code}")

    def _settle_all(self, listing_id: str) -> Listing:
        listing = self.get(listing_id)
        now = self.clock()
        for offer in listing.offers.values():
            self._advance(listing, offer, now)
        return listing

    def _evaluate_all(self, listing: Listing) -> None:
        for offer in listing.offers.values():
            self._evaluate(listing, offer)

    def _competing(self, listing: Listing, offer: Offer) -> bool:
        return (listing.quantity > 0 and listing.publication_state == ONLINE
                and offer.seen <= offer.max_price)

    def _evaluate(self, listing: Listing, offer: Offer) -> None:
        """Decide who holds the Backbox now (lowest wins, the incumbent keeps a tie)."""
        rivals = offer.rival_prices()
        if not self._competing(listing, offer):
            offer.we_hold = False
        elif not rivals:
            offer.we_hold = True
        else:
            best = min(rivals)
            offer.we_hold = offer.seen <= best if offer.we_hold else offer.seen < best

    def _advance(self, listing: Listing, offer: Offer, now: float) -> None:
        """Replay settled writes and drift steps up to ``now``, in time order."""
        drift = self.drift
        while True:
            t_write = offer.pending[0][0] if offer.pending else None
            t_drift = offer.next_drift if drift is not None and offer.rivals else None
            reactor = min(offer.reactors, key=lambda r: r.next_at) if offer.reactors else None
            t_react = reactor.next_at if reactor is not None else None
            due = [t for t in (t_write, t_drift, t_react) if t is not None and t <= now]
            if not due:
                break
            first = min(due)
            if t_write == first:
                offer.seen = offer.pending.pop(0)[2]
            elif drift is not None and t_drift == first:
                self._drift_step(offer, drift)
                offer.next_drift += drift.interval
            else:
                assert reactor is not None
                others = [r.price for r in offer.reactors if r.present and r is not reactor] + offer.rivals
                if self._competing(listing, offer):
                    others.append(offer.seen)
                reactor.step(others, tick(offer.currency))
            self._evaluate(listing, offer)
        if drift is not None and not offer.rivals:
            offer.next_drift = max(offer.next_drift, now)

    @staticmethod
    def _drift_step(offer: Offer, drift: Drift) -> None:
        grid = tick(offer.currency)
        for i, start in enumerate(offer.starts):
            most = max(1, int(start * drift.step / grid))
            moved = offer.rivals[i] + grid * offer.rng.randint(-most, most)
            low = max(grid, (start * (1 - drift.band)).quantize(grid, ROUND_HALF_UP))
            high = (start * (1 + drift.band)).quantize(grid, ROUND_HALF_UP)
            offer.rivals[i] = min(high, max(low, moved))

    def _view(self, listing: Listing, offer: Offer) -> BackboxView | None:
        if not self._competing(listing, offer):
            return None
        grid = tick(offer.currency)
        rivals = offer.rival_prices()
        best = min(rivals) if rivals else None
        if offer.we_hold:
            if not self.reveal:
                to_win = offer.seen
            else:
                # The price that wins outright, as for a challenger: a probe that dipped to
                # price_to_win then sees no headroom, so one write suffices (ties are the
                # incumbent's luck, not a price anyone should aim for).
                to_win = max(grid, best - grid) if best is not None else offer.max_price
            winner = offer.seen
        else:
            # Competing and not holding implies a rival at or below our price.
            assert best is not None
            to_win = max(grid, best - grid)
            winner = best
        return BackboxView(
            listing_id=listing.id, product_id=listing.spec.product_id, market=offer.market,
            price=offer.money(offer.seen),
            min_price=offer.money(offer.min_price) if offer.min_price is not None else None,
            price_to_win=offer.money(to_win), winner_price=offer.money(winner),
            is_winning=offer.we_hold,
        )
