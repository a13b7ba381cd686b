"""The click that Typer runs on: vendored inside recent Typer releases, a separate package before.

Using Typer's own classes keeps one set of exceptions (and no extra import at start-up)."""

from typer import Abort, Exit

try:
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # Typer releases that depend on the click package
    from click.exceptions import Abort as _ClickAbort
    from click.exceptions import ClickException, UsageError  # type: ignore[assignment]
    from click.exceptions import Exit as _ClickExit

    NoArgsIsHelpError = ()  # type: ignore[assignment,misc]
    EXITS: tuple[type[BaseException], ...] = (Exit, _ClickExit)
    ABORTS: tuple[type[BaseException], ...] = (Abort, _ClickAbort)
else:
    EXITS = (Exit,)
    ABORTS = (Abort,)

__all__ = ["ABORTS", "EXITS", "ClickException", "NoArgsIsHelpError", "UsageError"]
