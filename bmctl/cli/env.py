"""One object carrying the streams, terminal state and global options of an invocation."""

from __future__ import annotations

import os
import sys
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, TextIO

from bmctl.errors import UsageError

if TYPE_CHECKING:  # typing.Protocol costs start-up time: only type checkers read this
    from typing import Protocol

    from bmctl.config import Settings

    class LiveLine(Protocol):
        """A line redrawn in place on stderr (the progress line): it steps aside while anything
        else is written to the terminal, so output never lands in the middle of it."""

        def clear(self) -> None: ...

        def draw(self) -> None: ...

FORMATS = ("table", "json", "ndjson", "csv")


def check_format(chosen: str) -> str:
    """``chosen`` if it is an output format; bad usage (exit 2) otherwise."""
    if chosen not in FORMATS:
        raise UsageError(f"unknown format {chosen!r} (use one of: {', '.join(FORMATS)})")
    return chosen


def terminal_width(stream: TextIO, given: int | None = None) -> int:
    """Columns of the terminal behind ``stream``: ``given``, else $COLUMNS, else the terminal's
    own size (whatever $TERM says: TERM=dumb is no reason to assume 80), else 80."""
    if given:
        return given
    try:
        from_env = int(os.environ.get("COLUMNS", ""))
        if from_env > 0:
            return from_env
    except ValueError:
        pass
    try:
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):  # io.UnsupportedOperation is both
        return 80


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
    wide: bool = False
    argv: list[str] = field(default_factory=list)
    columns: int | None = None  # the terminal's width, when a test fixes it
    clock: Any = None
    transport: Any = None
    _settings: "Settings | None" = None
    live: LiveLine | None = None
    terminal_lock: Any = field(default_factory=threading.RLock)

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
        """Escape codes on stderr: only on a terminal, never with NO_COLOR (any value) or on a
        dumb terminal (TERM=dumb, which says nothing of its width: see ``terminal_width``)."""
        return self.stderr_is_tty and _styled()

    @property
    def stdout_color(self) -> bool:
        """Escape codes (bold headers, coloured marks) on stdout: the same rule."""
        return self.stdout_is_tty and _styled()

    def unicode(self, stream: TextIO | None = None) -> bool:
        """Whether ``stream`` (stdout by default) can write box-drawing and check marks; on a
        latin-1 or ASCII terminal, tables, bars and marks fall back to ASCII (charts are left out)."""
        encoding = getattr(stream if stream is not None else self.stdout, "encoding", None) or "utf-8"
        try:
            "─━✓✗┤●".encode(encoding)
        except (UnicodeEncodeError, LookupError):
            return False
        return True

    def width(self, stream: TextIO | None = None) -> int:
        """Columns of the terminal behind ``stream`` (stdout by default)."""
        return terminal_width(stream if stream is not None else self.stdout, self.columns)

    @contextmanager
    def terminal(self) -> Iterator[None]:
        """Hold the terminal: the live line, if one is drawn, steps aside and comes back after."""
        with self.terminal_lock:
            live = self.live
            if live is not None:
                live.clear()
            try:
                yield
            finally:
                if live is not None and self.live is live:
                    live.draw()

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
        self._say(message)

    def info(self, message: str) -> None:
        """Progress and context on stderr, silenced by --quiet."""
        if not self.quiet:
            self._say(message)

    def debug(self, message: str) -> None:
        """Detail shown only with --verbose."""
        if self.verbose:
            self._say(message)

    def _say(self, message: str) -> None:
        text = self.redact(message)
        if self.stderr_is_tty:  # the terminal would cut words at its edge: wrap between them
            text = wrap_lines(text, self.width(self.stderr))
        with self.terminal():
            self.stderr.write(text + "\n")
            self.stderr.flush()


def sgr(text: str, code: str) -> str:
    """``text`` in an SGR style (``1`` bold, ``31`` red...); callers decide whether to style
    at all (``CliEnv.color`` / ``stdout_color``)."""
    return f"\x1b[{code}m{text}\x1b[0m"


def _styled() -> bool:
    return "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def wrap_lines(text: str, width: int) -> str:
    """Each line of ``text`` wrapped between words to ``width``, continuations indented."""
    if all(len(line) <= width for line in text.split("\n")):
        return text
    import textwrap

    return "\n".join(
        "\n".join(textwrap.wrap(line, width=width, subsequent_indent="  ", break_long_words=False,
                               break_on_hyphens=False) or [""])
        for line in text.split("\n"))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
