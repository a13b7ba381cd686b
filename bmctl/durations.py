"""Durations written the way operators write them: ``90s``, ``15m``, ``2h``, ``7d``, ``1w``, and
compounds such as ``1h30m`` or ``1d12h`` (largest unit first, each unit once)."""

from __future__ import annotations

import re

from bmctl.errors import UsageError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_ORDER = "wdhms"
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhdw])", re.IGNORECASE)


def duration_seconds(text: str) -> float | None:
    """Seconds in ``text`` (``15m``, ``1h30m``), or None when it is not a duration (a bare
    number included: it has no unit)."""
    value = (text or "").strip()
    total, pos, last = 0.0, 0, -1
    for match in _PART.finditer(value):
        unit = match.group(2).lower()
        if match.start() != pos or _ORDER.index(unit) <= last:
            return None
        total += float(match.group(1)) * _UNITS[unit]
        pos, last = match.end(), _ORDER.index(unit)
    return total if pos and pos == len(value) else None


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text`` (``10m``, ``1h30m``; a bare number is refused: it has no unit). Bad
    input is a UsageError naming it."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise UsageError(f"bad {what} {text!r}: use a number with s, m, h, d or w"
                         " (e.g. 90s, 15m, 2h, 1h30m, 7d)")
    if seconds <= 0:
        raise UsageError(f"bad {what} {text!r}: must be greater than zero")
    return seconds


def parse_since(text: str, now_wall: float) -> float:
    """``30s``/``15m``/``2h``/``1h30m``/``7d``/``1w`` ago, or an ISO date/date-time (naive = UTC) -> epoch seconds.

    Bad input raises ``UsageError`` naming the value."""
    value = (text or "").strip()
    ago = duration_seconds(value)  # a bare number is refused: it would read as a year
    if ago is not None:
        return now_wall - ago
    if value and value[0].isdigit() and len(value) >= 10:  # at least YYYY-MM-DD
        try:
            from bmctl.store.db import parse_utc

            return parse_utc(value)
        except ValueError:
            pass
    raise UsageError(
        f"invalid time {text!r}: use a duration ago (30s, 15m, 2h, 1h30m, 7d, 1w)"
        " or an ISO date/time in UTC (2026-11-28 or 2026-11-28T01:53:00Z)"
    )
