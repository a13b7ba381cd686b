"""``bmctl doctor``: run the checks of :mod:`bmctl.commands.doctor` and print them, one line
each (a list for people, rows for ``--format json|ndjson|csv``)."""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING, Sequence

import typer

from bmctl.cli.common import cli_env, finish
from bmctl.cli.env import sgr

if TYPE_CHECKING:
    from bmctl.commands.doctor import Check

# status -> (symbol, plain-text symbol, ANSI colour)
_MARKS = {
    "ok": ("✓", "OK", "32"),
    "fail": ("✗", "FAIL", "31"),
    "warn": ("!", "WARN", "33"),
    "skipped": ("-", "SKIP", "2"),
}


def doctor(ctx: typer.Context) -> None:
    """Check the set-up, one line per check with a hint; exit 1 if any failed.

    The checks: config file and its permissions, token (masked), User-Agent, host reachable
    and token accepted (one cheap read, logged and inside the rate limits), database writable,
    migrations current, open probes left for bmctl recover, the run lock, the budget ledger.

    Exit 0 when nothing failed (warnings and skipped checks do not fail), 1 otherwise. A list
    on a terminal (and with --format table); JSON in pipes, like every command; json, ndjson
    and csv give rows of check, status (ok, warn, fail, skipped), detail and hint.

    Example: bmctl doctor --format json
    """
    from bmctl.commands.doctor import FIELDS, DoctorRequest, exit_code
    from bmctl.commands.doctor import doctor as core

    env = cli_env(ctx)
    checks = core(DoctorRequest(config=env.config, overrides=env.overrides, argv=env.argv,
                                clock=env.clock, transport=env.transport,
                                debug=env.debug if env.verbose else None))
    if env.format != "table":
        from bmctl.cli.output import Output

        with Output(env, FIELDS) as out:
            out.emit_all(check.to_json() for check in checks)
    else:
        env.stdout.write(render(checks, width=env.width(), color=env.stdout_color,
                                unicode=env.unicode()))
        env.stdout.flush()
    finish(exit_code(checks))


def render(checks: Sequence["Check"], *, width: int = 80, color: bool = False,
           unicode: bool = True) -> str:
    """The human list: ``✓ name  detail``, then ``  hint: ...`` under a check that is not ok;
    every line at most ``width`` columns (a long detail wraps under itself)."""
    name_width = max(len(check.name) for check in checks)
    mark_width = 1 if unicode else 4
    indent = " " * (mark_width + 1 + name_width + 2)
    width = max(width, len(indent) + 20)
    lines: list[str] = []
    for check in checks:
        symbol, plain, colour = _MARKS.get(check.status, ("?", "????", "0"))
        mark = (symbol if unicode else plain).ljust(mark_width)
        head = f"{mark} {check.name.ljust(name_width)}  "
        body = _wrap(check.detail, width, head, indent) or [head.rstrip()]
        if color:  # after wrapping: escape codes take no columns
            body[0] = sgr(mark, colour) + body[0][len(mark):]
        lines += body
        if check.hint and check.status != "ok":
            lines += _wrap(check.hint, width, "  hint: ", " " * 8)
    return "\n".join(lines) + "\n"


def _wrap(text: str, width: int, first: str, rest: str) -> list[str]:
    # Paths have no spaces: a long one is cut where the line ends rather than overflow it.
    return textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False)
