"""Fault injection for the sandbox: what to break, how often, parsed from a compact spec.

Spec string (``--faults``), comma-separated ``key=value`` pairs, all optional::

    latency=50,jitter=25,error=0.05,timeout=0.01,drop=0.01,malformed=0.01,waf=0.01,challenge=0.01,hang=30

- ``latency`` / ``jitter``: milliseconds; each answer takes ``latency ± jitter`` (uniform), half
  before the request reaches the marketplace and half on the way back.
- ``error`` (5xx), ``timeout`` (no answer), ``drop`` (connection closed without answer),
  ``malformed`` (truncated JSON body), ``waf`` (Cloudflare's HTML 403 with ``cf-ray``),
  ``challenge`` (the JSON ``bot-need-challenge`` 403): probabilities in [0, 1] whose sum is ≤ 1.
- ``hang``: seconds the HTTP server holds a timed-out request before closing it (default 30).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

# The order in which one uniform draw is split between the kinds (fixed so runs replay).
KINDS = ("waf", "challenge", "drop", "timeout", "error", "malformed")


@dataclass(frozen=True)
class Faults:
    """Fault settings: latency in milliseconds, the rest probabilities per request."""

    latency: float = 0.0
    jitter: float = 0.0
    error: float = 0.0
    timeout: float = 0.0
    drop: float = 0.0
    malformed: float = 0.0
    waf: float = 0.0
    challenge: float = 0.0
    hang: float = 30.0

    def __post_init__(self) -> None:
        for name in ("latency", "jitter", "hang"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        for name in KINDS:
            value = getattr(self, name)
            if not math.isfinite(value) or not 0 <= value <= 1:
                raise ValueError(f"{name} must be a probability between 0 and 1, got {value!r}")
        if sum(getattr(self, k) for k in KINDS) > 1 + 1e-9:
            raise ValueError("the fault probabilities add up to more than 1")

    def draw(self, rng: random.Random) -> tuple[float, str | None]:
        """One request's fate: (latency in seconds, fault kind or None), two rng draws."""
        spread = rng.uniform(-self.jitter, self.jitter)
        latency = max(0.0, self.latency + spread) / 1000.0
        u = rng.random()
        edge = 0.0
        for kind in KINDS:
            edge += getattr(self, kind)
            if u < edge:
                return latency, kind
        return latency, None


NO_FAULTS = Faults()
_NAMES = {f.name for f in fields(Faults)}


def parse_faults(text: str) -> Faults:
    """Parse ``latency=50,jitter=25,error=0.05,...``; a bad spec raises ValueError saying why."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, raw = part.partition("=")
        key = key.strip().lower()
        if not sep:
            raise ValueError(f"{part!r} is not key=value (e.g. error=0.05)")
        if key not in _NAMES:
            raise ValueError(f"unknown fault {key!r} (known: {', '.join(sorted(_NAMES))})")
        if key in values:
            raise ValueError(f"{key!r} given twice")
        raw = raw.strip()
        percent = raw.endswith("%") and key not in ("latency", "jitter", "hang")
        try:
            number = float(raw[:-1]) / 100 if percent else float(raw)
        except ValueError:
            raise ValueError(f"{key}={raw!r}: not a number") from None
        values[key] = number
    return Faults(**values)
