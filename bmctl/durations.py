"""Durations written the way operators write them: ``90s``, ``15m``, ``2h``, ``7d``, ``1w``."""

from __future__ import annotations

import re

from bmctl.errors import UsageError

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")


def parse_duration(text: str, what: str = "duration") -> float:
    """Seconds in ``text``; a bare number means seconds. Bad input is a UsageError naming it."""
    match = _PATTERN.match(text or "")
    if not match:
        raise UsageError(f"bad {what} {text!r}: use a number with s, m, h, d or w (e.g. 15m, 2h, 7d)")
    seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    if seconds <= 0:
        raise UsageError(f"bad {what} {text!r}: must be greater than zero")
    return seconds
