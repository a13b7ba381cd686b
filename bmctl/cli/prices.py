"""``bmctl update-price`` and ``bmctl history``."""

from __future__ import annotations

from typing import Optional

import typer

from bmctl.cli.command import run_command
from bmctl.cli.common import cli_env, market_filter, one_listing_id, run_id_option
from bmctl.cli.output import Output

UPDATE_FIELDS = ["listing_id", "market", "currency", "old_price", "new_price", "status", "reason"]
HISTORY_COLUMNS = ["ts", "market", "old_price", "new_price", "currency", "reason", "status", "request_id"]
HISTORY_ALL_COLUMNS = ["ts", "listing_id", *HISTORY_COLUMNS[1:]]


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
    listing_id: Optional[str] = typer.Argument(None, metavar="ID", help="Listing id (UUID); '-' reads it from stdin. Without it: every listing."),
    n: Optional[int] = typer.Option(None, "-n", "--limit", min=1, metavar="N", help="Show at most this many changes."),
    since: Optional[str] = typer.Option(None, "--since", metavar="WHEN", help="Only changes since: 15m, 2h, 1h30m, 7d or an ISO date/time (UTC)."),
    run: Optional[str] = typer.Option(None, "--run", callback=run_id_option, help="Only the changes of this run id (see bmctl logs runs)."),
) -> None:
    """The price changes bmctl made, newest first, with the reason (update, dip, peak, undo,
    restore): one listing's, or every listing's with --since/--run. Without an id: the last 50
    unless --since, --run or -n say otherwise. The global --market keeps one market's. JSON rows carry the Backbox
    snapshot each change was decided on; on a terminal, one listing's prices are drawn as a
    chart under the table.

    Example: bmctl history 3fa85f64-5717-4562-b3fc-2c963f66afa6 -n 10

    Example: bmctl history --since 2h --market fr-fr
    """
    from bmctl.pricing.journal import DEFAULT_RECENT
    from bmctl.pricing.journal import history as query

    env = cli_env(ctx)
    if listing_id is not None:
        listing_id = one_listing_id(env, listing_id, "history")
    market = market_filter(env)
    since_text = None
    if since is not None:
        from bmctl.durations import parse_since
        from bmctl.store.db import utc_iso

        since_text = utc_iso(parse_since(since, env.now_wall()))
    if n is None and listing_id is None and since is None and run is None:
        n = DEFAULT_RECENT
    from bmctl.store.db import open_database

    db = open_database(env.settings.db_path, readonly=True)
    rows = query(db, listing_id, n, since=since_text, run=run, market=market)
    table = env.format == "table"
    if table:
        columns = HISTORY_COLUMNS if listing_id is not None else HISTORY_ALL_COLUMNS
        title = f"History of {listing_id}" if listing_id is not None else "Price changes"
    else:
        columns, title = None, None
    with Output(env, columns, title=title) as out:  # csv: the snapshot as one cell of JSON text
        out.emit_all(rows)
    if table and env.stdout_is_tty and len({row["listing_id"] for row in rows}) == 1:
        from bmctl.cli.charts import draw_history
        from bmctl.pricing.journal import price_series

        draw_history(env, price_series(db, rows))
