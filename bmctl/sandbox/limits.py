"""The published rate limits as sliding windows, with Cloudflare's 10 s block on a breach.

Semantics (tests hold the sandbox to them):
- A request spends one slot in every scope it belongs to; it is admitted only when no scope is
  blocked and every scope has fewer than ``limit`` admitted requests in the last ``window``
  seconds (the half-open interval ``(now - window, now]``).
- A request that would exceed a scope's limit is refused with 429 and blocks that scope for
  ``block`` seconds: every request in the scope gets 429 until the block ends.
- Refused requests (429) are not counted: only admitted requests fill the windows, so a client
  that waits out the block starts again from what it really sent.
"""

from __future__ import annotations

import re
from collections import deque
from typing import Callable, Mapping

DEFAULT_LIMITS: dict[str, tuple[int, float]] = {
    "global": (200, 10.0),
    "catalog": (20, 10.0),
    "competitors": (2, 1.0),
    "listing_writes": (2000, 3600.0),
}
DEFAULT_BLOCK = 10.0

_COMPETITORS = re.compile(r"^/ws/backbox/v1/competitors/[^/]+/?$")
_LISTING_WRITE = re.compile(r"^/ws/listings(/[^/]+)?/?$")
_CATALOG = re.compile(r"^/ws/(catalog|category|products)")


def scopes_for(method: str, path: str, token: str) -> list[tuple[str, str]]:
    """The (scope, key) pairs a request spends: global per client, competitors per token."""
    scopes = [("global", "client")]
    if method == "GET" and _COMPETITORS.match(path):
        scopes.append(("competitors", token))
    if method == "POST" and _LISTING_WRITE.match(path):
        scopes.append(("listing_writes", token))
    if _CATALOG.match(path):
        scopes.append(("catalog", "client"))
    return scopes


class SlidingWindowLimiter:
    """Sliding-window counters per (scope, key), with a block after a breach."""

    def __init__(self, clock: Callable[[], float],
                 limits: Mapping[str, tuple[int, float]] = DEFAULT_LIMITS,
                 block: float = DEFAULT_BLOCK) -> None:
        for name, (limit, window) in limits.items():
            if limit < 1 or window <= 0:
                raise ValueError(f"limit {name!r} needs limit >= 1 and window > 0")
        self.clock = clock
        self.limits = dict(limits)
        self.block = block
        self._sent: dict[tuple[str, str], deque[float]] = {}
        self._blocked: dict[tuple[str, str], float] = {}

    def admit(self, scopes: list[tuple[str, str]]) -> str | None:
        """Admit and count the request, or return the name of the scope that refuses it."""
        now = self.clock()
        known = [s for s in scopes if s[0] in self.limits]
        for scope in known:
            if now < self._blocked.get(scope, float("-inf")):
                return scope[0]
        for scope in known:
            limit, window = self.limits[scope[0]]
            sent = self._sent.setdefault(scope, deque())
            while sent and sent[0] <= now - window:
                sent.popleft()
            if len(sent) >= limit:
                self._blocked[scope] = now + self.block
                return scope[0]
        for scope in known:
            self._sent[scope].append(now)
        return None

    def blocked_until(self, scope: str, key: str = "client") -> float | None:
        """When the block on a scope ends, or None when it is not blocked."""
        until = self._blocked.get((scope, key))
        return until if until is not None and self.clock() < until else None
