"""``bmctl config init/show/path``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from bmctl.cli.common import cli_env

app = typer.Typer(
    help="Create, show and locate the configuration file.\n\nExample: bmctl config init",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.command("init")
def init(
    ctx: typer.Context,
    path: Optional[Path] = typer.Argument(None, help="Where to write (default: --config, $BMCTL_CONFIG or ~/.config/bmctl/bmctl.toml)."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing file."),
    with_token: bool = typer.Option(False, "--with-token", help="Fill in the token from $BMCTL_TOKEN."),
) -> None:
    """Write a commented starter config file (mode 0600); never overwrites without --force.

    Example: bmctl config init --with-token
    """
    import os

    from bmctl.config import CONFIG_ENV, default_config_path, write_private
    from bmctl.config_example import starter_config

    env = cli_env(ctx)
    target = path or (Path(env.config) if env.config else None) or (
        Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else default_config_path()
    )
    token = os.environ.get("BMCTL_TOKEN", "") if with_token else ""
    write_private(target.expanduser(), starter_config(token), force=force)
    env.info(f"wrote {target} (mode 0600)")


@app.command("show")
def show(ctx: typer.Context) -> None:
    """Print the merged configuration (defaults, file, environment, options); the token is masked.

    Example: bmctl config show --format json
    """
    import json

    env = cli_env(ctx)
    settings = env.settings
    data = settings.masked()
    data["config_path"] = settings.config_path
    if env.format in ("json", "ndjson"):
        env.stdout.write(json.dumps(data, indent=2 if env.format == "json" else None) + "\n")
        return
    import tomli_w

    printable = {k: v for k, v in data.items() if v is not None}
    env.stdout.write(tomli_w.dumps(printable))


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print which config file is in use (or where `config init` would write one).

    Example: bmctl config path
    """
    from bmctl.config import default_config_path, find_config_file

    env = cli_env(ctx)
    found = find_config_file(env.config)
    if found is None:
        env.stdout.write(f"{default_config_path()}\n")
        env.info("(no config file yet: defaults and environment only; `bmctl config init` creates it)")
    else:
        env.stdout.write(f"{found}\n")
