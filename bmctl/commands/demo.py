"""``demo``: the main job end to end on the embedded sandbox, no token and no network."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from bmctl.commands.run import CommandContext, Outcome
from bmctl.config import Settings


@contextmanager
def sandbox_on_loopback(*, settle: float, reveal: bool, seed: int = 7) -> Iterator[str]:
    """The demo catalogue served on a free 127.0.0.1 port for the duration of the block."""
    from bmctl.sandbox.app import SandboxApp
    from bmctl.sandbox.catalogue import demo_catalogue
    from bmctl.sandbox.model import Marketplace
    from bmctl.sandbox.server import start_in_thread
    from bmctl.traffic.clock import SystemClock

    marketplace = Marketplace(SystemClock().monotonic, settle=settle, reveal=reveal)
    marketplace.load(demo_catalogue(seed))
    server, base_url = start_in_thread(SandboxApp(marketplace, token="sandbox"))
    try:
        yield base_url
    finally:
        server.stop()


def demo_settings(settings: Settings, base_url: str, db_given: bool) -> Settings:
    """The operator's settings pointed at the sandbox: its token, its URL, and a database of
    its own (unless --db was given) so that rehearsal traffic never charges real budgets."""
    if db_given:
        db = settings.db
    else:  # beside the default database, never beside the operator's own
        db = str(Settings().db_path.with_name("demo.db"))
    return replace(settings, token="sandbox", base_url=base_url, db=db,
                   user_agent="BM-demo-bmctl;demo@example.invalid")


def fresh_demo_database(path: Path) -> None:
    """Start the demo's own database afresh: its marketplace is new at every run, and a former
    demo's journal would hold (price-war rounds) or leave unsearched (a recent price) listings
    of a marketplace it never saw. Another demo running holds the lock: ``LockHeld`` (exit 5)."""
    from bmctl.store.lock import RunLock

    with RunLock(str(path)):
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


def demo_targets(client: Any, markets: tuple[str, ...], limit: int | None) -> list[Any]:
    """Every listing with stock in every demo market (listing pages are LOW priority)."""
    from bmctl.pricing.probe_types import ProbeTarget

    targets: list[ProbeTarget] = []
    for market in markets:
        for listing in client.iter_listings(min_quantity=1, market=market):
            targets.append(ProbeTarget(listing.id, market))
    return targets[:limit] if limit else targets


NEXT_STEPS = """\
Run the same against Back Market:
  bmctl config init            # then set token (or BMCTL_TOKEN), market, user_agent
  bmctl probe --all --dry-run  # see what it would write
  bmctl probe --all --deadline 10m
Rehearse on the sandbox over HTTP: bmctl sandbox serve (token: sandbox)."""


def demo(ctx: CommandContext, *, settle: float, limit: int | None) -> Outcome:
    """Probe every listing with stock in every demo market (the runtime points at the sandbox),
    then show this run's traffic per bucket."""
    from dataclasses import replace

    from bmctl.commands.probe import ProbeRequest, probe, probe_params
    from bmctl.pricing.runner import ProbeRunOptions
    from bmctl.sandbox.catalogue import DEMO_MARKETS
    from bmctl.store.logs import STATS_FIELDS, bucket_stats

    runtime = ctx.runtime
    settings = ctx.settings
    options = ProbeRunOptions(params=replace(probe_params(settings), settle=settle),
                              breaker_floor_hits=settings.probe.breaker_floor_hits)
    targets = demo_targets(runtime.client, DEMO_MARKETS, limit)
    outcome = probe(ctx, ProbeRequest(market=settings.market), targets, options)
    runtime.flush_logs()
    limits = {name: (spec.limit, spec.window) for name, spec in settings.limits.items()}
    ctx.table(bucket_stats(runtime.db, 0.0, limits, run=runtime.run_id), list(STATS_FIELDS),
              f"Traffic of run {runtime.run_id}")
    return outcome
