"""``competitors`` and ``listings``: read-only views of the market."""

from __future__ import annotations

from bmctl.commands.run import CommandContext, Outcome

COMPETITOR_FIELDS = [
    "listing_id", "market", "currency", "price", "min_price", "price_to_win", "winner_price", "is_winning",
]


def competitors(ctx: CommandContext, listing_ids: list[str]) -> Outcome:
    """The Backbox of each listing in every market it competes in; a listing that cannot be
    read gets a row with its ``error`` and counts as a failed item."""
    from bmctl.errors import BmctlError, RunStopped

    outcome = Outcome()
    market = ctx.settings.market
    client = ctx.runtime.client
    for listing_id in listing_ids:
        try:
            records = client.competitors(listing_id, market=market)
        except RunStopped:  # a 401, the WAF, the host down: every other id would meet it too
            raise
        except BmctlError as error:
            outcome.failures.append(int(error.exit_code))
            ctx.warn(f"bmctl: {listing_id}: {error.message}")
            ctx.emit({**dict.fromkeys(COMPETITOR_FIELDS), "listing_id": listing_id, "market": market,
                      "error": error.message})
            continue
        if not records:
            ctx.info(f"bmctl: {listing_id}: not competing in any Backbox "
                     "(offline, out of stock or above max_price)")
        for record in records:
            data = record.to_json()
            ctx.emit({key: data.get(key) for key in COMPETITOR_FIELDS})
    return outcome


def listings(ctx: CommandContext, *, min_quantity: int | None = None, publication_state: int | None = None,
             limit: int | None = None) -> Outcome:
    """The seller's listings, every page (LOW priority: bulk reads)."""
    for listing in ctx.runtime.client.iter_listings(
        min_quantity=min_quantity, publication_state=publication_state, limit=limit,
        market=ctx.settings.market,
    ):
        ctx.emit(listing.to_json())
    return Outcome()
