"""Durations written the way operators write them: ``90s``, ``15m``, ``2h``, ``7d``, ``1w``."""

from __future__ import annotations

import re

from bmctl.errors import UsageError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)


def duration_seconds(text: str, *, unit_required: bool = False) -> float | None:
    """Seconds in ``text`` (``15m``; a bare number is seconds unless ``unit_required``), or None
    when it is not a duration."""
    match = _PATTERN.match(text or "")
    if not match or (unit_required and not match.group(2)):
        return None
    return float(match.group(1)) * _UNITS[(match.group(2) or "s").lower()]


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``; a bare number means seconds. Bad input is a UsageError naming it."""
    seconds = duration_seconds(text)
    if seconds is None:
        raise UsageError(f"bad {what} {text!r}: use a number with s, m, h, d or w (e.g. 15m, 2h, 7d)")
    if seconds <= 0:
        raise UsageError(f"bad {what} {text!r}: must be greater than zero")
    return seconds


def parse_since(text: str, now_wall: float) -> float:
    """``30s``/``15m``/``2h``/``7d``/``1w`` ago, or an ISO date/date-time (naive = UTC) -> epoch seconds.

    Bad input raises ``UsageError`` naming the value."""
    value = (text or "").strip()
    ago = duration_seconds(value, unit_required=True)  # a bare number would read as a year
    if ago is not None:
        return now_wall - ago
    if value and value[0].isdigit() and len(value) >= 10:  # at least YYYY-MM-DD
        try:
            from bmctl.store.db import parse_utc

            return parse_utc(value)
        except ValueError:
            pass
    raise UsageError(
        f"invalid time {text!r}: use a duration ago (30s, 15m, 2h, 7d, 1w)"
        " or an ISO date/time in UTC (2026-11-28 or 2026-11-28T01:53:00Z)"
    )
