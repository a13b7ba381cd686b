"""The admission rule of the budget ledger, as pure functions of timestamps (no clock, no I/O).

**The anchored rule.** For a bucket of ``limit`` requests per ``window`` seconds, a request holds
one *slot* from the moment it is sent until ``window`` (plus a clock guard) after its answer was
received. Until an answer comes — and for good when none does (a timeout, a dropped
connection, a process that dies mid-request) — the slot is held until ``in_flight_bound +
window`` after the send. A request is admitted while fewer than ``limit`` slots are held. A
reservation (*claim*) is a slot held before its request exists.

**Why no server window ever counts more than ``limit`` arrivals.** The server counts request
``i`` at some moment ``a_i`` between its send ``s_i`` and its answer ``r_i``; a request that
got no answer is counted, if ever, within ``in_flight_bound`` of its send (the one assumption:
bmctl takes ``max(2 × timeout, 60 s)``, far beyond any server queue a timeout leaves behind).
Write ``r_i = s_i + in_flight_bound`` for those. Take any ``n`` requests that arrive within
one server window, ``t <= a_i < t + window`` (or ``<=``: the guard makes even a closed window
safe). Let ``s*`` be the latest of their sends. For every ``i``, ``s_i <= s*`` and its slot is
held until at least ``a_i + window + guard > t + window > a* >= s*``: all ``n`` slots were held
at ``s*``, so the last of them was admitted with ``n - 1`` others held, and ``n - 1 < limit``.
Nothing else is assumed: not the delay of answered requests, nor its spread, nor the order of
arrivals.

**Why no rule knowing only send and answer times admits more.** A new request sent at ``s``
can share a server window with request ``i`` whenever ``s - r_i < window`` (the adversary puts
``a_i = r_i`` and the new arrival at ``s``). So any ``limit`` requests with ``r_i > s - window``
(or still unanswered) could, with the new one, put ``limit + 1`` arrivals in one window: a safe
rule must refuse exactly when the anchored rule does.

**Clocks.** Expiries are on one monotonic clock shared by every process of the ledger (see
``bmctl.store.ledger`` for the SQLite one). The guard, ``max(1 ms, window × 1e-4)``, absorbs a
rate difference of up to 100 ppm between that clock and the server's (NTP keeps real clocks
within a few ppm) and the open/closed boundary of a server window.
"""

from __future__ import annotations

import heapq
import math
from typing import Sequence

INF = math.inf
#: Relative clock-rate difference (client vs server) the hold absorbs: 100 ppm.
CLOCK_RATE_TOLERANCE = 1e-4
#: Smallest guard in seconds: covers window boundaries and float rounding.
MIN_GUARD = 1e-3


def guard(window: float) -> float:
    """Seconds a slot is held beyond ``window`` after its answer (see the module docstring)."""
    return max(MIN_GUARD, window * CLOCK_RATE_TOLERANCE)


def hold_span(window: float) -> float:
    """How long after its answer (or give-up) a slot stays held."""
    return window + guard(window)


def ready_time(limit: int, held: int, earliest: Sequence[float], need: int, now: float,
               paused_until: float = -INF) -> float:
    """When ``need`` more slots can be taken from a bucket holding ``held`` slots at ``now``.

    ``earliest`` are the expiries of the held slots (claims included), ascending; only the first
    ``held + need - limit`` are read. Returns ``now`` when they fit at once, the expiry that
    frees enough of them otherwise, never before the end of a 429 pause, and ``inf`` when
    ``need`` exceeds the limit itself."""
    if need > limit:
        return INF
    over = held + need - limit
    at = now if over <= 0 else earliest[over - 1]
    return at if at > paused_until else paused_until


def _slot_starts(limit: int, held: int, earliest: Sequence[float], now: float) -> list[float]:
    """When each of the ``limit`` slots is next free: the free ones now, held ones at expiry."""
    free = max(0, limit - held)
    return [now] * free + [t if t > now else now for t in earliest[: limit - free]]


def send_times(limit: int, span: float, held: int, earliest: Sequence[float], count: int,
               now: float, round_trip: float = 0.0) -> float:
    """Seconds from ``now`` until the last of ``count`` back-to-back requests can be sent on a
    bucket holding ``held`` slots (``earliest``: their expiries ascending, as many as
    :func:`needed_expiries` says), each answered ``round_trip`` after its send: free slots go
    at once, held ones as they expire, and each slot is used again ``round_trip + span`` after
    its previous use. 0 when ``count <= 0``. Cost: O(count log limit)."""
    if count <= 0:
        return 0.0
    starts = _slot_starts(limit, held, earliest, now)
    free = limit - held
    if count <= free:
        return 0.0
    # The count-th smallest of the slots' progressions start + k * cycle: a heap merge (slots
    # whose first use is more than a cycle apart interleave, so index order is not time order).
    cycle = round_trip + span
    heapq.heapify(starts)
    at = now
    for _ in range(count):
        at = heapq.heapreplace(starts, starts[0] + cycle)
    return at - now


def sends_within(limit: int, span: float, held: int, earliest: Sequence[float], seconds: float,
                 now: float, round_trip: float = 0.0) -> int:
    """How many requests a bucket can send in the next ``seconds`` (same model as
    :func:`send_times`; ``earliest`` must hold every held expiry up to ``limit``)."""
    end = now + seconds
    cycle = round_trip + span
    total = 0
    for start in _slot_starts(limit, held, earliest, now):
        if start <= end:
            total += int((end - start) / cycle + 1e-9) + 1  # an exact multiple counts
    return total


def needed_expiries(limit: int, held: int, count: int | None) -> int:
    """How many of the earliest expiries :func:`send_times` reads for ``count`` requests
    (``None``: :func:`sends_within`, which reads them all)."""
    held = min(held, limit)
    if count is None:
        return held
    return max(0, min(held, count - (limit - held)))
