"""Shell completion for bash, zsh and fish: the scripts (``--show-completion``), their
installation (``--install-completion``), the answers to the shell's requests (the
``_BMCTL_COMPLETE`` variable) and listing / run ids offered from the local database.

Imported only when completion is used (a completion request, or the two options): no other
command pays for it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

from bmctl.cli.main import COMPLETE_VAR, SHELLS

PROG = "bmctl"
_MAX_OFFERED = 200
_RECENT_LOG_ROWS = 5000  # rate_limit_logs has no listing_id index: look at its tail only


def _completion_classes() -> Any:
    """click's completion registry, with Typer's bash/zsh/fish classes registered in it."""
    from typer._completion_classes import completion_init

    try:
        from typer._click import shell_completion
    except ImportError:  # Typer releases that depend on the click package
        from click import shell_completion  # type: ignore[no-redef]
    completion_init()
    return shell_completion


def detect_shell(environ: Any = None) -> str:
    """The user's shell from $SHELL (bash, zsh or fish), else a usage error saying what to give."""
    from bmctl.errors import UsageError

    shell = Path((environ if environ is not None else os.environ).get("SHELL", "")).name
    if shell not in SHELLS:
        raise UsageError(f"cannot tell which shell to complete for (SHELL={shell or 'unset'}): "
                         f"give one of {', '.join(SHELLS)}, e.g. bmctl --install-completion bash")
    return shell


def _checked(shell: str) -> str:
    from bmctl.errors import UsageError

    shell = shell or detect_shell()
    if shell not in SHELLS:
        raise UsageError(f"unsupported shell {shell!r}: use one of {', '.join(SHELLS)}")
    return shell


def completion_script(cli: Any, shell: str) -> str:
    """The script that makes ``shell`` complete bmctl (it calls bmctl with _BMCTL_COMPLETE)."""
    comp_cls = _completion_classes().get_completion_class(_checked(shell))
    comp = comp_cls(cli, {}, PROG, COMPLETE_VAR)
    # The template itself: Typer's bash source() first runs `bash` to check its version.
    return str(comp.source_template % comp.source_vars()).strip()


def install_completion(shell: str) -> Path:
    """Write the completion script where ``shell`` loads it from (and, for bash and zsh, the
    line of the rc file that loads it); the path written."""
    from typer import _completion_shared as shared

    from bmctl.errors import ConfigError

    shell = _checked(shell)
    installers: dict[str, Callable[..., Path]] = {
        "bash": shared.install_bash, "zsh": shared.install_zsh, "fish": shared.install_fish}
    try:
        return installers[shell](prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell)
    except OSError as error:  # a read-only home, a directory where the rc file should be
        raise ConfigError(f"cannot install {shell} completion: {error}") from None


def answer_request(cli: Any, instruction: str, out: Any, err: Any) -> int:
    """Answer the shell's request ``instruction`` (``complete_bash`` as the scripts send it,
    or click's ``bash_complete``; ``source`` likewise) on ``out``; the exit code."""
    first, _, second = instruction.partition("_")
    shell, action = (first, second) if first in SHELLS else (second, first)
    if shell not in SHELLS or action not in ("complete", "source"):
        err.write(f"bmctl: error: unknown completion request {COMPLETE_VAR}={instruction!r} "
                  f"(expected e.g. complete_bash, complete_zsh, complete_fish)\n")
        return 2
    if action == "source":
        out.write(completion_script(cli, shell) + "\n")
        return 0
    comp_cls = _completion_classes().get_completion_class(shell)
    try:
        text = comp_cls(cli, {}, PROG, COMPLETE_VAR).complete()
    except Exception:  # noqa: BLE001 - a completion never shows a traceback in a prompt
        return 0
    if text:
        out.write(text + "\n")
    return 0


# --- ids from the local database ------------------------------------------------------------

_LISTING_QUERIES = (
    "select distinct listing_id from price_changes where substr(listing_id, 1, ?) = ?",
    "select distinct listing_id from probes where substr(listing_id, 1, ?) = ?",
    f"select distinct listing_id from (select listing_id from rate_limit_logs order by id desc "
    f"limit {_RECENT_LOG_ROWS}) where substr(listing_id, 1, ?) = ?",
)
_RUN_QUERIES = (
    "select id from runs where substr(id, 1, ?) = ? order by started_at desc",
)


def _database_path(ctx: Any) -> Path | None:
    """The database this command line would use: its --db, else its --config / environment."""
    root = ctx.find_root() if ctx is not None else None
    params = root.params if root is not None else {}
    if params.get("db"):
        return Path(str(params["db"])).expanduser()
    from bmctl.config import load_settings

    return load_settings(params.get("config")).db_path


def ids_from_database(path: Path | None, queries: Iterable[str], incomplete: str) -> list[str]:
    """Distinct values the ``queries`` find starting with ``incomplete``, read-only; nothing on
    any error (no database, an old schema, a locked file)."""
    if path is None or not path.is_file():
        return []
    import sqlite3

    found: dict[str, None] = {}
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=0.2)
    except sqlite3.Error:
        return []
    try:
        for query in queries:
            try:
                rows = conn.execute(query, (len(incomplete), incomplete)).fetchall()
            except sqlite3.Error:  # a table this database does not have (yet)
                continue
            found.update((str(row[0]), None) for row in rows if row[0])
            if len(found) >= _MAX_OFFERED:
                break
    finally:
        conn.close()
    return list(found)[:_MAX_OFFERED]


def _completer(queries: Iterable[str]) -> Callable[[Any, Any, str], list[str]]:
    def complete(ctx: Any, param: Any, incomplete: str) -> list[str]:
        try:
            given = ctx.params.get(param.name) if ctx is not None else None
            already = set(given) if isinstance(given, (list, tuple)) else set()
            return [value for value in ids_from_database(_database_path(ctx), queries, incomplete)
                    if value not in already]
        except Exception:  # noqa: BLE001 - a bad config or database: just no completions
            return []

    return complete


# Parameter name -> what completes it.
COMPLETERS: dict[str, Callable[[Any, Any, str], list[str]]] = {
    "ids": _completer(_LISTING_QUERIES),
    "listing_id": _completer(_LISTING_QUERIES),
    "listing": _completer(_LISTING_QUERIES),
    "run": _completer(_RUN_QUERIES),
    "run_id": _completer(_RUN_QUERIES),
}


def attach_completers(command: Any) -> Any:
    """Make the id parameters of ``command`` (and of its subcommands) complete from the
    database, unless they already complete another way."""
    for param in getattr(command, "params", ()):
        completer = COMPLETERS.get(str(param.name))
        if completer is not None and getattr(param, "_custom_shell_complete", None) is None:
            param._custom_shell_complete = completer
    for sub in getattr(command, "commands", {}).values():
        attach_completers(sub)
    return command
