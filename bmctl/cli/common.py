"""Small pieces shared by the command modules."""

from __future__ import annotations

from typing import Any, Iterable

import typer
from typer.core import TyperGroup

from bmctl.cli.env import CliEnv


def unknown_command(ctx: Any, name: str, commands: Iterable[str]) -> Exception:
    """The one error for a word that names no command of a group (exit 2), suggesting the
    closest command when there is one (``bmctl logs lst`` -> did you mean 'list'?)."""
    from difflib import get_close_matches

    from bmctl.errors import UsageError

    where = f" for {ctx.command_path}" if ctx is not None and ctx.parent is not None else ""
    matches = get_close_matches(name, list(commands), n=1)
    if matches:
        return UsageError(f"no such command {name!r}{where}. Did you mean {matches[0]!r}?")
    path = ctx.command_path if ctx is not None else "bmctl"
    return UsageError(f"no such command {name!r}{where}; see {path} --help")


class SuggestingGroup(TyperGroup):
    """A group that answers an unknown command with the closest one (``unknown_command``)."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if (args and not ctx.resilient_parsing and not args[0].startswith("-")
                and self.get_command(ctx, args[0]) is None):
            raise unknown_command(ctx, args[0], self.list_commands(ctx))
        return super().resolve_command(ctx, args)


class DefaultListGroup(SuggestingGroup):
    """A group whose bare invocation (or leading options) runs its ``list`` command; a first
    word that is no command is an error (the group itself takes no arguments)."""

    default_command = "list"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # While completing, a bare group offers its commands rather than running `list`.
        bare = not args and not ctx.resilient_parsing
        if bare or (args and args[0].startswith("-") and args[0] not in ("-h", "--help")):
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        """Its commands, and (for ``-...``) the options of ``list`` too: they work here."""
        results = list(super().shell_complete(ctx, incomplete))
        default = self.get_command(ctx, self.default_command)
        if incomplete.startswith("-") and default is not None:
            seen = {item.value for item in results}
            results += [item for item in default.shell_complete(ctx, incomplete) if item.value not in seen]
        return results


def cli_env(ctx: typer.Context) -> CliEnv:
    """The invocation's CliEnv (set by the global options callback)."""
    env = ctx.find_object(CliEnv)
    if env is None:  # a sub-app invoked on its own, as in some tests
        env = CliEnv()
        ctx.obj = env
    return env


def one_listing_id(env: CliEnv, given: str, command: str) -> str:
    """The one listing id a command takes, ``-`` reading it from stdin; exit 2 otherwise."""
    from bmctl.errors import UsageError
    from bmctl.pricing.targets import listing_ids

    ids = listing_ids([given], env.stdin)
    if len(ids) != 1:
        raise UsageError(f"{command} takes one listing id; stdin held {len(ids)}")
    return ids[0]


def run_id_option(value: str | None) -> str | None:
    """``--run``'s callback: a run id as bmctl makes them (see bmctl logs runs), else exit 2."""
    if value is None:
        return None
    from bmctl.store.runs import validate_run_id

    return validate_run_id(value)


def market_filter(env: CliEnv) -> str | None:
    """The market given on the command line (or in the environment), as a filter of what the
    database holds; None, not the configured default, when none was given: such views cover
    every market."""
    market = env.overrides.get("market")
    if market is None:
        return None
    from bmctl.api.markets import get_market

    return get_market(market).code


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
