"""Dip → Peek → Peak for one listing in one market, written as a resumable step function.

A probe is a generator: it yields ``Send`` (a request for the traffic controller) or ``Wait``
(simulated or real seconds) and is resumed with the finished call, so that one thread can keep
many probes in flight (see ``bmctl.pricing.batch``)."""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any, Callable, Generator

from bmctl.api.client import next_page_number
from bmctl.api.markets import get_market
from bmctl.api.money import Money
from bmctl.errors import BmctlError, ItemError
from bmctl.pricing.guardrails import Bounds, BoundsRefused, effective_bounds
from bmctl.pricing.probe_types import (
    SIGHTING_MAX_AGE,
    Action,
    ProbeClient,
    ProbeGenerator,
    ProbeHooks,
    ProbeParams,
    ProbeResult,
    ProbeTarget,
    Send,
    Sighting,
    Wait,
)
from bmctl.traffic.queue import Priority
from bmctl.traffic.transport import HttpRequest, TransportError


class DipExpired(BmctlError):
    """A dip outlived ``max_dip``."""


class Probe:
    """One probe's state and steps; ``run()`` is the generator the batch drives."""

    def __init__(self, target: ProbeTarget, client: ProbeClient, hooks: ProbeHooks, params: ProbeParams,
                 parse_error: Callable[[HttpRequest, TransportError], BmctlError]) -> None:
        self.target = target
        self.client = client
        self.hooks = hooks
        self.params = params
        self.parse_error = parse_error
        self.currency = get_market(target.market).currency
        self.result = ProbeResult(listing_id=target.listing_id, market=target.market,
                                  currency=self.currency, dry_run=params.dry_run)
        self.probe_id: int | None = None
        self.price: Money | None = None  # what the listing is at, as far as we know
        self.original: Money | None = None
        self.bounds: Bounds | None = None
        self.reservation: Any = None
        self.price_log: list[tuple[float, Money]] = []  # (time, price) after each write
        self.dip_started: float | None = None
        self.dip_open = False  # a dip is written and its exit (peak or restore) is not yet
        self.lost_backbox = False  # the peak lost the Backbox and could not win it back
        self.lost_to_win: Money | None = None  # the price to win the market showed then
        self.snapshot: Any = None
        self.price_uncertain = False  # a write failed: it may or may not have been applied
        self.known_losing: Money | None = None  # lowest price known to lose the Backbox
        self.capped_from: Money | None = None  # the dip max_step_down stopped short of
        self.keep_open = False  # the journal must keep the probe for recovery
        self.confirmed: Any = None  # the competitor record that confirmed our last price
        self.spawned: list[ProbeTarget] = []  # other markets a discovering probe found
        self.writing: tuple[HttpRequest, Money, str, Money | None] | None = None  # awaiting its answer
        self.call: Any = None  # the controller's call for the last Send (set by the batch)
        self.raising_back = False  # winning from the start, searched upwards (raise back)

    # --- the steps -------------------------------------------------------------------------

    def run(self) -> ProbeGenerator:
        """Dip → Peek → Peak; always returns a ProbeResult, restoring on any failure mid-dip."""
        try:
            yield from self._probe()
        except ItemError as error:
            self.result.outcome = "error"
            self.result.reason = error.message
            self.result.exit_code = int(error.exit_code)
            if self.probe_id is not None:
                yield from self._restore_after_failure()
        except DipExpired as error:
            self.result.outcome = "error"
            self.result.reason = error.message
            yield from self._restore_after_failure()
        return self._finish()

    def _probe(self) -> Generator[Action, Any, None]:
        target, result = self.target, self.result
        if not target.discover and self._held():
            return  # a held listing costs no request
        # The first look at the market is new work (NORMAL): nothing has changed yet, and the
        # peeks of other probes' open dips (HIGH) must not queue behind it.
        if target.discover:
            competitor = yield from self._discover()
            if competitor is None or self._held():
                return
            target = self.target
            listing = yield from self._read_listing(Priority.NORMAL)
        elif target.seen is not None and self.hooks.now() - target.seen.at <= SIGHTING_MAX_AGE:
            listing = yield from self._read_listing(Priority.NORMAL)
            competitor, self.snapshot = target.seen.record, target.seen.snapshot
        else:
            listing = yield from self._read_listing(Priority.NORMAL)
            competitor = yield from self._read_competitor(Priority.NORMAL)
        if listing.price is None or competitor is None:
            result.outcome = "skipped"
            result.reason = f"the listing does not compete in {target.market}"
            return
        self.price = self.original = result.start_price = result.final_price = listing.price
        try:
            cost_floor, cost_ceiling = self._cost_bounds(listing)
            self.bounds = effective_bounds(
                currency=self.currency, min_price=listing.min_price, max_price=listing.max_price,
                start_price=listing.price, floor=target.floor, ceiling=target.ceiling,
                source=target.source, cost_floor=cost_floor, cost_ceiling=cost_ceiling,
            )
        except BoundsRefused as refused:
            result.outcome = "skipped"
            result.reason = refused.reason
            return
        result.floor, result.ceiling = self.bounds.floor, self.bounds.ceiling
        result.floor_source, result.ceiling_source = self.bounds.floor_source, self.bounds.ceiling_source
        if not competitor.is_winning:
            ours = yield from self._own_winner(listing, competitor)
            if ours is not None:
                # Dipping below our own winning offer takes the sale from ourselves, cheaper.
                result.outcome = "kept"
                result.reason = (f"the Backbox winner is our own listing {ours[:8]} (at "
                                 f"{competitor.winner_price}): no dip against it")
                return
        if self.params.dry_run:
            self._plan(competitor)
            return
        if not competitor.is_winning:
            winning = yield from self._dip(competitor)
            if not winning:
                return
            competitor = self.confirmed
        yield from self._peak(competitor)

    def _cost_bounds(self, listing: Any) -> tuple[Money | None, Money | None]:
        """The floor and ceiling the costs file and ``[pricing]`` give this listing here (None:
        no cost, or a blank or zero one); BoundsRefused when its cost cannot be used."""
        rules = self.params.rules
        if rules is None or rules.costs is None:
            return None, None
        row = rules.costs.find(listing.id, listing.legacy_id, listing.sku, self.target.market)
        if row is None:
            return None, None
        floor, ceiling, refused = rules.cost_bounds(row, self.currency)
        if refused:
            raise BoundsRefused(f"cost not usable in {self.target.market}: {refused}")
        return floor, ceiling

    def _cap(self, name: str, price: Money) -> Decimal | None:
        """The most one write may move ``price`` (``max_step_down`` or ``max_step_up``); None
        when there is no cap. A cap with no amount in this currency allows no move."""
        rules = self.params.rules
        cap = getattr(rules, name, None) if rules is not None else None
        if cap is None:
            return None
        amount = cap.amount(price)
        return amount if amount is not None else Decimal(0)

    def _capped_dip(self, dip: Money) -> Money | None:
        """The price a dip to ``dip`` may write under ``max_step_down``, when the cap stops it
        short of ``dip`` (rounded up to the currency's tick: never more than the cap); None when
        the cap allows the whole dip."""
        assert self.price is not None and self.bounds is not None
        cap = self._cap("max_step_down", self.price)
        if cap is None or self.price.amount - dip.amount <= cap:
            return None
        capped = self.price.with_amount(self.price.amount - cap, rounding=ROUND_CEILING)
        # Above a ceiling lowered since by more than the cap: no allowed price within reach.
        return capped if capped <= self.bounds.ceiling else self.price

    def _up_to(self, target: Money) -> Money:
        """``target`` lowered, on the grid, to what ``max_step_up`` allows from our price."""
        assert self.price is not None
        cap = self._cap("max_step_up", self.price)
        if cap is None or target.amount - self.price.amount <= cap:
            return target
        return max(self.price, self._on_grid(self.price.with_amount(self.price.amount + cap)))

    def _capped_text(self, start: Money, dip: Money, capped: Money) -> str:
        rules = self.params.rules
        return (f"capped dip: max_step_down {rules.max_step_down.text} allows {start} -> {capped}, "
                f"short of the dip to {dip} that would win the Backbox; not winning (the next run "
                "goes on from here)")

    def _own_winner(self, listing: Any, competitor: Any) -> Generator[Action, Any, str | None]:
        """Which of our other listings on the same product holds this market's Backbox at the
        winner price (by their competitors records), or None. Our products come from the listing
        pages (read once per market and run, unless ``--all`` read them already); a sibling's
        record not read in the last ``SIGHTING_MAX_AGE`` seconds is read now."""
        own = self.hooks.own
        product = competitor.product_id or getattr(listing, "product_id", None)
        if own is None or not product or competitor.winner_price is None:
            return None
        market = self.target.market
        if market not in own.loaded:
            yield from self._read_own_listings(own, market)
        for other in own.siblings(self.target.listing_id, product):
            if self.hooks.now() - own.read_at.get(other, float("-inf")) > SIGHTING_MAX_AGE:
                request = self.client.build_competitors(other, market=market)
                parse = self.client.parse_competitors
                call = yield Send(request, Priority.NORMAL, accept=parse)
                try:
                    own.saw_records(self._parsed(request, call, parse), self.hooks.now())
                except ItemError:
                    continue  # gone, or not ours: it wins nothing here
        return own.winner(self.target.listing_id, product, market, competitor.winner_price)

    def _read_own_listings(self, own: Any, market: str) -> Generator[Action, Any, None]:
        """Read the listing pages of ``market`` (listings with stock) for our products; a probe
        that finds another one reading them waits for it."""
        if market in own.loading:
            while market in own.loading:
                yield Wait(0.25)
            return
        own.loading.add(market)
        try:
            page, seen = 1, set()
            while True:
                request = self.client.build_listings_page(page, market=market, min_quantity=1)
                parse = self.client.parse_listings_page
                call = yield Send(request, Priority.NORMAL, accept=parse)
                try:
                    found = self._parsed(request, call, parse)
                except ItemError:
                    return  # no products known: nothing to protect but what the run read
                for item in found.results:
                    own.saw_listing(item)
                seen.add(page)
                following = next_page_number(found.next, page)  # never the link itself: its host
                if not found.results or following is None or following in seen:
                    return
                page = following
        finally:
            own.loading.discard(market)
            own.loaded.add(market)

    def _discover(self) -> Generator[Action, Any, Any]:
        """Read the listing's competitors once, become the probe of one market it competes in
        and leave the others in ``spawned``; None (outcome ``skipped``) when it competes in none."""
        target = self.target
        records = yield from self._read_competitors(Priority.NORMAL)
        by_market: dict[str, Any] = {}
        for record in records:
            if record.market in target.discover:  # a token serves one platform's markets
                by_market.setdefault(record.market, record)
        if not by_market:
            self.result.outcome = "skipped"
            self.result.reason = "the listing competes in none of the markets probed"
            return None
        # A market the price-war cooldown holds is taken last: its probe sends nothing more.
        free = [m for m in by_market if self.hooks.hold(replace(target, market=m, discover=())) is None]
        market = target.market if target.market in (free or by_market) else next(iter(free or by_market))
        seen_at = self.hooks.now()
        self.spawned = [
            replace(target, market=other, discover=(), seen=Sighting(record, self.snapshot, seen_at))
            for other, record in by_market.items() if other != market
        ]
        self.target = replace(target, market=market, discover=())
        self.currency = get_market(market).currency
        self.result.market, self.result.currency = market, self.currency
        return by_market[market]

    def _held(self) -> bool:
        """Outcome ``held`` (the price-war cooldown's reason) when the cooldown holds the target."""
        why = self.hooks.hold(self.target)
        if why is None:
            return False
        self.result.outcome, self.result.reason = "held", why
        self.result.floor, self.result.ceiling = self.target.floor, self.target.ceiling
        return True

    def _raise_back(self, move: tuple[str, Money] | None) -> tuple[str, Money] | None:
        """A listing winning from the start is searched upwards only when its raise back is due
        (``raise_back_after``); the search that brings a price below the floor back is never held."""
        assert self.bounds is not None and self.price is not None
        if move is None or move[0] != "search" or self.result.dip_price is not None \
                or self.price < self.bounds.floor:
            return move
        wait = self.hooks.raise_back_wait(self.target)
        if wait is not None:
            self.result.reason = f"already winning at {self.price}; {wait}"
            return None
        self.raising_back = True
        return move

    def _plan(self, competitor: Any) -> None:
        """``--dry-run``: what the probe would try, decided from the reads by the same rules as
        the real run, and no write. What reads alone settle (``unwinnable``, ``lost``, the
        breaker's ``skipped``, ``kept``: nothing to try) is reported as such; the rest is
        ``planned``, with no final price: only the real run's peeks can tell it."""
        assert self.bounds is not None and self.price is not None
        result, start = self.result, self.price
        steps: list[str] = []
        if competitor.is_winning:
            steps.append(f"winning at {start}")
            move = self._raise_back(self._peak_move(competitor.price_to_win))
        else:
            to_win = competitor.price_to_win
            dip = self._dip_price(competitor)
            if dip is None:
                return
            if self.capped_from is not None:
                if dip >= start:
                    result.outcome = "capped"
                    result.reason = (f"capped dip: max_step_down allows no move from {start} to an "
                                     f"allowed price; the dip to {self.capped_from} would win the Backbox")
                    return
                result.dip_price = dip
                result.planned.append(f"capped dip {start} -> {dip}: max_step_down stops it short of "
                                      f"{self.capped_from}, which would win; kept, no peak")
                result.outcome, result.final_price = "planned", None
                result.reason = "plan: " + self._capped_text(start, self.capped_from, dip)
                return
            result.dip_price = dip
            result.planned.append(f"dip {start} -> {dip}: to win the Backbox (restored if it does not)")
            steps.append(f"not winning at {start}: dip to {dip} (price to win {to_win}), confirmed "
                         f"by a peek, {start} back if it does not win")
            # What the peek after the dip would show: a market that reveals headroom shows the
            # price to win read now (exact while we lose); one that hides it shows our price.
            mode = self.params.headroom
            shown = to_win if mode == "revealed" or (mode == "auto" and self.hooks.headroom_revealed()) else dip
            self.price = dip
            move = self._peak_move(shown)
        if move is None and not result.planned:
            # Nothing to try: the real run would not write either.
            result.outcome = "kept"
            result.reason = result.reason or f"already winning at {start}"
            return
        if move is None:
            why = ("it is the ceiling" if self.price >= self.bounds.ceiling
                   else "--max-raises is 0" if self.params.max_raises <= 0 and self._may_search()
                   else "one step higher loses")
            steps.append(f"then no raise: {why}")
        elif move[0] == "headroom":
            result.planned.append(f"raise {self.price} -> {move[1]}: the headroom the price to win "
                                  "shows (undone if it loses)")
            steps.append(f"then raise to {move[1]}, the headroom the price to win shows, confirmed "
                         "by a peek and undone at once if it loses")
        else:
            result.planned.append(f"raise {self.price} -> {move[1]}: search upwards from the top of "
                                  "the range (undone if it loses)")
            steps.append(f"then search upwards between {self.price} and {move[1]}: {move[1]} first, "
                         f"at most {self.params.max_raises} raise(s), each confirmed by a peek, a "
                         "raise that loses undone at once")
        self.price = start  # nothing was written
        result.outcome = "planned"
        result.final_price = None
        result.reason = "plan: " + "; ".join(steps)

    def _dip_price(self, competitor: Any) -> Money | None:
        """The dip the market asks for: max(floor, price_to_win) on the grid; None, with the
        outcome set, when no dip may be sent (unwinnable, lost, held back by the breaker)."""
        assert self.bounds is not None and self.price is not None
        result = self.result
        to_win = competitor.price_to_win
        if to_win is None or to_win < self.bounds.floor:
            result.outcome = "unwinnable"
            result.reason = (
                f"price to win {to_win} is below the floor {self.bounds.floor}"
                if to_win is not None else "the market gives no price to win"
            )
            return None
        dip = self._on_grid(min(max(self.bounds.floor, to_win), self.bounds.ceiling))
        if dip == to_win:
            # price_to_win is the highest winning price: one tick above it loses.
            self.known_losing = dip.with_amount(dip.amount + self._step())
        if dip >= self.price:
            # Not winning at or below the price to win: a raise cannot help, a write would
            # change nothing the Backbox rewards.
            result.outcome = "lost"
            result.reason = f"not winning although the price {self.price} is at or below the price to win {to_win}"
            return None
        capped = self._capped_dip(dip)
        if capped is not None:
            # max_step_down stops the dip short of winning: the capped move is the dip. It is
            # above the floor (the breaker does not count it) and cannot win, so no peek or peak.
            self.capped_from = dip
            return capped
        if dip == self.bounds.floor and not self.hooks.floor_hit(self.target):
            result.outcome = "skipped"
            result.reason = "circuit breaker: too many listings of this run would go to their floor"
            return None
        return dip

    def _dip(self, competitor: Any) -> Generator[Action, Any, bool]:
        """Dip to max(floor, price_to_win); True when the Backbox is ours afterwards."""
        assert self.bounds is not None and self.price is not None
        result = self.result
        dip = self._dip_price(competitor)
        if dip is None:
            return False
        if self.capped_from is not None:
            yield from self._capped(dip)
            return False
        self.probe_id = self.hooks.open_probe(self.target, self.price, self.bounds)
        self.dip_open = True  # from the moment the dip may have landed
        yield from self._write(dip, "dip", Priority.HIGH, reserve_exit=True)
        # max_dip counts from the answer: the write may wait long in the queue for its token
        # (and its exit's), and until it is sent the listing is not dipped.
        self.dip_started = self.hooks.now()
        result.dip_price = dip
        competitor = yield from self._peek_until_reflected(dip)
        if competitor is None or not competitor.is_winning:
            yield from self._restore("restore", "the Backbox did not follow the dip")
            result.outcome = "lost"
            result.reason = (
                f"not winning at {dip} after the dip; original price restored"
                if competitor is not None else "the Backbox never reflected the dip; original price restored"
            )
            return False
        self.confirmed = competitor
        return True

    def _capped(self, capped: Money) -> Generator[Action, Any, None]:
        """A capped dip: one write down by at most ``max_step_down``, kept (not undone: the
        next run goes on from it); outcome ``capped``."""
        assert self.price is not None and self.bounds is not None and self.capped_from is not None
        result = self.result
        result.outcome = "capped"
        if capped >= self.price and self.params.rules.max_step_down.amount(self.price) is None:
            result.reason = (f"capped dip: max_step_down {self.params.rules.max_step_down.text} gives no "
                             f"amount in {self.currency}, so it allows no move; the dip to "
                             f"{self.capped_from} would win the Backbox")
            return
        if capped >= self.price:
            result.reason = (f"capped dip: max_step_down {self.params.rules.max_step_down.text} allows no "
                             f"move from {self.price} to an allowed price ({self.bounds.floor} to "
                             f"{self.bounds.ceiling}); the dip to {self.capped_from} would win the Backbox")
            return
        # Journalled like any dip: a run killed before its answer puts the original price back.
        start = self.price
        self.probe_id = self.hooks.open_probe(self.target, start, self.bounds)
        yield from self._write(capped, "dip", Priority.HIGH)
        result.dip_price = capped
        result.reason = self._capped_text(start, self.capped_from, capped)

    def _peak_move(self, to_win: Money | None) -> tuple[str, Money] | None:
        """What the peak tries from our winning price, given the price to win the market shows:
        ``("headroom", price)``, one raise; ``("search", top)``, the upward search from its top;
        None, nothing (``result.reason`` then says why, when it is not plain)."""
        assert self.bounds is not None and self.price is not None
        result = self.result
        ceiling = self.bounds.ceiling
        if to_win is not None and to_win > self.price:
            uncapped = self._on_grid(min(ceiling, to_win))
            target = self._up_to(uncapped)
            if uncapped < self.bounds.floor:
                # Winning below a floor raised since, and every allowed price loses: keep it.
                result.reason = (f"winning at {self.price}; the price to win {to_win} is below "
                                 f"the floor {self.bounds.floor}")
                return None
            if target < self.bounds.floor:
                result.reason = (f"winning at {self.price}, below the floor {self.bounds.floor}; "
                                 f"max_step_up allows no more than {target} in one write")
                return None
            return ("headroom", target) if target > self.price else None
        if to_win is not None and to_win < self.price:
            return None  # revealed: we hold on a tie, above the outright price; a raise would lose it
        if self.price < self.bounds.floor and not self._may_search():
            # Winning below a floor raised since, and the market has shown every allowed price
            # loses (revealed headroom, or one tick above is known to lose): keep the Backbox.
            result.reason = f"winning at {self.price}, below the floor {self.bounds.floor}; every allowed price loses"
            return None
        if (self._may_search() or self.price < self.bounds.floor) and self.price < ceiling \
                and self.params.max_raises > 0:
            # Below the floor the search is what brings the price back into the allowed range.
            top = self._up_to(self._search_top(ceiling))
            if top < self.bounds.floor:
                result.reason = (f"winning at {self.price}, below the floor {self.bounds.floor}; "
                                 f"max_step_up allows no more than {top} in one write")
                return None
            return ("search", top) if top > self.price else None
        return None

    def _peak(self, competitor: Any) -> Generator[Action, Any, None]:
        """Raise to the highest price that still wins, never above the ceiling."""
        assert self.bounds is not None and self.price is not None
        result = self.result
        move = self._raise_back(self._peak_move(competitor.price_to_win))
        if move is not None:
            kind, target = move
            if kind == "headroom":
                yield from self._raise_to(target)
            else:
                yield from self._search_up(target)
        self.dip_open = False  # confirmed winning at the dip price, or a raise ended it
        if self.lost_backbox:
            yield from self._restore("restore", "the Backbox was lost during the peak")
            floor, to_win = self.bounds.floor, self.lost_to_win
            if result.start_price is not None and result.start_price < floor and to_win is not None \
                    and to_win < floor:
                # Started below a floor raised since: the search brought the price back into the
                # allowed range and found that no allowed price wins.
                result.outcome = "unwinnable"
                result.reason = (f"price to win {to_win} is below the floor {floor}; the price "
                                 f"({result.start_price} was below the floor) is now {self.price}")
                return
            result.outcome = "lost"
            result.reason = (f"the Backbox was lost during the upward search and could not be won "
                             f"back; price restored to {self.price}")
            return
        final = self.price
        changed = final != result.start_price
        result.outcome = "won" if changed else "kept"
        if self.raising_back and not result.reason and result.start_price is not None:
            if final > result.start_price:
                result.reason = f"raised back from {result.start_price} to {final}"
            elif final == result.start_price:
                result.reason = f"raise back: nothing above {final} wins"
        if not result.reason:
            result.reason = f"winning at {final}" if changed else f"already winning at {final}"

    def _may_search(self) -> bool:
        """Search upwards only when price_to_win may be hiding headroom: after a dip to the
        exact price to win there is none, and a market seen revealing it hides none."""
        price = self.price
        if price is not None and self.known_losing is not None and self.known_losing <= price.with_amount(
            price.amount + self._step()
        ):
            return False
        mode = self.params.headroom
        if mode == "revealed":
            return False
        return mode == "hidden" or not self.hooks.headroom_revealed()

    def _search_top(self, ceiling: Money) -> Money:
        """The top of the upward search: the ceiling, or one step below a price known to lose."""
        if self.known_losing is not None and self.known_losing <= ceiling:
            return self._on_grid(ceiling.with_amount(self.known_losing.amount - self._step()))
        return ceiling

    def _search_up(self, high: Money) -> Generator[Action, Any, None]:
        """Headroom not revealed: bisect upwards on the step grid up to ``high``, at most
        ``max_raises`` writes; the top is tried first, and a raise that loses is undone at once."""
        assert self.price is not None
        low = self.price
        raises = 0
        candidate = high
        while raises < self.params.max_raises and candidate > low:
            raises += 1
            won = yield from self._raise_to(candidate)
            if not won:
                return
            low = candidate
            candidate = self._on_grid(low.with_amount((low.amount + high.amount) / 2))
            if candidate <= low:
                return

    def _raise_to(self, target: Money) -> Generator[Action, Any, bool]:
        """Write a higher price, confirm by a peek; undo at once (CRITICAL) if it loses."""
        assert self.price is not None and self.bounds is not None
        previous = self.price
        if self.probe_id is None:
            self.probe_id = self.hooks.open_probe(self.target, previous, self.bounds)
        # The first raise after a dip ends it: CRITICAL, on the slot claimed for it. Every
        # raise claims the slot of its own undo.
        priority = Priority.CRITICAL if self.dip_open else Priority.HIGH
        yield from self._write(target, "peak", priority, use_reservation=True, reserve_exit=True)
        self.dip_open = False
        competitor = yield from self._peek_until_reflected(target)
        if competitor is not None and competitor.is_winning:
            return True
        # Lost at the raised price: go back to the best price known to win. While we are not
        # winning, price_to_win is exact; it never goes below the last winning price.
        fallback = self.bounds.clamp(previous)
        if competitor is not None and competitor.price_to_win is not None:
            known = self._on_grid(min(competitor.price_to_win, target))
            if previous < known < target:
                fallback = self.bounds.clamp(known)
        yield from self._write(fallback, "undo", Priority.CRITICAL, use_reservation=True)
        # Confirm: the previous price may have held the Backbox only on a tie that the raise gave
        # away, or the market may have moved.
        confirm = yield from self._peek_until_reflected(fallback)
        if confirm is not None and confirm.is_winning:
            return False
        back = self.bounds.clamp(previous)
        if fallback != back:
            yield from self._write(back, "undo", Priority.CRITICAL)
            confirm = yield from self._peek_until_reflected(back)
            if confirm is not None and confirm.is_winning:
                return False
        # Not winning where we were: one write to the exact price to win, if the floor allows.
        to_win = confirm.price_to_win if confirm is not None else None
        if to_win is not None and self.price is not None:
            regain = self._on_grid(min(to_win, self.bounds.ceiling))
            down_cap = self._cap("max_step_down", self.price)
            if self.bounds.floor <= regain < self.price and (
                    down_cap is None or self.price.amount - regain.amount <= down_cap) and (
                    regain != self.bounds.floor or self.hooks.floor_hit(self.target)):
                yield from self._write(regain, "undo", Priority.CRITICAL)
                confirm = yield from self._peek_until_reflected(regain)
                if confirm is not None and confirm.is_winning:
                    return False
        self.lost_backbox = True
        self.lost_to_win = to_win
        return False

    # --- building blocks -------------------------------------------------------------------

    def _read_listing(self, priority: Priority) -> Generator[Action, Any, Any]:
        request = self.client.build_get_listing(self.target.listing_id, market=self.target.market)
        parse = self.client.parse_listing
        call = yield Send(request, priority, accept=parse)
        listing = self._parsed(request, call, parse)
        own = self.hooks.own
        if own is not None:
            own.saw_listing(listing)
        return listing

    def _read_competitor(self, priority: Priority) -> Generator[Action, Any, Any]:
        records = yield from self._read_competitors(priority)
        return next((c for c in records if c.market == self.target.market), None)

    def _read_competitors(self, priority: Priority) -> Generator[Action, Any, Any]:
        """Every market's record of the listing (one read answers them all)."""
        request = self.client.build_competitors(self.target.listing_id, market=self.target.market)
        parse = self.client.parse_competitors
        call = yield Send(request, priority, accept=parse)
        records = self._parsed(request, call, parse)
        for record in records:
            if record.is_winning and record.price_to_win is not None and record.price_to_win != record.price:
                self.hooks.saw_revealed_headroom()
        self.snapshot = [c.to_json() for c in records] if records else None
        own = self.hooks.own
        if own is not None:
            own.saw_records(records, self.hooks.now())
        return records

    def _peek_until_reflected(self, price: Money) -> Generator[Action, Any, Any]:
        """After ``settle``, read competitors until the Backbox shows our price (bounded)."""
        for attempt in range(max(1, self.params.peek_retries)):
            wait = self.params.settle if attempt == 0 else max(self.params.settle / 2, 0.5)
            if self.dip_open and self.dip_started is not None:
                # Never sleep past max_dip: wake up at it and restore.
                left = self.dip_started + self.params.max_dip - self.hooks.now()
                wait = min(wait, max(0.0, left) + 1e-6)
            yield Wait(wait)
            self._check_dip_age()
            competitor = yield from self._read_competitor(Priority.HIGH)
            self._check_dip_age()
            if competitor is not None and competitor.price == price:
                return competitor
        return None

    def _answer(self, request: HttpRequest, call: Any) -> Any:
        """The HTTP answer of a finished call; a call that never got one raises its error (an
        ItemError, or HostUnreachable, which stops the run)."""
        if call.error is not None:
            raise self.parse_error(request, call.error)
        return call.response

    def _parsed(self, request: HttpRequest, call: Any, parse: Callable[[HttpRequest, Any], Any]) -> Any:
        """What ``parse`` makes of a read's answer: the value the controller's check kept (parsed
        once), else the parse of the final answer (an error answer raises its error)."""
        if call.error is None and getattr(call, "accepted", False):
            return call.value
        return parse(request, self._answer(request, call))

    def _write(self, price: Money, reason: str, priority: Priority, *, reserve_exit: bool = False,
               use_reservation: bool = False) -> Generator[Action, Any, Any]:
        """One guarded price write, journalled before it is sent and recorded after.

        ``use_reservation`` sends on the slot the previous write claimed (if any);
        ``reserve_exit`` reserves one for the next, kept in ``self.reservation`` even when this
        write fails (the batch releases what the probe does not use)."""
        if self.bounds is None:
            raise RuntimeError("a probe writes only after its bounds are known")
        self.bounds.check(price)
        if self.price is not None and price == self.price and not self.price_uncertain:
            return None  # a write that would not change the price is not sent
        reservation = None
        if use_reservation:
            reservation, self.reservation = self.reservation, None
        if reserve_exit and self.reservation is not None:
            reserve_exit = False  # one claim at a time is enough for one probe
        request = self.client.build_update_listing(self.target.listing_id, market=self.target.market,
                                                   price=price)
        old = self.price
        if self.probe_id is not None:
            self.hooks.step(self.probe_id, state=f"writing-{reason}")
        self.writing = (request, price, reason, old)
        call = yield Send(request, priority, reserve_exit=reserve_exit, reservation=reservation)
        self.writing = None
        if call.reservation is not None:
            self.reservation = call.reservation
        try:
            update = self.client.parse_update(request, self._answer(request, call))
        except BmctlError:
            self.price_uncertain = True
            self.hooks.change(self.probe_id, self.target, old, price, reason, self.snapshot, None, "error")
            raise
        self.price_uncertain = False
        self.result.writes += 1
        self.price = self.result.final_price = price
        self.price_log.append((self.hooks.now(), price))
        self.hooks.change(self.probe_id, self.target, old, price, reason, self.snapshot,
                          getattr(update, "request_id", None), "updated")
        if self.probe_id is not None:
            self.hooks.step(self.probe_id, state=reason, current_price=price, writes=self.result.writes,
                            **({"dip_price": price} if reason == "dip" else {}))
        return call

    def abandoned_write(self) -> None:
        """Record in history the write this probe was waiting on when its run stopped (the
        batch abandoned it, but the request may have gone out and its answer come in while the
        run drained the wire): ``updated`` when it was answered 2xx, ``error`` when it left and
        no clean answer says what became of it; nothing when it never left the queue."""
        if self.writing is None or self.call is None or not getattr(self.call, "attempts", 0):
            return
        request, price, reason, old = self.writing
        self.writing = None
        response = self.call.response
        if response is not None and 200 <= response.status < 300:
            try:
                request_id = getattr(self.client.parse_update(request, response), "request_id", None)
            except BmctlError:
                request_id = None
            self.price = price
            self.hooks.change(self.probe_id, self.target, old, price, reason, self.snapshot,
                              request_id, "updated")
            if self.probe_id is not None:
                self.hooks.step(self.probe_id, current_price=price)
        else:
            self.hooks.change(self.probe_id, self.target, old, price, reason, self.snapshot, None, "error")

    def _restore(self, reason: str, why: str) -> Generator[Action, Any, None]:
        """Put the original price back (within the bounds), CRITICAL, on the claimed slot."""
        if self.original is None or self.price is None or self.bounds is None:
            return
        back = self.bounds.clamp(self.original)
        if self.price == back and not self.price_uncertain:
            return
        if self.price == back:
            self.price = None  # unknown after a failed write: force the idempotent rewrite
        self.dip_open = False
        yield from self._write(back, reason, Priority.CRITICAL, use_reservation=True)

    def _restore_after_failure(self) -> Generator[Action, Any, None]:
        """After an error mid-probe: restore the original price if it may have changed."""
        try:
            yield from self._restore("restore", self.result.reason)
        except BmctlError as error:
            # The journal keeps the probe open: `bmctl recover` or the next run restores it.
            self.result.reason += f"; restore failed: {error.message} (the journal keeps it for recovery)"
            self.keep_open = True

    def _check_dip_age(self) -> None:
        if not self.dip_open or self.dip_started is None:
            return
        if self.hooks.now() - self.dip_started > self.params.max_dip:
            raise DipExpired(f"the dip outlived max_dip ({self.params.max_dip:g} s); original price restored")

    def _on_grid(self, price: Money) -> Money:
        """Round down onto the probe's step grid (never up: the grid must not cross a bound),
        but never below the floor when ``price`` is at or above it: the floor itself is always
        an allowed price, and rounding a winning price down keeps it winning."""
        step = self._step()
        amount = (price.amount / step).to_integral_value(rounding=ROUND_DOWN) * step
        on_grid = price.with_amount(amount)
        if self.bounds is not None and on_grid < self.bounds.floor <= price:
            return self.bounds.floor
        return on_grid

    def _step(self) -> Decimal:
        from bmctl.pricing.guardrails import parse_step

        return parse_step(self.params.step, self.currency)

    def _finish(self) -> "ProbeResult":
        result = self.result
        if result.final_price is not None and self.price_log:
            result.dip_seconds = dip_window(self.price_log, result.final_price, self.hooks.now())
        return result



def dip_window(writes: list[tuple[float, Money]], final: Money, end: float) -> float:
    """Seconds spent below the final price, from the first write to the end of the probe."""
    total = 0.0
    for index, (at, price) in enumerate(writes):
        until = writes[index + 1][0] if index + 1 < len(writes) else end
        if price < final:
            total += max(0.0, until - at)
    return total
