"""Putting listings that a killed run left mid-probe back at their original price."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from bmctl.api.money import Money, money_text
from bmctl.errors import AuthError, BmctlError, HostUnreachable
from bmctl.pricing.guardrails import Bounds
from bmctl.pricing.journal import Journal, OpenProbe
from bmctl.traffic.queue import Priority


@dataclass
class Recovery:
    """What recovery did for one open probe."""

    probe: OpenProbe
    found_price: Money | None = None
    restored_price: Money | None = None
    status: str = "error"  # restored | unchanged | error
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "probe_id": self.probe.id,
            "run_id": self.probe.run_id,
            "listing_id": self.probe.listing_id,
            "market": self.probe.market,
            "currency": self.probe.currency,
            "original_price": self.probe.original_price.to_api(),
            "found_price": money_text(self.found_price),
            "restored_price": money_text(self.restored_price),
            "status": self.status,
            "reason": self.reason,
        }


def restore_price(probe: OpenProbe) -> Money:
    """The price to restore: the original one, kept inside the bounds the probe had."""
    original = probe.original_price
    bounds = Bounds(floor=probe.floor if probe.floor is not None else original,
                    ceiling=probe.ceiling if probe.ceiling is not None else original)
    return bounds.clamp(original) if bounds.floor <= bounds.ceiling else original


def recover(client: Any, journal: Journal, *, run_id: str | None = None) -> list[Recovery]:
    """Restore every open probe (of ``run_id`` only, when given) and close it in the journal.

    Each listing is read first (CRITICAL) so that nothing is written when it is already back.
    A probe that cannot be restored stays open for the next attempt. An authentication failure
    (401, the WAF) is raised once every probe was tried: a WAF block is often sporadic, and a
    listing left dipped costs more than one refused request per open probe. An unreachable host
    is raised at once: nothing can be restored while it is down."""
    done: list[Recovery] = []
    refused: AuthError | None = None
    for probe in journal.open_probes():
        if run_id is not None and probe.run_id != run_id:
            continue
        outcome = Recovery(probe)
        target = restore_price(probe)
        try:
            listing = client.get_listing(probe.listing_id, market=probe.market, priority=Priority.CRITICAL)
            outcome.found_price = listing.price
            if listing.price == target:
                outcome.status = "unchanged"
                outcome.reason = f"already at {target}"
            else:
                try:
                    update = client.update_listing(probe.listing_id, market=probe.market,
                                                   price=target, priority=Priority.CRITICAL)
                except BmctlError:
                    # The write may have landed (a malformed or lost answer): history keeps it.
                    journal.record_change(
                        listing_id=probe.listing_id, market=probe.market, old_price=listing.price,
                        new_price=target, reason="restore", status="error", probe_id=probe.id,
                    )
                    raise
                journal.record_change(
                    listing_id=probe.listing_id, market=probe.market, old_price=listing.price,
                    new_price=target, reason="restore", status="updated", probe_id=probe.id,
                    request_id=getattr(update, "request_id", None),
                )
                outcome.restored_price = target
                outcome.status = "restored"
                outcome.reason = f"restored {target} (found {listing.price})"
        except HostUnreachable:
            raise
        except BmctlError as error:
            if isinstance(error, AuthError) and refused is None:
                refused = error
            outcome.reason = f"could not restore: {error.message}; the probe stays open"
            done.append(outcome)
            continue
        journal.close(probe.id, {
            "outcome": "error",
            "reason": f"interrupted in run {probe.run_id}; {outcome.reason} by run {journal.run_id}",
            "final_price": target.to_api(),
            "writes": None,
        })
        done.append(outcome)
    if refused is not None:
        raise refused
    return done


def restore_seconds(buckets: Mapping[str, Any], count: int) -> float:
    """Seconds the limits need to let ``count`` restores through (a read and a write each,
    one after the other) from what the budget ledger holds now, a 429 pause included."""
    needs = {"global": 2 * count, "listing_writes": count}
    waits = [float(buckets[name].time_to_send(n)) for name, n in needs.items() if name in buckets]
    return max(waits, default=0.0)


def restored_text(done: Sequence[Recovery]) -> str:
    """One line saying how a restore went: how many are back, how many stay open."""
    back = sum(1 for item in done if item.status in ("restored", "unchanged"))
    left = len(done) - back
    text = f"restored {back} of {len(done)} listing(s) to their original price"
    if left:
        text += f"; {left} could not be and stay open for `bmctl recover`"
    return text
