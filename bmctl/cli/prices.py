"""``bmctl update-price`` and ``bmctl history``."""

from __future__ import annotations

from typing import Optional

import typer

from bmctl.cli.command import run_command
from bmctl.cli.common import cli_env
from bmctl.cli.output import Output

UPDATE_FIELDS = ["listing_id", "market", "currency", "old_price", "new_price", "status", "reason"]
HISTORY_COLUMNS = ["ts", "market", "old_price", "new_price", "currency", "reason", "status", "request_id"]


def update_price(
    ctx: typer.Context,
    listing_id: Optional[str] = typer.Argument(None, help="Listing id (UUID)."),
    price: Optional[str] = typer.Argument(None, help="New price, e.g. 149.90 (1500 for JPY)."),
    file: Optional[str] = typer.Option(None, "--file", help="CSV of listing_id,price[,market], or with a header: id/listing_id, price, market, min_price columns by name (bmctl listings --format csv reads back); ',' or ';'; '-' for stdin."),
    min_price: Optional[str] = typer.Option(None, "--min-price", help="Also set the BackPricer floor (min_price)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read and print the plan; send no write."),
    allow_big_change: bool = typer.Option(False, "--allow-big-change", help="Allow a change beyond max_change_pct."),
    allow_above_max: bool = typer.Option(False, "--allow-above-max", help="Allow a price above the listing's max_price."),
    force: bool = typer.Option(False, "--force", help="Old spelling of --allow-big-change --allow-above-max (also allows a min_price above the price)."),
) -> None:
    """Set one price (or many with --file). The current price is read first; a change of more
    than max_change_pct (30 %) is refused without --allow-big-change, a price above max_price
    without --allow-above-max. A price over 100x the current one (or under 1/100 of it) is
    always refused.

    Example: bmctl update-price 3fa85f64-5717-4562-b3fc-2c963f66afa6 149.90 --dry-run
    """
    from functools import partial

    from bmctl.commands.prices import update_price as core
    from bmctl.errors import UsageError
    from bmctl.pricing.targets import price_order, price_orders_from_file, with_min_price

    env = cli_env(ctx)
    market = env.settings.market
    if file is not None:
        if listing_id is not None or price is not None:
            raise UsageError("give either ID PRICE or --file, not both")
        orders = with_min_price(price_orders_from_file(file, market, env.stdin), min_price)
    elif listing_id is None or price is None:
        raise UsageError("give ID PRICE, or --file prices.csv")
    else:
        orders = [price_order(listing_id, price, market, min_price)]
    run_command(env, "update-price", partial(core, orders=orders, from_file=file is not None, force=force,
                                             allow_big_change=allow_big_change,
                                             allow_above_max=allow_above_max, dry_run=dry_run),
                writing=not dry_run, columns=UPDATE_FIELDS, summary=file is not None)


def history(
    ctx: typer.Context,
    listing_id: str = typer.Argument(..., help="Listing id (UUID); '-' reads it from stdin."),
    n: Optional[int] = typer.Option(None, "-n", "--limit", min=1, help="Show at most this many changes."),
) -> None:
    """The price changes bmctl made to a listing, newest first, with the reason (update, dip,
    peak, undo, restore).

    Example: bmctl history 3fa85f64-5717-4562-b3fc-2c963f66afa6 -n 10
    """
    from bmctl.errors import UsageError
    from bmctl.pricing.journal import history as query
    from bmctl.pricing.targets import listing_ids
    from bmctl.store.db import open_database

    env = cli_env(ctx)
    ids = listing_ids([listing_id], env.stdin)
    if len(ids) != 1:
        raise UsageError(f"history takes one listing id; stdin held {len(ids)}")
    listing_id = ids[0]
    db = open_database(env.settings.db_path, readonly=True)
    with Output(env, HISTORY_COLUMNS if env.format == "table" else None, title=f"History of {listing_id}") as out:
        out.emit_all(query(db, listing_id, n))
