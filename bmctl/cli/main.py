"""The ``bmctl`` Typer application: global options, command registration, error mapping."""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Optional, Sequence

import typer
from typer.core import TyperGroup

from bmctl import __version__
from bmctl.cli.clicklib import ABORTS, EXITS, ClickException, NoArgsIsHelpError
from bmctl.cli.env import FORMATS, CliEnv, check_format
from bmctl.errors import BmctlError, ExitCode, exit_code_for

COMPLETE_VAR = "_BMCTL_COMPLETE"  # set by the completion scripts when the shell asks bmctl
_COMPLETION_OPTIONS = ("--install-completion", "--show-completion")
SHELLS = ("bash", "zsh", "fish")  # the shells bmctl completes in

# Global options may also follow the subcommand (`bmctl competitors ID --format json`):
# they are hoisted in front of it before click parses. Which ones they are is read from the
# group's own declaration (global_options below), never listed twice.
_NEGATIVE_NUMBER = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def global_option_names(params: list[Any]) -> tuple[set[str], set[str]]:
    """(options that take a value, flags) among a command's declared parameters."""
    with_value: set[str] = set()
    flags: set[str] = set()
    for param in params:
        names = [*getattr(param, "opts", ()), *getattr(param, "secondary_opts", ())]
        if getattr(param, "is_eager", False):  # --version, --help: they act where they are
            continue
        (flags if getattr(param, "is_flag", False) else with_value).update(n for n in names if n.startswith("-"))
    return with_value, flags


def hoist_global_options(args: list[str], names: tuple[set[str], set[str]] | None = None) -> list[str]:
    """Move global options found after the subcommand name to before it."""
    with_value, flags = names if names is not None else _global_names()
    head: list[str] = []
    index = 0
    while index < len(args):  # up to the subcommand name
        arg = args[index]
        if arg == "--" or not arg.startswith("-") or arg == "-":
            break
        head.append(arg)
        if arg in with_value and index + 1 < len(args):
            head.append(args[index + 1])
            index += 1
        index += 1
    hoisted: list[str] = []
    rest: list[str] = []
    negatives: list[str] = []  # `update-price ID -5`: a (bad) price, not an option
    while index < len(args):
        arg = args[index]
        if arg == "--":
            rest.extend(args[index:])
            break
        if _NEGATIVE_NUMBER.match(arg) and rest and not rest[-1].startswith("-"):
            negatives.append(arg)
            index += 1
            continue
        name = arg.split("=", 1)[0]
        if name in flags:
            hoisted.append(arg)
        elif name in with_value:
            hoisted.append(arg)
            if "=" not in arg and index + 1 < len(args):
                hoisted.append(args[index + 1])
                index += 1
        else:
            rest.append(arg)
        index += 1
    if negatives:
        rest += negatives if "--" in rest else ["--", *negatives]
    return head + hoisted + rest


def _env_of(ctx: Any) -> CliEnv:
    obj = ctx.find_object(CliEnv) if ctx is not None else None
    return obj if obj is not None else CliEnv()


def report_error(env: CliEnv, error: BaseException) -> ExitCode:
    """Print one clear line (and the detail with --verbose); return the exit code."""
    if type(error).__module__ == "sqlite3":  # a query met a corrupt page, a full disk: name the database
        from bmctl.store.db import problem_of_last_database

        named = problem_of_last_database(error)
        if named is not None:
            return report_error(env, named)
    if isinstance(error, BmctlError):
        env.stderr.write(env.redact(f"bmctl: error: {error.message}") + "\n")
        if error.detail and env.verbose:
            env.stderr.write(env.redact(error.detail) + "\n")
        return exit_code_for(error)
    if isinstance(error, ClickException):
        env.stderr.write(env.redact(f"bmctl: error: {error.format_message()}") + "\n")
        return exit_code_for(error)
    env.stderr.write(
        env.redact(f"bmctl: internal error: {type(error).__name__}: {error}")
        + ("\n" if env.verbose else " (run with --verbose for details)\n")
    )
    if env.verbose:
        import traceback

        env.stderr.write(env.redact("".join(traceback.format_exception(error))))
    return exit_code_for(error)


class BmctlGroup(TyperGroup):
    """Loads commands lazily, hoists global options and maps every error to one line and the
    contract's exit code."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        args = _shell_values(list(args))
        return super().parse_args(ctx, hoist_global_options(args, global_option_names(self.params)))

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands:
            command = load_command(cmd_name, global_params=self.params)
            if command is None:
                return None
            self.commands[cmd_name] = command
        return self.commands[cmd_name]

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [(name, _shorten(help_text, limit)) for name, (_, _, help_text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if (args and not ctx.resilient_parsing and not args[0].startswith("-")
                and args[0] not in COMMANDS):
            from bmctl.cli.common import unknown_command  # only on this error path

            raise unknown_command(ctx, args[0], COMMANDS)
        return super().resolve_command(ctx, args)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> Any:
        contexts: list[Any] = []
        if os.environ.get(COMPLETE_VAR):  # the shell asking what to complete (see --show-completion)
            from bmctl.cli.completion import answer_request

            code = answer_request(self, os.environ[COMPLETE_VAR], sys.stdout, sys.stderr)
            if standalone_mode:
                sys.exit(code)
            return code
        # The arguments this invocation was given, for its run record (not sys.argv: an
        # in-process call, as in tests, has its own).
        self.invoked_args = list(sys.argv[1:] if args is None else args)
        try:
            with self.make_context(prog_name or "bmctl", list(self.invoked_args), **extra) as ctx:
                contexts.append(ctx)
                self.invoke(ctx)
            code = 0
        except EXITS as done:
            code = exit_code_for(done)
        except ABORTS:
            code = ExitCode.INTERRUPTED
        except NoArgsIsHelpError as shown:
            shown.show()  # bare `bmctl`: the help, on stderr
            code = ExitCode.BAD_INPUT
        except KeyboardInterrupt as stop:
            _env_of(contexts[0] if contexts else None).stderr.write("bmctl: interrupted\n")
            code = exit_code_for(stop)
        except BrokenPipeError as closed:
            code = exit_code_for(closed)
            _silence_stdout()
            _env_of(contexts[0] if contexts else None).stderr.write("bmctl: output closed (broken pipe)\n")
        except Exception as error:  # noqa: BLE001 - the last line of defence against tracebacks
            code = report_error(_env_of(contexts[0] if contexts else None), error)
            if isinstance(error, BmctlError) and isinstance(error.__context__, BrokenPipeError):
                _silence_stdout()
        if standalone_mode:
            sys.exit(int(code))
        return int(code)


def _shell_values(args: list[str]) -> list[str]:
    """``--install-completion`` / ``--show-completion`` take an optional shell: when none
    follows, an empty value (the shell of $SHELL)."""
    for index, arg in enumerate(args):
        if arg == "--" or not arg.startswith("-"):
            break
        if arg in _COMPLETION_OPTIONS and (index + 1 == len(args) or args[index + 1].startswith("-")):
            return [*args[: index + 1], "", *args[index + 1:]]
    return args


def _completion_option(ctx: Any, param: Any, value: Optional[str]) -> None:
    """--install-completion / --show-completion: do it and exit."""
    if value is None or ctx.resilient_parsing:
        return
    from bmctl.cli.completion import completion_script, install_completion

    if param.name == "show_completion":
        typer.echo(completion_script(ctx.command, value))
    else:
        path = install_completion(value)
        typer.echo(f"installed bmctl completion in {path}; it takes effect in a new shell", err=True)
    raise typer.Exit(0)


def _silence_stdout() -> None:
    """Point stdout at /dev/null: the interpreter's final flush must not fail on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # not a real file (tests): nothing to flush at exit
        pass


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 10)].rsplit(" ", 1)[0] + "..."


app = typer.Typer(
    cls=BmctlGroup,
    name="bmctl",
    help="Reprice Back Market listings safely: Backbox competition, price changes and "
    "Dip -> Peek -> Peak probes inside the published rate limits.\n\n"
    "Example: bmctl competitors 3fa85f64-5717-4562-b3fc-2c963f66afa6 --format json",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain click help: rendering it with rich would double start-up
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"bmctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def global_options(
    ctx: typer.Context,
    config: Optional[str] = typer.Option(None, "--config", metavar="FILE", help="Config file (else $BMCTL_CONFIG, ./bmctl.toml, ~/.config/bmctl/bmctl.toml)."),
    market: Optional[str] = typer.Option(None, "--market", metavar="MARKET", help="Market (Accept-Language code), e.g. fr-fr, en-gb, ja-jp."),
    env: Optional[str] = typer.Option(None, "--env", metavar="ENV", help="prod or preprod."),
    base_url: Optional[str] = typer.Option(None, "--base-url", metavar="URL", help="API base URL, overriding market and env (sandbox, proxies)."),
    db: Optional[str] = typer.Option(None, "--db", metavar="PATH", help="SQLite database path."),
    format: Optional[str] = typer.Option(None, "--format", metavar="FORMAT", help=f"Output: {', '.join(FORMATS)} (default: table on a terminal, json otherwise)."),
    lock_timeout: Optional[float] = typer.Option(None, "--lock-timeout", metavar="SECONDS", help="Seconds a writing command waits for another run's lock (default 0)."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="More detail on stderr (never the token)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only data and warnings."),
    wide: bool = typer.Option(False, "--wide", "--no-trunc", help="Tables on a terminal: every column and full ids, even wider than the terminal."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    install_completion: Optional[str] = typer.Option(
        None, "--install-completion", metavar="[bash|zsh|fish]", callback=_completion_option, is_eager=True,
        expose_value=False, help="Install shell completion (default: the shell of $SHELL) and exit."),
    show_completion: Optional[str] = typer.Option(
        None, "--show-completion", metavar="[bash|zsh|fish]", callback=_completion_option, is_eager=True,
        expose_value=False, help="Print the shell completion script (to install it by hand) and exit."),
) -> None:
    """Global options shared by every command."""
    given = ctx.obj if isinstance(ctx.obj, CliEnv) else None  # a caller's clock and transport
    ctx.obj = CliEnv(
        clock=given.clock if given is not None else None,
        transport=given.transport if given is not None else None,
        config=config,
        overrides={"market": market, "env": env, "base_url": base_url, "db": db,
                   "lock_timeout": lock_timeout},
        format_option=format,
        verbose=verbose,
        quiet=quiet,
        wide=wide,
        argv=list(getattr(ctx.command, "invoked_args", sys.argv[1:])),
    )
    if format is not None:
        check_format(format)  # now, before any command does anything


# Commands load when they are invoked: `bmctl --help` lists them from this table without
# importing a single command module (tests check it against each command's own help).
COMMANDS: dict[str, tuple[str, str, str]] = {
    "competitors": ("bmctl.cli.market", "competitors", "Backbox data per market for each listing: our price, min price, price to win, winner price, winning or not."),
    "listings": ("bmctl.cli.market", "listings", "The seller's listings, every page."),
    "update-price": ("bmctl.cli.prices", "update_price", "Set one price (or many with --file)."),
    "history": ("bmctl.cli.prices", "history", "The price changes bmctl made, newest first, with the reason (update, dip, peak, undo, restore): one listing's, or every listing's with --since/--run."),
    "report": ("bmctl.cli.report", "report", "What repricing earned, per listing and market."),
    "probe": ("bmctl.cli.probe", "probe", "Dip -> Peek -> Peak: win the Backbox at the highest price the market and your bounds allow."),
    "recover": ("bmctl.cli.probe", "recover", "Put every listing a killed run left in an open probe back at its original price, and close the probe (every writing run also does this first)."),
    "demo": ("bmctl.cli.demo", "demo", "The main job end to end on the embedded sandbox: seeds a demo catalogue, probes it with live progress, prints the results and the log statistics."),
    "logs": ("bmctl.cli.logs", "app", "Inspect the request log (list is the default)."),
    "config": ("bmctl.cli.config_cmd", "app", "Create, show and locate the configuration file."),
    "doctor": ("bmctl.cli.doctor", "doctor", "Check the set-up, one line per check with a hint; exit 1 if any failed."),
    "sandbox": ("bmctl.cli.sandbox", "app", "The embedded sandbox marketplace: serve it, or print a catalogue to seed it with."),
}


def load_command(name: str, global_params: Sequence[Any] = ()) -> Any:
    """Import a command's module and build its click command (None for an unknown name): its
    help shows words for values (``ID...``, ``SECONDS``) and ends with the ``global_params``
    it accepts; a group suggests the closest command to a typo."""
    entry = COMMANDS.get(name)
    if entry is None:
        return None
    import importlib

    from bmctl.cli.common import SuggestingGroup
    from bmctl.cli.help import apply_words, global_options_line
    target = getattr(importlib.import_module(entry[0]), entry[1])
    command: Any
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)  # a group even with one command (sandbox serve)
    else:
        single = typer.Typer(rich_markup_mode=None, add_completion=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    if type(command) is TyperGroup:  # a plain Typer group: same object, suggesting typos
        command.__class__ = SuggestingGroup
    if os.environ.get(COMPLETE_VAR):  # the shell asking: id completers from the database
        from bmctl.cli.completion import attach_completers

        attach_completers(command)
    return apply_words(command, global_options_line(global_params) if global_params else None)


def run() -> None:
    """Console-script entry point."""
    app()


def _global_names() -> tuple[set[str], set[str]]:
    """The global options as the app declares them (for callers without the built group)."""
    return global_option_names(typer.main.get_command(app).params)
