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
