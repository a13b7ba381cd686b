"""``update-price``: set prices behind the max-change guard, recorded in history; several
orders under way at once when the wire carries several requests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Generator, Iterable

from bmctl.api.money import Money, money_text
from bmctl.errors import BmctlError, RunStopped
from bmctl.pricing.guardrails import change_pct
from bmctl.pricing.journal import Journal
from bmctl.pricing.targets import PriceOrder
from bmctl.traffic.queue import Priority
from bmctl.traffic.transport import HttpRequest, HttpResponse

#: What an order's steps yield: a request, its priority, and the parser a read's answer must pass.
Step = tuple[HttpRequest, Priority, Callable[[HttpRequest, HttpResponse], Any] | None]

#: A new price more than this many times the current one (or under its 1/ABSURD_FACTOR) is
#: refused whatever the switches: a typo, not a price.
ABSURD_FACTOR = 100


@dataclass
class UpdateOutcome:
    """The result of one price order; ``to_json`` gives the contract's fields."""

    listing_id: str
    market: str
    currency: str
    new_price: Money
    old_price: Money | None = None
    status: str = "error"
    reason: str = ""
    request_id: str | None = None
    exit_code: int = 0  # of a failure: 4 when rate limits refused it, else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "listing_id": self.listing_id,
            "market": self.market,
            "currency": self.currency,
            "old_price": money_text(self.old_price),
            "new_price": self.new_price.to_api(),
            "status": self.status,
            "reason": self.reason,
        }


def apply_price_orders(
    client: Any,
    journal: Journal | None,
    orders: Iterable[PriceOrder],
    *,
    max_change_pct: float,
    force: bool = False,
    allow_big_change: bool = False,
    allow_above_max: bool = False,
    dry_run: bool = False,
    on_result: Callable[[UpdateOutcome], None] | None = None,
    controller: Any = None,
    window: int = 1,
) -> list[UpdateOutcome]:
    """Read each listing's current price first, refuse changes beyond ``max_change_pct``
    without ``allow_big_change``, prices above ``max_price`` without ``allow_above_max`` and a
    ``min_price`` above the new price without both, then write and record the change. ``force``
    (the old spelling) is both switches. A new price more than ``ABSURD_FACTOR`` times the
    current one, or below 1/``ABSURD_FACTOR`` of it, is refused whatever the switches.

    With a ``controller``, up to ``window`` orders are under way at once (their reads and
    writes share the wire); results still come out in the orders' order, each as soon as it
    and every order before it is done."""
    orders = list(orders)
    outcomes = [UpdateOutcome(o.listing_id, o.market, o.price.currency, o.price) for o in orders]
    max_pct = Decimal(str(max_change_pct))
    guard = Guard(max_pct, allow_big_change=force or allow_big_change,
                  allow_above_max=force or allow_above_max)

    def steps(index: int) -> Generator[Step, Any, None]:
        return _order_steps(client, journal, orders[index], outcomes[index], guard, dry_run)

    if controller is None or window <= 1:
        for index in range(len(orders)):
            _run_blocking(client, steps(index), outcomes[index])
            if on_result is not None:
                on_result(outcomes[index])
        return outcomes
    _run_pipelined(controller, steps, outcomes, window, on_result)
    return outcomes


def _fail(outcome: UpdateOutcome, error: BmctlError) -> None:
    outcome.status = "error"
    outcome.reason = error.message
    outcome.exit_code = int(error.exit_code)


def _run_blocking(client: Any, steps: Generator[Step, Any, None], outcome: UpdateOutcome) -> None:
    """One order, each request sent and answered before the next."""
    call = None
    try:
        while True:
            request, priority, accept = steps.send(call)
            call = _Answered(client.send(request, priority, accept=accept))
    except StopIteration:
        return
    except RunStopped:  # a 401, the WAF, the host down: the remaining orders would meet it too
        raise
    except BmctlError as error:
        _fail(outcome, error)


def _run_pipelined(controller: Any, steps: Callable[[int], Any], outcomes: list[UpdateOutcome],
                   window: int, on_result: Callable[[UpdateOutcome], None] | None) -> None:
    total = len(outcomes)
    done = [False] * total
    state = {"next": 0, "emitted": 0, "under_way": 0}

    def fill() -> None:
        while state["under_way"] < window and state["next"] < total:
            index = state["next"]
            state["next"] += 1
            state["under_way"] += 1
            advance(index, steps(index), None)

    def advance(index: int, order_steps: Any, call: Any) -> None:
        try:
            request, priority, accept = order_steps.send(call)
        except StopIteration:
            finish(index)
            return
        except RunStopped:
            raise
        except BmctlError as error:
            _fail(outcomes[index], error)
            finish(index)
            return
        controller.submit(request, priority, accept=accept,
                          on_done=lambda c: advance(index, order_steps, c))

    def finish(index: int) -> None:
        done[index] = True
        state["under_way"] -= 1
        while state["emitted"] < total and done[state["emitted"]]:
            if on_result is not None:
                on_result(outcomes[state["emitted"]])
            state["emitted"] += 1
        fill()

    fill()
    controller.run(until=lambda: state["emitted"] == total)


class _Answered:
    """A blocking answer in the shape of a finished call (``response``, no ``error``)."""

    __slots__ = ("response", "error")

    def __init__(self, response: HttpResponse) -> None:
        self.response = response
        self.error = None


def _answer(request: HttpRequest, call: Any) -> HttpResponse:
    """The HTTP answer of a finished call; no answer at all is a NetworkError."""
    if call.error is not None:
        from bmctl.api.errors import error_from_transport

        raise error_from_transport(request, call.error)
    return call.response  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Guard:
    """What update-price refuses: ``max_pct`` unless ``allow_big_change``, above ``max_price``
    unless ``allow_above_max``, a ``min_price`` above the new price unless both."""

    max_pct: Decimal
    allow_big_change: bool = False
    allow_above_max: bool = False


def _absurd(old: Money, new: Money) -> bool:
    """More than ABSURD_FACTOR times the current price, or under 1/ABSURD_FACTOR of it: a
    misplaced decimal point, whichever way (exactly 100x is allowed)."""
    if old.amount <= 0:
        return False
    return new.amount > old.amount * ABSURD_FACTOR or new.amount * ABSURD_FACTOR < old.amount


def _order_steps(client: Any, journal: Journal | None, order: PriceOrder, outcome: UpdateOutcome,
                 guard: Guard,
                 dry_run: bool) -> Generator[Step, Any, None]:
    """One order as the requests it makes (yielded with their priority and, for the read, the
    parser its answer must pass; answered by the finished call): the read, the checks, and the
    write with its history row."""
    from bmctl.api.client import answer_of

    request = client.build_get_listing(order.listing_id, order.market)
    call = yield request, Priority.NORMAL, client.parse_listing
    listing = answer_of(request, call, client.parse_listing)
    old = outcome.old_price = listing.price
    same_min = order.min_price is None or order.min_price == listing.min_price
    if old == order.price and same_min:
        outcome.status, outcome.reason = "unchanged", f"already at {old}"
        return
    if old is not None and old.currency != order.price.currency:
        outcome.status = "refused"
        outcome.reason = f"the listing is priced in {old.currency}, not {order.price.currency}"
        return
    if old is not None and _absurd(old, order.price):
        outcome.status = "refused"
        outcome.reason = (
            f"{order.price} is more than {ABSURD_FACTOR}x away from the current {old}:"
            " a misplaced decimal point? (refused whatever the switches)"
        )
        return
    max_pct = guard.max_pct
    if old is not None and not guard.allow_big_change:
        pct = change_pct(old, order.price)  # rounded to 0.01, for the message only
        if abs(order.price.amount - old.amount) * 100 > max_pct * old.amount:
            outcome.status = "refused"
            size = f"{pct}%" if pct > max_pct else f"just over {_pct(max_pct)}%"  # 30.004 shows as 30.00
            outcome.reason = (
                f"change of {size} from {old} exceeds max_change_pct {_pct(max_pct)}% (use --allow-big-change)"
            )
            return
    if listing.max_price is not None and order.price > listing.max_price and not guard.allow_above_max:
        outcome.status = "refused"
        outcome.reason = f"above max_price {listing.max_price}: the listing would go offline (use --allow-above-max)"
        return
    if order.min_price is not None and order.min_price > order.price and not (
        guard.allow_big_change and guard.allow_above_max
    ):
        outcome.status = "refused"
        outcome.reason = f"min_price {order.min_price} is above the price {order.price} (use --force)"
        return
    if dry_run:
        outcome.status = "dry-run"
        outcome.reason = f"would set {old} -> {order.price}" + (
            f" and min_price {order.min_price}" if order.min_price is not None else ""
        )
        return
    snapshot = {"min_price": order.min_price.to_api()} if order.min_price else None
    request = client.build_update_listing(order.listing_id, market=order.market, price=order.price,
                                          min_price=order.min_price)
    call = yield request, Priority.NORMAL, None  # a write: a 2xx was applied, never asked again
    try:
        update = client.parse_update(request, _answer(request, call))
    except BmctlError:
        # A write with no clean answer (malformed, dropped, 5xx) may still have been applied:
        # history keeps the attempt, as it does for a probe's writes.
        if journal is not None:
            journal.record_change(listing_id=order.listing_id, market=order.market, old_price=old,
                                  new_price=order.price, reason="update", status="error",
                                  snapshot=snapshot)
        raise
    outcome.request_id = getattr(update, "request_id", None)
    outcome.status = "updated"
    outcome.reason = f"{old} -> {order.price}" if old is not None else f"set to {order.price}"
    if journal is not None:
        journal.record_change(listing_id=order.listing_id, market=order.market, old_price=old,
                              new_price=order.price, reason="update", status="updated",
                              request_id=outcome.request_id, snapshot=snapshot)


def _pct(value: Decimal) -> str:
    """30 for 30.0, 12.5 for 12.50: a percentage as a person writes it."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text
