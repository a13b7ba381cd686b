"""Live progress on stderr for batch commands (only on a terminal, never with --quiet)."""

from __future__ import annotations

import threading
import time
from typing import Callable

from bmctl.cli.env import CliEnv, sgr

TICK_SECONDS = 1.0  # the elapsed time moves even while a long wait holds every answer back


class Progress:
    """A progress line counting outcomes, redrawn in place with a carriage return (no escape
    sequence but the label's bold, and none with NO_COLOR); a no-op off a terminal. While it
    is shown, everything else written to the terminal goes through ``env.terminal()``, which
    clears the line first and draws it again after."""

    def __init__(self, env: CliEnv, total: int, label: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.env = env
        self.enabled = env.stderr_is_tty and not env.quiet and total > 0
        self.total = total
        self.label = label
        self.counts: dict[str, int] = {}
        self.clock = clock
        self.started = clock()
        self._drawn = 0  # cells of the line on screen now (0: nothing to clear)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if self.enabled:
            env.live = self
            with env.terminal_lock:
                self.draw()
            self._ticker = threading.Thread(target=self._tick, name="bmctl-progress", daemon=True)
            self._ticker.start()

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def advance(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        # The total is an estimate when probes find more markets than expected: grow with it.
        self.total = max(self.total, self.done)
        if self.enabled:
            with self.env.terminal_lock:
                self.draw()

    def render(self, width: int) -> str:
        """The line's text, at most ``width`` cells: label, bar, done/total, elapsed, counts."""
        elapsed = int(self.clock() - self.started)
        clock = f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        fraction = f"{self.done}/{self.total}"
        counts = " ".join(f"{name} {count}" for name, count in sorted(self.counts.items()))
        room = width - len(self.label) - len(fraction) - len(clock) - len(counts) - 4
        bar_size = max(0, min(30, room))
        filled = round(bar_size * self.done / self.total) if self.total else 0
        full, empty = self._bar_glyphs()
        bar = full * filled + empty * (bar_size - filled)
        text = " ".join(part for part in (self.label, bar, fraction, clock, counts) if part)
        return text[:width]

    def draw(self) -> None:
        """Write the line over the previous one (callers hold ``env.terminal_lock``)."""
        if not self.enabled:
            return
        width = self.env.width(self.env.stderr) - 1  # never the last cell: it would wrap
        text = self.render(width)
        shown = text
        if self.env.color:
            shown = text.replace(self.label, sgr(self.label, "1"), 1)
        pad = " " * max(0, self._drawn - len(text))
        self.env.stderr.write("\r" + shown + pad)
        self.env.stderr.flush()
        self._drawn = len(text)

    def clear(self) -> None:
        """Blank the line and return to its start (callers hold ``env.terminal_lock``)."""
        if self._drawn:
            self.env.stderr.write("\r" + " " * self._drawn + "\r")
            self.env.stderr.flush()
            self._drawn = 0

    def close(self) -> None:
        """Leave the final line on screen and move below it."""
        if not self.enabled or self._stop.is_set():
            return
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self.env.terminal_lock:
            self.draw()
            self.env.stderr.write("\n")
            self.env.stderr.flush()
            self._drawn = 0
            if self.env.live is self:
                self.env.live = None

    def _bar_glyphs(self) -> tuple[str, str]:
        return ("━", "─") if self.env.unicode(self.env.stderr) else ("#", "-")

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            with self.env.terminal_lock:
                if not self._stop.is_set():
                    self.draw()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
