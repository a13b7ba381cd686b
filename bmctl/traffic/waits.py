"""Saying when requests wait long: once per wait, when it starts, with what and for how long.

The controller reports two kinds of wait here: a 429 pause it just started (:meth:`WaitNotices.
paused`), and the head of a queue whose bucket frees a slot only later (:meth:`WaitNotices.
waiting`: a full bucket, or a pause another process started). Only waits of at least
:data:`LONG_WAIT` are announced; a wait that continues one already announced (the same pause,
or steady throttling on the same bucket) is not announced again.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

from bmctl.traffic.buckets import Bucket

#: Waits at least this long (seconds) are announced; shorter ones, like the 2/s competitors
#: bucket's ordinary spacing, say nothing.
LONG_WAIT = 2.0
#: A wait on a bucket starting within this many seconds of the end of the last one continues it
#: (steady throttling is announced once, not once per window).
COALESCE = 30.0

Say = Callable[[str], None]


def duration_text(seconds: float) -> str:
    """``10 s`` (rounded up), ``12 min``, ``1 h 5 min`` (to the nearest minute): a wait as an
    operator reads it."""
    if seconds < 90:
        return f"{max(1, math.ceil(seconds - 1e-6))} s"
    minutes = int(seconds / 60 + 0.5)
    if minutes < 90:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def window_text(window: float) -> str:
    """``second``, ``minute``, ``hour``, else ``10 s``: the window of a limit."""
    names = {1.0: "second", 60.0: "minute", 3600.0: "hour", 86400.0: "day"}
    return names.get(window) or f"{window:g} s"


class WaitNotices:
    """Announces long waits on ``notice`` (once each) and on ``debug`` every distinct one; what
    it has to say waits in :attr:`pending` until :meth:`flush`."""

    def __init__(self, notice: Say | None, debug: Say | None = None) -> None:
        self.notice = notice
        self.debug = debug
        self._paused: dict[str, float] = {}  # bucket -> end of the pause last announced
        self._budget: dict[str, float] = {}  # bucket -> end of the budget wait last seen
        #: (text, important) not said yet: notices, and with ``important`` False debug lines.
        self.pending: list[tuple[str, bool]] = []

    def paused(self, buckets: Iterable[Bucket], what: str, seconds: float, retry_after: bool,
               now: float) -> None:
        """A 429 on ``what`` (a route) paused ``buckets`` for ``seconds`` from ``now``."""
        buckets = list(buckets)
        if seconds < LONG_WAIT or not buckets:
            return
        end = now + seconds
        # Several requests answered 429 within one pause (they were on the wire together):
        # one notice. A pause that starts after the last one ended is news.
        fresh = any(self._paused.get(b.name, -math.inf) <= now for b in buckets)
        for b in buckets:
            if self._paused.get(b.name, -math.inf) < end:
                self._paused[b.name] = end
        if not fresh:
            return
        names = ", ".join(b.name for b in buckets)
        noun = "bucket" if len(buckets) == 1 else "buckets"
        why = "Retry-After" if retry_after else "no Retry-After: the default pause"
        self._say(f"bmctl: 429 on {what}: pausing {noun} {names} for {duration_text(seconds)} "
                  f"({why})")

    def waiting(self, bucket: Bucket, ready: float, now: float) -> None:
        """The next request of a queue needs ``bucket``, which lets it go only at ``ready``."""
        if not math.isfinite(ready) or ready - now < LONG_WAIT:
            return
        name = bucket.name
        if ready <= self._paused.get(name, -math.inf) + 1e-6:
            return  # the pause already announced
        wait = duration_text(ready - now)
        if bucket.paused_until >= ready - 1e-6:
            # Paused, and not by this process: another bmctl run (or an earlier one) got a 429.
            self._paused[name] = ready
            self._say(f"bmctl: {name} paused after a 429 in another bmctl run: waiting {wait}")
            return
        if ready - now > bucket.span + 1e-6:
            # No answered request holds a slot longer than the window: this expiry is a
            # request still on the wire (held as if it never got an answer) or a claim. Its
            # answer or release comes first; the wait is looked at again then.
            return
        last = self._budget.get(name, -math.inf)
        self._budget[name] = ready  # its end may move either way (other processes' slots)
        if now <= last:
            return  # the same wait, seen again as the loop woke for something else
        spec = bucket.spec
        text = (f"bmctl: {name} budget in use ({spec.limit} requests per "
                f"{window_text(spec.window)}): waiting {wait} for a slot")
        self._say(text, important=now > last + COALESCE)

    def flush(self) -> None:
        """Say what is pending: the controller calls this once out of its ledger transaction
        (a slow stderr must not hold the database)."""
        pending, self.pending = self.pending, []
        for text, important in pending:
            say = self.notice if important else self.debug
            if say is not None:
                say(text)

    def _say(self, text: str, important: bool = True) -> None:
        self.pending.append((text, important))
