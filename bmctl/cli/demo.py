"""``bmctl demo``: probe the embedded sandbox's demo catalogue with live progress."""

from __future__ import annotations

from typing import Optional

import typer

from bmctl.cli.command import run_command
from bmctl.cli.common import cli_env


def demo(
    ctx: typer.Context,
    settle: float = typer.Option(2.0, "--settle", min=0.0, help="Seconds the sandbox's Backbox needs after a write."),
    reveal: bool = typer.Option(True, "--reveal/--no-reveal", help="Whether price_to_win reveals the headroom while winning."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Probe only the first N listings."),
) -> None:
    """The main job end to end on the embedded sandbox: seeds a demo catalogue, probes it with
    live progress, prints the results and the log statistics. Needs no token and no network.

    Each run starts afresh: a new marketplace and a new demo database (unless --db is given),
    which stays for bmctl --db PATH logs / history / report until the next demo.

    Example: bmctl demo --format json
    """
    from functools import partial

    from bmctl.cli.probe import PROBE_FIELDS
    from bmctl.commands.demo import NEXT_STEPS, demo_settings, fresh_demo_database, sandbox_on_loopback
    from bmctl.commands.demo import demo as core

    env = cli_env(ctx)
    # Only a --db on this very command line: BMCTL_DB or a config file's db is the operator's
    # real database, which rehearsal traffic must never touch (nor charge its budget).
    db_given = env.overrides.get("db") is not None
    with sandbox_on_loopback(settle=settle, reveal=reveal) as base_url:
        settings = demo_settings(env.settings, base_url, db_given)
        if not db_given:  # its own database, like its marketplace, is new at every run
            fresh_demo_database(settings.db_path)
        env.info(f"demo: sandbox marketplace on {base_url}; database {settings.db_path}")
        try:
            # Real HTTP to the sandbox on loopback, whatever transport the caller injected.
            run_command(env, "demo", partial(core, settle=settle, limit=limit), writing=True,
                        columns=PROBE_FIELDS if env.format == "table" else None, title="Probes",
                        settings=settings, transport=None)
        except typer.Exit:  # done, with an exit code: the next steps still apply
            env.info(NEXT_STEPS)
            raise
    env.info(NEXT_STEPS)
