"""``bmctl probe`` (Dip -> Peek -> Peak over a batch) and ``bmctl recover``."""

from __future__ import annotations

from typing import Any, List, Optional

import typer

from bmctl.cli.command import run_command
from bmctl.cli.common import cli_env

PROBE_FIELDS = [
    "listing_id", "market", "currency", "outcome", "start_price", "dip_price", "final_price",
    "floor", "ceiling", "floor_source", "ceiling_source", "writes", "dip_seconds", "reason",
]
# A dry run's table is a plan: what it would try, not what happened (no final price, writes or
# dip window; the reason says what it would try).
PLAN_COLUMNS = [
    "listing_id", "market", "currency", "outcome", "start_price", "dip_price", "floor", "ceiling",
    "floor_source", "ceiling_source", "reason",
]
RECOVER_COLUMNS = ["listing_id", "market", "original_price", "found_price", "status", "reason"]
RECOVER_PLAN_COLUMNS = ["listing_id", "market", "original_price", "current_price", "state", "run_id"]


def probe(
    ctx: typer.Context,
    ids: Optional[List[str]] = typer.Argument(None, help="Listing ids (UUIDs); '-' reads ids from stdin."),
    floor: Optional[str] = typer.Option(None, "--floor", help="Lowest price allowed (default: the listing's min_price)."),
    ceiling: Optional[str] = typer.Option(None, "--ceiling", help="Highest price allowed (default and cap: max_price)."),
    file: Optional[str] = typer.Option(None, "--file", help="CSV of listing_id[,floor][,ceiling][,market]."),
    costs: Optional[str] = typer.Option(None, "--costs", help="CSV of costs (header: listing_id or sku, cost[, market][, currency]): floors and ceilings from cost with the [pricing] fees and margins."),
    all_listings: bool = typer.Option(False, "--all", help="Probe every listing with stock in every market it competes in (the markets of your platform; --market narrows to one)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Read the market and print a plan per listing (outcome 'planned': the dip and raises it would try); send no write."),
    max_raises: Optional[int] = typer.Option(None, "--max-raises", min=0, help="Writes of the upward search (default 3)."),
    settle: Optional[float] = typer.Option(None, "--settle", min=0.0, help="Seconds the Backbox needs after a write (default 2)."),
    step: Optional[str] = typer.Option(None, "--step", help="Price tick of the search (default: the currency's)."),
    deadline: Optional[str] = typer.Option(None, "--deadline", help="Start no probe that cannot finish within this (10m, 1h30m; a unit is required)."),
    ignore_cooldown: bool = typer.Option(False, "--ignore-cooldown", help="Probe listings the price-war cooldown holds (their rounds still count for later runs)."),
) -> None:
    """Dip -> Peek -> Peak: win the Backbox at the highest price the market and your bounds allow.

    Example: bmctl probe --all --deadline 10m --format ndjson

    --all walks every market of your platform (bmctl --market en-gb probe --all: that one only).

    Outcomes: won, kept, unwinnable, lost, skipped, held (the price-war cooldown: war_rounds
    rounds within war_window hold a listing for war_cooldown, no request sent; [pricing] in the
    config), not_started, error; --dry-run adds planned. A listing already winning is searched
    upwards again only once its price is raise_back_after old ("raised back from X to Y").
    """
    from functools import partial

    from bmctl.commands.probe import ProbeRequest, probe_params
    from bmctl.commands.probe import probe as core
    from bmctl.pricing.runner import ProbeRunOptions

    env = cli_env(ctx)
    settings = env.settings
    request = ProbeRequest(
        ids=list(ids or []), file=file, all_listings=all_listings, floor=floor, ceiling=ceiling,
        market=settings.market, every_market=env.overrides.get("market") is None,
    )
    targets = request.validate(env.stdin)
    params = probe_params(settings, settle=settle, max_raises=max_raises, step=step, dry_run=dry_run,
                          costs=costs)
    options = ProbeRunOptions(params=params, deadline=_deadline(deadline),
                              breaker_floor_hits=settings.probe.breaker_floor_hits,
                              cooldown=_cooldown(settings, ignore_cooldown))
    run_command(env, "probe", partial(core, request=request, targets=targets, options=options),
                writing=not dry_run, summary=True,
                columns=(PLAN_COLUMNS if dry_run else PROBE_FIELDS) if env.format == "table" else None,
                title="Probe plan (dry run: nothing written)" if dry_run else "Probes")


def _cooldown(settings: Any, ignore_cooldown: bool) -> Any:
    """The run's price-war cooldown and raise back rules; ``--ignore-cooldown`` holds nothing."""
    from dataclasses import replace

    from bmctl.pricing.cooldown import CooldownRules

    rules = CooldownRules.from_settings(settings.pricing)
    return replace(rules, war_rounds=0) if ignore_cooldown else rules


def _deadline(text: Optional[str]) -> Optional[float]:
    from bmctl.durations import parse_duration

    return parse_duration(text, "--deadline") if text is not None else None


def recover(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="List the open probes (from the local journal); send nothing, no token needed."),
) -> None:
    """Put every listing a killed run left in an open probe back at its original price, and
    close the probe (every writing run also does this first). With nothing open, or with
    --dry-run, no token is needed and nothing is sent.

    Example: bmctl recover --dry-run
    """
    from functools import partial

    from bmctl.commands.probe import recover as core

    env = cli_env(ctx)
    if dry_run:
        run_command(env, "recover", partial(core, dry_run=True), writing=False, recover=False,
                    needs_token=False, read_only=True, columns=RECOVER_PLAN_COLUMNS if env.format == "table" else None,
                    title="Open probes (dry run: nothing sent)")
        return
    run_command(env, "recover", core, writing=True, recover=False, needs_token=False,
                columns=RECOVER_COLUMNS if env.format == "table" else None, title="Recovered")
