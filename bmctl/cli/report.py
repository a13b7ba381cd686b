"""``bmctl report``: what repricing earned, per listing and market (read-only)."""

from __future__ import annotations

from typing import Optional

import typer

from bmctl.cli.common import cli_env, market_filter, one_listing_id

#: Table columns on a terminal (json/csv carry every field of ``REPORT_FIELDS``).
REPORT_COLUMNS = [
    "listing_id", "market", "currency", "probes", "backbox_share", "price_changes", "writes",
    "avg_price", "avg_floor", "avg_ceiling", "peak_margin", "war_rounds",
]
MAX_REPORT_CHARTS = 3


def report(
    ctx: typer.Context,
    listing_id: Optional[str] = typer.Argument(None, metavar="ID", help="Listing id (UUID); '-' reads it from stdin. Without it: every listing."),
    since: str = typer.Option("7d", "--since", metavar="WHEN", help="The period: 7d, 24h, 1h30m or an ISO date/time (UTC)."),
) -> None:
    """What repricing earned, per listing and market: the share of probes that held the
    Backbox, price changes, writes, the average price against floor and ceiling, the margin
    above the dip price that Peak captured, and price-war rounds. Amounts per currency, never
    summed across currencies. Only reads the database. The global --market keeps one market;
    on a terminal, a chart of price and win state over time per listing.

    Example: bmctl report --since 7d

    Example: bmctl report --since 2026-11-01 --format csv > november.csv
    """
    from bmctl.cli.output import Output
    from bmctl.commands.report import REPORT_FIELDS, win_series
    from bmctl.commands.report import report as query
    from bmctl.durations import parse_since
    from bmctl.store.db import open_database, utc_iso

    env = cli_env(ctx)
    if listing_id is not None:
        listing_id = one_listing_id(env, listing_id, "report")
    market = market_filter(env)
    since_text = utc_iso(parse_since(since, env.now_wall()))
    db = open_database(env.settings.db_path, readonly=True)
    rows = query(db, since_text, listing_id=listing_id, market=market)
    table = env.format == "table"
    columns = REPORT_COLUMNS if table else list(REPORT_FIELDS)
    title = f"What repricing earned since {since_text[:16].replace('T', ' ')} UTC" if table else None
    with Output(env, columns, title=title) as out:
        out.emit_all(rows)
    if not rows:
        env.info(f"report: no probe or price change since {since_text[:19]}Z")
    if table and env.stdout_is_tty and rows:
        from bmctl.cli.charts import draw_history

        keys = [(row["listing_id"], row["market"]) for row in rows if row["probes"]]
        if len(keys) > MAX_REPORT_CHARTS:
            env.info(f"report: charts for the first {MAX_REPORT_CHARTS} of {len(keys)} listings and "
                     "markets; give an ID or --market for another")
        draw_history(env, win_series(db, since_text, keys[:MAX_REPORT_CHARTS]), name="report")
