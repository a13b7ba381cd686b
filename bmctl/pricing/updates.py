"""``update-price``: set prices one by one, behind the max-change guard, recorded in history."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable, Iterable

from bmctl.api.money import Money, money_text
from bmctl.errors import AuthError, BmctlError
from bmctl.pricing.guardrails import change_pct
from bmctl.pricing.journal import Journal
from bmctl.pricing.targets import PriceOrder
from bmctl.traffic.queue import Priority


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
    dry_run: bool = False,
    on_result: Callable[[UpdateOutcome], None] | None = None,
) -> list[UpdateOutcome]:
    """Read each listing's current price first, refuse changes beyond ``max_change_pct`` (and
    above ``max_price``) without ``force``, then write and record the change."""
    outcomes: list[UpdateOutcome] = []
    for order in orders:
        outcome = UpdateOutcome(order.listing_id, order.market, order.price.currency, order.price)
        try:
            _apply_one(client, journal, order, outcome, Decimal(str(max_change_pct)), force, dry_run)
        except AuthError:
            raise
        except BmctlError as error:
            outcome.status = "error"
            outcome.reason = error.message
            outcome.exit_code = int(error.exit_code)
        outcomes.append(outcome)
        if on_result is not None:
            on_result(outcome)
    return outcomes


def _apply_one(client: Any, journal: Journal | None, order: PriceOrder, outcome: UpdateOutcome,
               max_pct: Decimal, force: bool, dry_run: bool) -> None:
    listing = client.get_listing(order.listing_id, market=order.market, priority=Priority.NORMAL)
    old = outcome.old_price = listing.price
    same_min = order.min_price is None or order.min_price == listing.min_price
    if old == order.price and same_min:
        outcome.status, outcome.reason = "unchanged", f"already at {old}"
        return
    if old is not None and old.currency != order.price.currency:
        outcome.status = "refused"
        outcome.reason = f"the listing is priced in {old.currency}, not {order.price.currency}"
        return
    if old is not None and not force:
        pct = change_pct(old, order.price)  # rounded to 0.01, for the message only
        if abs(order.price.amount - old.amount) * 100 > max_pct * old.amount:
            outcome.status = "refused"
            size = f"{pct}%" if pct > max_pct else f"just over {_pct(max_pct)}%"  # 30.004 shows as 30.00
            outcome.reason = (
                f"change of {size} from {old} exceeds max_change_pct {_pct(max_pct)}% (use --force)"
            )
            return
    if listing.max_price is not None and order.price > listing.max_price and not force:
        outcome.status = "refused"
        outcome.reason = f"above max_price {listing.max_price}: the listing would go offline (use --force)"
        return
    if order.min_price is not None and order.min_price > order.price and not force:
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
    try:
        update = client.update_listing(order.listing_id, market=order.market, price=order.price,
                                       min_price=order.min_price, priority=Priority.NORMAL)
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
