"""``bmctl competitors`` and ``bmctl listings``: read-only views of the market."""

from __future__ import annotations

from typing import List, Optional

import typer

from bmctl.cli.command import run_command
from bmctl.cli.common import cli_env
from bmctl.commands.market import COMPETITOR_FIELDS

# csv and table carry the failure reason too (empty when the listing was read).
COMPETITOR_COLUMNS = [*COMPETITOR_FIELDS, "error"]
LISTING_COLUMNS = ["id", "sku", "price", "min_price", "max_price", "quantity", "currency", "publication_state"]


def competitors(
    ctx: typer.Context,
    ids: List[str] = typer.Argument(..., help="Listing ids (UUIDs); '-' reads ids from stdin, one per line."),
) -> None:
    """Backbox data per market for each listing: our price, min price, price to win, winner
    price, winning or not.

    Example: bmctl competitors 3fa85f64-5717-4562-b3fc-2c963f66afa6 --format json
    """
    from functools import partial

    from bmctl.commands.market import competitors as core
    from bmctl.errors import UsageError
    from bmctl.pricing.targets import listing_ids as read_ids

    env = cli_env(ctx)
    # Each id once: a repeated one would only spend the 2-per-second competitors budget again.
    listing_ids = read_ids(ids, env.stdin)
    if not listing_ids:
        raise UsageError("no listing ids (stdin held none)")
    run_command(env, "competitors", partial(core, listing_ids=listing_ids), columns=COMPETITOR_COLUMNS,
                title="Backbox", optional=("error",), summary=len(listing_ids) > 1)


def listings(
    ctx: typer.Context,
    min_quantity: Optional[int] = typer.Option(None, "--min-quantity", min=0, help="Only listings with at least this stock."),
    publication_state: Optional[int] = typer.Option(None, "--publication-state", min=0, max=4, help="Only listings in this publication state (Back Market's code, e.g. 2)."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Stop after this many listings."),
) -> None:
    """The seller's listings, every page.

    Example: bmctl listings --min-quantity 1 --format csv > listings.csv
    """
    from functools import partial

    from bmctl.commands.market import listings as core

    env = cli_env(ctx)
    run_command(env, "listings", partial(core, min_quantity=min_quantity, publication_state=publication_state,
                                         limit=limit),
                columns=LISTING_COLUMNS if env.format == "table" else None, title="Listings")
