# FROZEN COPY, for bench/rate.py only: the pre-ledger traffic design (token buckets with
# `burst` and a `jitter` allowance), `git show 8e18beb:bmctl/traffic/buckets.py` (byte for byte below this header).
# bmctl no longer uses it; it is kept so the benchmark can run it side by side with the
# budget ledger. Do not edit: it must stay what shipped.
"""Token buckets on a monotonic clock: the arithmetic behind "never over the limit".

Why capacity ``burst`` and rate ``(limit - burst + 1) / (window + jitter)`` guarantee that no
half-open interval ``[t, t + W)`` with ``W = window + jitter`` ever holds more than ``limit``
sends: every send spends one real token and the level never exceeds ``burst``. Take the sends
``s_0 <= ... <= s_n`` inside one such interval. Just before ``s_0`` the level is at most
``burst``; until ``s_n`` at most ``rate * (s_n - s_0) < rate * W = limit - burst + 1`` tokens
flow in (strictly less, because ``s_n - s_0 < W`` in a half-open interval), and the level after
``s_n`` is still >= 0. So ``n + 1 <= burst + rate * (s_n - s_0) < limit + 1``, i.e. at most
``limit`` sends. The ``+ 1`` in the rate is exactly what the half-open interval buys.

Implementation: the level is kept as a "theoretical arrival time" ``tat`` (the moment the bucket
would be full again, GCRA style) instead of a float level refilled in small steps, so rounding
never accumulates. ``level(now) = burst - max(0, tat - now) / interval`` and a spend is
``tat = max(tat, now) + interval``. Two float guards keep the proof true in floating point:
``FLOAT_GUARD`` seconds are added to the window when deriving the rate, and spends are admitted
up to ``EPSILON`` seconds early so that sleeping "exactly until the token" can never stall on a
last-ulp rounding (``FLOAT_GUARD`` > ``EPSILON`` + rounding, so the bound above still holds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from bmctl.traffic.clock import Clock, SystemClock

#: Seconds added to ``window + jitter`` when deriving the rate (10 µs: invisible in throughput,
#: far above float rounding of wall-clock timestamps around 1.8e9 s).
FLOAT_GUARD = 1e-5
#: Spends may happen this many seconds before the exact token time (see module docstring).
EPSILON = 1e-9

DEFAULT_JITTER = 0.05
DEFAULT_HORIZON = 60.0

_INF = math.inf


@dataclass(frozen=True)
class LimitSpec:
    """A published limit: ``limit`` sends per ``window`` seconds; ``penalty`` = block after a 429."""

    limit: int
    window: float
    burst: int = 1
    penalty: float = 10.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0:
            raise ValueError(f"limit must be >= 1 and window > 0 (got {self.limit}/{self.window})")
        if not 1 <= self.burst <= self.limit:
            raise ValueError(f"burst must be between 1 and limit (got {self.burst})")
        if self.penalty < 0:
            raise ValueError("penalty must be >= 0")


DEFAULT_LIMITS: Mapping[str, LimitSpec] = {
    "global": LimitSpec(200, 10.0),
    "catalog": LimitSpec(20, 10.0),
    "competitors": LimitSpec(2, 1.0),
    "listing_writes": LimitSpec(2000, 3600.0),
}


def _monotonic_source(clock: Clock | Callable[[], float] | None) -> Callable[[], float]:
    if clock is None:
        return SystemClock().monotonic
    monotonic = getattr(clock, "monotonic", None)
    if monotonic is not None:
        return monotonic  # type: ignore[no-any-return]
    if callable(clock):
        return clock
    raise TypeError("clock must be a Clock or a callable returning monotonic seconds")


class TokenBucket:
    """One rate limit as a token bucket: capacity ``burst``, refill ``(limit-burst+1)/(window+jitter)``."""

    __slots__ = (
        "name", "spec", "jitter", "horizon", "capacity", "rate", "interval", "span",
        "reserved", "paused_until", "_tat", "_lead", "_now",
    )

    def __init__(
        self,
        name: str,
        spec: LimitSpec,
        jitter: float = DEFAULT_JITTER,
        clock: Clock | Callable[[], float] | None = None,
        *,
        horizon: float = DEFAULT_HORIZON,
    ) -> None:
        if jitter < 0:
            raise ValueError("jitter must be >= 0")
        self.name = name
        self.spec = spec
        self.jitter = jitter
        self.horizon = horizon
        self.capacity = spec.burst
        #: The interval that must hold at most ``limit`` sends.
        self.span = spec.window + jitter
        self.interval = (self.span + FLOAT_GUARD) / (spec.limit - spec.burst + 1)
        self.rate = 1.0 / self.interval
        self.reserved = 0
        self.paused_until = -_INF
        self._tat = -_INF  # full bucket
        # A spend is possible while tat - now <= (burst - 1) * interval.
        self._lead = (spec.burst - 1) * self.interval
        self._now = _monotonic_source(clock)

    def __repr__(self) -> str:
        return (f"TokenBucket({self.name!r}, tokens={self.tokens:.3f}/{self.capacity}, "
                f"reserved={self.reserved}, rate={self.rate:.4f}/s)")

    # -- level ------------------------------------------------------------------------------
    def level_at(self, now: float) -> float:
        """Tokens at monotonic time ``now`` (negative while a carried-over debt is paid)."""
        ahead = self._tat - now
        return self.capacity - ahead * self.rate if ahead > 0 else float(self.capacity)

    @property
    def tokens(self) -> float:
        """Tokens now (never above ``burst``; may be negative after :meth:`charge`)."""
        return self.level_at(self._now())

    def refill(self) -> float:
        """Bring the level up to date and return it (the level is computed lazily from time)."""
        return self.level_at(self._now())

    # -- admission ----------------------------------------------------------------------------
    def ready_at(self, claims: int | None = None) -> float:
        """Monotonic time from which one token can be spent leaving ``claims`` reservations
        covered within the horizon (``None``: the current reservations); ``inf`` when only a
        release or a reserved spend can make it possible. Pauses are included."""
        if claims is None:
            claims = self.reserved
        # Coverage after the spend: tokens - 1 + rate * horizon >= claims.
        extra = claims * self.interval - self.horizon
        if extra <= 0:
            t = self._tat - self._lead
        elif extra > self._lead:
            return _INF  # even a full bucket could not cover the claims
        else:
            t = self._tat - self._lead + extra
        p = self.paused_until
        return t if t > p else p

    def can_spend(self) -> bool:
        """A token is here, the bucket is not paused, and the reservations stay covered."""
        return self.ready_at(self.reserved) <= self._now() + EPSILON

    def time_until_token(self) -> float:
        """Seconds until :meth:`can_spend` turns true (pause and reservations included; may be inf)."""
        return max(0.0, self.ready_at(self.reserved) - self._now())

    def spend(self) -> None:
        """Spend one token now; raises ``RuntimeError`` when :meth:`can_spend` is false."""
        if not self.can_spend():
            raise RuntimeError(f"bucket {self.name!r}: no token to spend")
        self.spend_at(self._now())

    def spend_at(self, now: float) -> None:
        """Spend one token at ``now`` without checks (the controller checked already)."""
        tat = self._tat
        self._tat = (tat if tat > now else now) + self.interval

    # -- reservations -------------------------------------------------------------------------
    def can_reserve(self, n: int = 1) -> bool:
        """``tokens - reserved + rate * horizon >= n``: ``n`` more claims are coverable in the horizon."""
        return self.tokens - self.reserved + self.rate * self.horizon >= n - EPSILON

    def reserve(self, n: int = 1) -> None:
        """Claim ``n`` future tokens; raises ``RuntimeError`` when they cannot be covered."""
        if not self.can_reserve(n):
            raise RuntimeError(f"bucket {self.name!r}: cannot reserve {n}")
        self.reserved += n

    def can_spend_reserved(self) -> bool:
        """A reserved spend needs a real token and no pause, nothing more."""
        return self.reserved > 0 and self.ready_at(0) <= self._now() + EPSILON

    def spend_reserved(self) -> None:
        """Spend one token for a reservation and drop that claim."""
        if not self.can_spend_reserved():
            raise RuntimeError(f"bucket {self.name!r}: no token for the reservation")
        self.spend_at(self._now())
        self.reserved -= 1

    def release_reservation(self, n: int = 1) -> None:
        """Give ``n`` claims back unused."""
        self.reserved = max(0, self.reserved - n)

    # -- penalties and carry-over ---------------------------------------------------------------
    def pause(self, until: float) -> None:
        """No spend before monotonic time ``until`` (429 penalty); pauses only ever extend."""
        if until > self.paused_until:
            self.paused_until = until

    def is_paused(self) -> bool:
        """True while a 429 pause is running."""
        return self._now() < self.paused_until

    def charge(self, send_times_wall: Iterable[float], now_wall: float) -> None:
        """Carry a previous run's budget over: replay its sends of the last ``window + jitter``
        (wall-clock UTC seconds) from a full bucket, allowing debt, onto the monotonic clock.

        Call before this bucket's first spend. Sends older than the span can share no interval
        with a send from now on, so they are ignored; sends "in the future" (clock skew) count
        as now. Times are replayed relative to ``now_wall`` to keep float rounding small."""
        horizon = -(self.span + FLOAT_GUARD)
        rel = sorted(min(0.0, s - now_wall) for s in send_times_wall if s - now_wall > horizon)
        if not rel:
            return
        tat = -_INF
        interval = self.interval
        for r in rel:  # no admission check: what was sent was sent, debt is allowed
            tat = (tat if tat > r else r) + interval
        mono = self._now() + tat
        if mono > self._tat:
            self._tat = mono


def make_buckets(
    limits: Mapping[str, LimitSpec] | None = None,
    *,
    clock: Clock | Callable[[], float] | None = None,
    jitter: float = DEFAULT_JITTER,
    horizon: float = DEFAULT_HORIZON,
) -> dict[str, TokenBucket]:
    """One bucket per limit (defaults: :data:`DEFAULT_LIMITS`), all on the same clock."""
    specs = DEFAULT_LIMITS if limits is None else limits
    return {name: TokenBucket(name, spec, jitter, clock, horizon=horizon)
            for name, spec in specs.items()}
