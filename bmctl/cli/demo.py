"""``bmctl demo``: probe the embedded sandbox's demo catalogue with live progress."""

from __future__ import annotations

from typing import Optional

import typer

from bmctl.cli.common import cli_env, finish


def demo(
    ctx: typer.Context,
    settle: float = typer.Option(2.0, "--settle", min=0.0, help="Seconds the sandbox's Backbox needs after a write."),
    reveal: bool = typer.Option(True, "--reveal/--no-reveal", help="Whether price_to_win reveals the headroom while winning."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Probe only the first N listings."),
) -> None:
    """The main job end to end on the embedded sandbox: seeds a demo catalogue, probes it with
    live progress, prints the results and the log statistics. Needs no token and no network.

    Example: bmctl demo --format json
    """
    from dataclasses import replace

    from bmctl.cli.logs import STATS_COLUMNS
    from bmctl.cli.output import Output
    from bmctl.cli.probe import run_batch
    from bmctl.demo import NEXT_STEPS, demo_settings, demo_targets, sandbox_on_loopback
    from bmctl.pricing.runner import ProbeRunOptions
    from bmctl.pricing.workflow import ProbeRequest, probe_params
    from bmctl.runtime import Runtime
    from bmctl.sandbox.catalogue import DEMO_MARKETS
    from bmctl.store.logs import bucket_stats

    env = cli_env(ctx)
    db_given = env.overrides.get("db") is not None or bool(env.settings.db)
    with sandbox_on_loopback(settle=settle, reveal=reveal) as base_url:
        settings = demo_settings(env.settings, base_url, db_given)
        env.info(f"demo: sandbox marketplace on {base_url}; database {settings.db_path}")
        options = ProbeRunOptions(params=replace(probe_params(settings), settle=settle),
                                  breaker_floor_hits=settings.probe.breaker_floor_hits)
        with Runtime(settings=settings, command="demo", argv=env.argv, writing=True, warn=env.warn) as runtime:
            targets = demo_targets(runtime.client, DEMO_MARKETS, limit)
            request = ProbeRequest(market=settings.market)
            code = run_batch(env, runtime, request, targets, options)
            runtime.exit_code = code
            runtime.flush_logs()
            if env.format == "table":
                limits = {name: (spec.limit, spec.window) for name, spec in settings.limits.items()}
                stats = bucket_stats(runtime.db, 0.0, limits, run=runtime.run_id)
                with Output(env, STATS_COLUMNS, title=f"Traffic of run {runtime.run_id}") as out:
                    out.emit_all(stats)
    env.info(NEXT_STEPS)
    finish(code)
