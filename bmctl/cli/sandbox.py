"""``bmctl sandbox serve``: the embedded marketplace on loopback, for rehearsals and tests."""

from __future__ import annotations

from typing import Optional

import typer

from bmctl.cli.common import cli_env

app = typer.Typer(
    help="The embedded sandbox marketplace: serve it, or print a catalogue to seed it with.\n\nExample: bmctl sandbox serve --port 8765",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("serve")
def serve(
    ctx: typer.Context,
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free port)."),
    seed: Optional[str] = typer.Option(None, "--seed", help="Catalogue JSON file (default: the demo catalogue; `bmctl sandbox catalogue` prints it as a starting point)."),
    settle: float = typer.Option(2.0, "--settle", min=0.0, help="Seconds before the Backbox sees a new price."),
    reveal: bool = typer.Option(True, "--reveal/--no-reveal", help="Whether price_to_win reveals the headroom while winning."),
    token: str = typer.Option("sandbox", "--token", help="The token clients must send (Authorization: Basic <token>)."),
    faults: Optional[str] = typer.Option(None, "--faults", help="Faults to inject, comma-separated: latency=MS, jitter=MS, hang=SECONDS, and the shares error=, timeout=, drop=, malformed=, waf=, challenge= (e.g. latency=50,jitter=25,error=0.05)."),
    drift: Optional[str] = typer.Option(None, "--drift", help="Other sellers' prices wander: a step every INTERVAL s within BAND of their start, e.g. interval=60,step=0.01,band=0.10."),
) -> None:
    """Serve GET /ws/listings, GET/POST /ws/listings/{id} and GET /ws/backbox/v1/competitors/{id}
    on 127.0.0.1 until Ctrl-C.

    Example: bmctl sandbox serve --port 8765 --no-reveal --faults latency=50,jitter=25
    """
    from bmctl.errors import UsageError
    from bmctl.sandbox.faults import parse_faults
    from bmctl.sandbox.model import parse_drift
    from bmctl.sandbox.server import serve as run_server

    env = cli_env(ctx)
    try:
        parsed = parse_faults(faults) if faults else None
    except ValueError as error:
        raise UsageError(f"bad --faults: {error}") from None
    try:
        wander = parse_drift(drift) if drift else None
    except ValueError as error:
        raise UsageError(f"bad --drift: {error}") from None
    # The "listening on URL" line is kept even with --quiet: with --port 0 it is the only way
    # to learn the port, and scripts wait for it.
    run_server(port=port, seed_path=seed, settle=settle, reveal=reveal, token=token, faults=parsed,
               drift=wander, announce=env.warn)


@app.command("catalogue")
def catalogue(
    listings: int = typer.Option(0, "--listings", min=0, help="Generate a mixed catalogue of this many listings instead of the demo one."),
    number: int = typer.Option(7, "--number", help="Random seed of the catalogue (the same number gives the same catalogue)."),
) -> None:
    """Print a sandbox catalogue as JSON on stdout: the file format `serve --seed FILE` reads.

    Example: bmctl sandbox catalogue > catalogue.json && bmctl sandbox serve --seed catalogue.json
    """
    import json

    from bmctl.sandbox.catalogue import catalogue_to_json, demo_catalogue, generate_catalogue

    specs = generate_catalogue(listings, seed=number) if listings else demo_catalogue(number)
    typer.echo(json.dumps(catalogue_to_json(specs), indent=2, ensure_ascii=False))
