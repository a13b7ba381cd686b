"""One object carrying the streams, terminal state and global options of an invocation."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from bmctl.errors import UsageError

if TYPE_CHECKING:
    from bmctl.config import Settings

FORMATS = ("table", "json", "ndjson", "csv")


def check_format(chosen: str) -> str:
    """``chosen`` if it is an output format; bad usage (exit 2) otherwise."""
    if chosen not in FORMATS:
        raise UsageError(f"unknown format {chosen!r} (use one of: {', '.join(FORMATS)})")
    return chosen


@dataclass
class CliEnv:
    """The environment of one invocation, created once at entry: streams, TTY state, argv, the
    global options and the settings they give, and the clock and transport every request goes
    through (None: the system clock and real HTTP). Tests inject a simulated world here."""

    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    config: str | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    format_option: str | None = None
    verbose: bool = False
    quiet: bool = False
    argv: list[str] = field(default_factory=list)
    clock: Any = None
    transport: Any = None
    _settings: "Settings | None" = None

    def now_wall(self) -> float:
        """Wall-clock seconds (UTC) of this invocation's clock."""
        import time

        return self.clock.wall() if self.clock is not None else time.time()

    def system_clock(self) -> Any:
        """The clock requests and the ledger run on."""
        if self.clock is None:
            from bmctl.traffic.clock import SystemClock

            self.clock = SystemClock()
        return self.clock

    @property
    def stdout_is_tty(self) -> bool:
        return _isatty(self.stdout)

    @property
    def stderr_is_tty(self) -> bool:
        return _isatty(self.stderr)

    @property
    def color(self) -> bool:
        """Colour only on a terminal, and never when NO_COLOR is set (any value)."""
        return self.stderr_is_tty and "NO_COLOR" not in os.environ

    @property
    def format(self) -> str:
        """``--format``, else ``table`` on a terminal and ``json`` in pipes and files."""
        return check_format(self.format_option or ("table" if self.stdout_is_tty else "json"))

    @property
    def settings(self) -> "Settings":
        """The merged configuration, read once on first use."""
        if self._settings is None:
            from bmctl.config import load_settings

            self._settings = load_settings(self.config, self.overrides, warn=self.warn)
        return self._settings

    def secrets(self) -> list[str]:
        """Strings that must never be shown (the token), if the settings could be read."""
        if self._settings is not None and self._settings.token:
            return [self._settings.token]
        return []

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def warn(self, message: str) -> None:
        """A warning on stderr (kept even with --quiet: warnings matter in cron mail)."""
        self.stderr.write(self.redact(message) + "\n")
        self.stderr.flush()

    def info(self, message: str) -> None:
        """Progress and context on stderr, silenced by --quiet."""
        if not self.quiet:
            self.stderr.write(self.redact(message) + "\n")
            self.stderr.flush()

    def debug(self, message: str) -> None:
        """Detail shown only with --verbose."""
        if self.verbose:
            self.stderr.write(self.redact(message) + "\n")
            self.stderr.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
