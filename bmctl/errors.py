"""The exception hierarchy and the exit codes of the contract, mapped in one place."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes (docs/REFERENCE.md, "Exit codes")."""

    OK = 0
    ITEMS_FAILED = 1
    BAD_INPUT = 2
    AUTH = 3
    LIMITED = 4
    LOCKED = 5
    INTERRUPTED = 130


class BmctlError(Exception):
    """Base of every error bmctl reports to a user: one clear line, plus optional detail."""

    exit_code: ExitCode = ExitCode.ITEMS_FAILED

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class UsageError(BmctlError):
    """Bad usage or bad input: nothing was sent."""

    exit_code = ExitCode.BAD_INPUT


class ConfigError(UsageError):
    """A configuration file, variable or option that cannot be used."""


class RunStopped(BmctlError):
    """An error that ends the whole run, not one item: a batch stops at the first instead of
    trying each remaining item, and names the probes it leaves open (``bmctl recover``)."""


class AuthError(RunStopped):
    """Authentication or permission refused (401/403, the WAF included)."""

    exit_code = ExitCode.AUTH


class HostUnreachable(RunStopped):
    """No connection to the API host at all (refused, or its name does not resolve): nothing
    reached it, and every other request would meet the same (exit 1)."""

    exit_code = ExitCode.ITEMS_FAILED


class ItemError(BmctlError):
    """One item (listing, market, request) failed; the run goes on with the others."""

    exit_code = ExitCode.ITEMS_FAILED


class LimitStop(BmctlError):
    """Rate limits or a deadline stopped the run before every item was done."""

    exit_code = ExitCode.LIMITED


class BudgetUnavailable(LimitStop):
    """The budget ledger's store could not be reached in time: nothing was sent (rerun resumes)."""


class LockHeld(BmctlError):
    """Another bmctl run holds the exclusive run lock."""

    exit_code = ExitCode.LOCKED


class DatabaseUnusable(BmctlError):
    """The database cannot be used as it is: ``database PATH <problem>; <hint>``, the raw
    SQLite or OS error as detail (--verbose). ``kind`` names the problem for callers."""

    def __init__(self, path: str, kind: str, problem: str, hint: str, *, detail: str | None = None) -> None:
        super().__init__(f"database {path} {problem}; {hint}", detail=detail)
        self.path = path
        self.kind = kind
        self.problem = problem
        self.hint = hint


class DatabaseProblem(DatabaseUnusable, UsageError):
    """Corrupt, read-only, a directory or not creatable: nothing was sent (exit 2)."""


class DatabaseLocked(DatabaseUnusable, LockHeld):
    """Another program held the database past the busy timeout: like the run lock (exit 5)."""


class Interrupted(BmctlError):
    """SIGINT/SIGTERM: open probes were restored before exiting."""

    exit_code = ExitCode.INTERRUPTED


def exit_code_for(error: BaseException) -> ExitCode:
    """The one mapping from how a command ended to the contract's exit code, used both for the
    process and for its run record: bmctl's errors carry theirs; Ctrl-C, SIGTERM and a closed
    output pipe (the reader went away: stop like SIGTERM) are 130; the CLI framework's exits
    and usage errors carry a code (2 for bad usage); anything else is a failure (1)."""
    if isinstance(error, BmctlError):
        return error.exit_code
    if isinstance(error, (KeyboardInterrupt, BrokenPipeError)):
        return ExitCode.INTERRUPTED
    code = getattr(error, "exit_code", None)  # click/Typer: Exit(code), UsageError (2), ...
    if isinstance(code, int) and not isinstance(code, bool):
        return ExitCode(code) if code in ExitCode._value2member_map_ else ExitCode.ITEMS_FAILED
    return ExitCode.ITEMS_FAILED


def items_exit_code(failures: list[int]) -> ExitCode:
    """The exit code of a batch from its failed items' codes: 0 when none failed, 4 when only
    rate limits failed them (rerunning resumes), else 1."""
    if not failures:
        return ExitCode.OK
    return ExitCode.LIMITED if all(code == ExitCode.LIMITED for code in failures) else ExitCode.ITEMS_FAILED
