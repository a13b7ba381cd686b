"""``bmctl config init/show/path``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

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
    """Print the merged configuration and where each value came from (default, file PATH,
    env NAME, option --x); the token is masked, user_agent is the one bmctl sends.

    json: the settings plus "sources" (dotted name -> source); table and csv: one row per
    value (key, value, source). A User-Agent Back Market would refuse is warned about.

    Example: bmctl config show --format json
    """
    import json

    from bmctl.cli.output import Output
    from bmctl.runtime import effective_user_agent, user_agent_refusal

    env = cli_env(ctx)
    settings = env.settings
    data = settings.masked()
    data["user_agent"] = effective_user_agent(settings)
    sources = {name: settings.source(name) for name in _leaves(data)}
    if not settings.user_agent:
        sources["user_agent"] = "built from company and email"
    refusal = user_agent_refusal(settings)
    if refusal is not None:
        env.warn(f"warning: {refusal}")
    if env.format == "json":
        data["config_path"] = settings.config_path
        data["sources"] = sources
        env.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    values = _leaves(data)
    with Output(env, ("key", "value", "source"), title=f"Configuration ({settings.config_path or 'no file'})") as out:
        for name, value in values.items():
            out.emit({"key": name, "value": value, "source": sources[name]})


def _leaves(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """The values of nested ``data`` by dotted name (``limits.global.limit``)."""
    leaves: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


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
