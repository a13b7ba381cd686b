"""``update-price``: one price or a validated file of them, each read first and guarded."""

from __future__ import annotations

from typing import Any

from bmctl.commands.run import CommandContext, Outcome


def update_price(ctx: CommandContext, orders: list[Any], *, from_file: bool, force: bool = False,
                 dry_run: bool, allow_big_change: bool = False,
                 allow_above_max: bool = False) -> Outcome:
    """Apply price orders (validated whole before this runs); a file first says on stderr
    what it will cost at the limits, from what the budget ledger holds now."""
    from bmctl.pricing.journal import Journal
    from bmctl.pricing.plan import plan_updates
    from bmctl.pricing.updates import apply_price_orders

    runtime = ctx.runtime
    if from_file:
        ctx.info(plan_updates(len(orders), ctx.settings.limits, dry_run=dry_run,
                              buckets=runtime.ledger.buckets).describe())
    journal = None if dry_run else Journal(runtime.db, runtime.run_id, runtime.clock.wall)

    def show(result: Any) -> None:
        ctx.emit(result.to_json())
        if result.status in ("error", "refused"):
            ctx.warn(f"bmctl: {result.listing_id}: {result.reason}")

    controller = runtime.controller
    results = apply_price_orders(runtime.client, journal, orders,
                                 max_change_pct=ctx.settings.max_change_pct,
                                 force=force, allow_big_change=allow_big_change,
                                 allow_above_max=allow_above_max, dry_run=dry_run, on_result=show,
                                 controller=controller, window=2 * controller.max_in_flight)
    return Outcome(failures=[r.exit_code or 1 for r in results if r.status in ("error", "refused")])
