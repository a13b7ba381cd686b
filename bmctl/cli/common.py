"""Small pieces shared by the command modules."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from bmctl.cli.env import CliEnv


class DefaultListGroup(TyperGroup):
    """A group whose bare invocation (or leading options) runs its ``list`` command."""

    default_command = "list"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ("-h", "--help")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


def cli_env(ctx: typer.Context) -> CliEnv:
    """The invocation's CliEnv (set by the global options callback)."""
    env = ctx.find_object(CliEnv)
    if env is None:  # a sub-app invoked on its own, as in some tests
        env = CliEnv()
        ctx.obj = env
    return env


def finish(code: int) -> Any:
    """End a command with an exit code of the contract."""
    if code:
        raise typer.Exit(int(code))
    return None


def open_runtime(env: CliEnv, command: str, *, writing: bool = False, **extra: Any) -> Any:
    """The Runtime (database, run record, lock, controller, client) of a command."""
    from bmctl.runtime import Runtime

    extra.setdefault("clock", env.clock)
    extra.setdefault("transport", env.transport)
    settings = extra.pop("settings", None) or env.settings
    return Runtime(settings=settings, command=command, argv=env.argv, writing=writing,
                   warn=env.warn, debug=env.debug if env.verbose else None, notice=env.info, **extra)
