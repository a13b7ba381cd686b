"""``bmctl sandbox serve``: the embedded marketplace on loopback, for rehearsals and tests."""

from __future__ import annotations

from typing import Optional

import typer

from bmctl.cli.common import cli_env

app = typer.Typer(
    help="The embedded sandbox marketplace.\n\nExample: bmctl sandbox serve --port 8765",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("serve")
def serve(
    ctx: typer.Context,
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    seed: Optional[str] = typer.Option(None, "--seed", help="Catalogue JSON file (default: the demo catalogue)."),
    settle: float = typer.Option(2.0, "--settle", min=0.0, help="Seconds before the Backbox sees a new price."),
    reveal: bool = typer.Option(True, "--reveal/--no-reveal", help="Whether price_to_win reveals the headroom while winning."),
    token: str = typer.Option("sandbox", "--token", help="The token clients must send (Authorization: Basic <token>)."),
    faults: Optional[str] = typer.Option(None, "--faults", help="e.g. latency=50,jitter=25,error=0.05,timeout=0.01,drop=0.01,malformed=0.01,waf=0.01"),
) -> None:
    """Serve GET /ws/listings, GET/POST /ws/listings/{id} and GET /ws/backbox/v1/competitors/{id}
    on 127.0.0.1 until Ctrl-C.

    Example: bmctl sandbox serve --port 8765 --no-reveal --faults latency=50,jitter=25
    """
    from bmctl.errors import UsageError
    from bmctl.sandbox.faults import parse_faults
    from bmctl.sandbox.server import serve as run_server

    env = cli_env(ctx)
    try:
        parsed = parse_faults(faults) if faults else None
    except ValueError as error:
        raise UsageError(f"bad --faults: {error}") from None
    # The "listening on URL" line is kept even with --quiet: with --port 0 it is the only way
    # to learn the port, and scripts wait for it.
    run_server(port=port, seed_path=seed, settle=settle, reveal=reveal, token=token, faults=parsed,
               announce=env.warn)
