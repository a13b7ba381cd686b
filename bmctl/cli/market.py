"""``bmctl competitors`` and ``bmctl listings``: read-only views of the market."""

from __future__ import annotations

from typing import List, Optional

import typer

from bmctl.cli.common import cli_env, finish, open_runtime, report_item_error
from bmctl.cli.output import Output
from bmctl.errors import items_exit_code

COMPETITOR_FIELDS = [
    "listing_id", "market", "currency", "price", "min_price", "price_to_win", "winner_price", "is_winning",
]
# csv and table carry the failure reason too (empty when the listing was read).
COMPETITOR_COLUMNS = [*COMPETITOR_FIELDS, "error"]
LISTING_COLUMNS = ["id", "sku", "price", "min_price", "max_price", "quantity", "currency", "publication_state"]


def competitors(
    ctx: typer.Context,
    ids: List[str] = typer.Argument(..., help="Listing ids (UUIDs)."),
) -> None:
    """Backbox data per market for each listing: our price, min price, price to win, winner
    price, winning or not.

    Example: bmctl competitors 3fa85f64-5717-4562-b3fc-2c963f66afa6 --format json
    """
    from bmctl.api.client import validate_listing_id
    from bmctl.errors import AuthError, BmctlError

    env = cli_env(ctx)
    # Each id once: a repeated one would only spend the 2-per-second competitors budget again.
    listing_ids = list(dict.fromkeys(validate_listing_id(value) for value in ids))
    failures: list[int] = []  # exit codes of the failed items
    with open_runtime(env, "competitors") as runtime, Output(
        env, COMPETITOR_COLUMNS, title="Backbox", optional=("error",)
    ) as out:
        client = runtime.client
        for listing_id in listing_ids:
            try:
                records = client.competitors(listing_id, market=runtime.settings.market)
            except AuthError:
                raise
            except BmctlError as error:
                failures.append(int(error.exit_code))
                report_item_error(env, listing_id, error.message)
                out.emit({**dict.fromkeys(COMPETITOR_FIELDS), "listing_id": listing_id,
                          "market": runtime.settings.market, "error": error.message})
                continue
            if not records:
                env.info(f"bmctl: {listing_id}: not competing in any Backbox "
                         "(offline, out of stock or above max_price)")
            for record in records:
                data = record.to_json()
                out.emit({key: data.get(key) for key in COMPETITOR_FIELDS})
        code = int(items_exit_code(failures))
        runtime.exit_code = code
    finish(code)


def listings(
    ctx: typer.Context,
    min_quantity: Optional[int] = typer.Option(None, "--min-quantity", min=0, help="Only listings with at least this stock."),
    publication_state: Optional[int] = typer.Option(None, "--publication-state", min=0, max=4, help="Only this publication state (0-4)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Stop after this many listings."),
) -> None:
    """The seller's listings, every page.

    Example: bmctl listings --min-quantity 1 --format csv > listings.csv
    """
    env = cli_env(ctx)
    with open_runtime(env, "listings") as runtime, Output(
        env, LISTING_COLUMNS if env.format == "table" else None, title="Listings"
    ) as out:
        for listing in runtime.client.iter_listings(
            min_quantity=min_quantity, publication_state=publication_state, limit=limit,
            market=runtime.settings.market,
        ):
            out.emit(listing.to_json())
