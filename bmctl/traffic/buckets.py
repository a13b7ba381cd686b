"""A published limit and its face in the budget ledger: the seed's bucket vocabulary.

:class:`Bucket` is what the controller admits through (``can_spend``, ``spend``,
``can_reserve``, ``reserve``, ``spend_reserved``, ``release_reservation``, plus ``settle`` once
the answer is in and ``pause`` after a 429). Where the slots live — this process's memory or a
database every process shares — is the ledger's business (``bmctl.traffic.ledger``); the rule
that decides is :func:`bmctl.traffic.admission.ready_time`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol, Sequence

from bmctl.traffic.admission import hold_span, needed_expiries, ready_time, send_times, sends_within

#: Admission may happen this many seconds before the exact ready time (float rounding of
#: "sleep exactly until the slot frees" must never stall the loop).
EPSILON = 1e-9

SLOT = "slot"
CLAIM = "claim"


@dataclass(frozen=True)
class LimitSpec:
    """A published limit: ``limit`` requests per ``window`` seconds; ``penalty`` = pause after a
    429 without ``Retry-After``."""

    limit: int
    window: float
    penalty: float = 10.0

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window <= 0:
            raise ValueError(f"limit must be >= 1 and window > 0 (got {self.limit}/{self.window})")
        if self.penalty < 0:
            raise ValueError("penalty must be >= 0")


DEFAULT_LIMITS: Mapping[str, LimitSpec] = {
    "global": LimitSpec(200, 10.0),
    "catalog": LimitSpec(20, 10.0),
    "competitors": LimitSpec(2, 1.0),
    "listing_writes": LimitSpec(2000, 3600.0),
}


class BudgetExhausted(RuntimeError):
    """A spend or reservation was attempted without a free slot (a caller's bug, not input)."""


class BucketStore(Protocol):
    """The slots of one bucket, as a ledger keeps them (expiries on the ledger's clock)."""

    def held(self, now: float) -> int:
        """Slots and claims whose expiry is after ``now``."""
        ...

    def earliest(self, k: int, now: float) -> Sequence[float]:
        """The ``k`` earliest expiries after ``now``, ascending."""
        ...

    def paused_until(self) -> float: ...

    def take(self, kind: str, expires: float, now: float) -> Any:
        """Hold a new slot or claim until ``expires``; returns its key."""
        ...

    def convert(self, key: Any, expires: float, now: float) -> bool:
        """Turn a live claim into a slot held until ``expires``; False when the claim is gone."""
        ...

    def is_live(self, key: Any, now: float) -> bool:
        """The key is a claim, not yet spent, released or lapsed."""
        ...

    def settle(self, key: Any, expires: float) -> None:
        """The request was answered (or given up): hold its slot until ``expires``."""
        ...

    def drop(self, key: Any) -> None: ...

    def pause(self, until: float) -> None: ...


class Claim:
    """A reservation: one slot of one bucket held for a request that does not exist yet."""

    __slots__ = ("bucket", "key")

    def __init__(self, bucket: "Bucket", key: Any) -> None:
        self.bucket = bucket
        self.key = key

    def __repr__(self) -> str:
        return f"Claim({self.bucket.name!r}, {self.key!r})"


class Bucket:
    """One limit, admitted through the ledger that holds its slots.

    ``in_flight_bound``: the longest a request may stay unanswered (the transport's timeouts):
    a slot whose answer never comes is held that long plus the window. ``claim_ttl``: a
    reservation lapses after this long (a dead process's claims free themselves)."""

    __slots__ = ("name", "spec", "limit", "span", "_store", "_now", "_in_flight_span", "_claim_ttl")

    def __init__(self, name: str, spec: LimitSpec, store: BucketStore, now: Callable[[], float], *,
                 in_flight_bound: float, claim_ttl: float) -> None:
        self.name = name
        self.spec = spec
        self.limit = spec.limit
        self.span = hold_span(spec.window)
        self._store = store
        self._now = now
        self._in_flight_span = in_flight_bound + self.span
        self._claim_ttl = claim_ttl

    def __repr__(self) -> str:
        return f"Bucket({self.name!r}, held={self.held()}/{self.limit})"

    # -- reading ------------------------------------------------------------------------------
    def held(self) -> int:
        """Slots and claims held now."""
        return self._store.held(self._now())

    @property
    def paused_until(self) -> float:
        """End of the running 429 pause (``-inf`` when none)."""
        return self._store.paused_until()

    def ready_at(self, need: int = 1, using: Claim | None = None, now: float | None = None) -> float:
        """When ``need`` slots can be taken (``using``: a live claim of this bucket counts as
        one of them); ``inf`` when never. ``now``: the instant the caller decides at."""
        store = self._store
        if now is None:
            now = self._now()
        if using is not None and store.is_live(using.key, now):
            need -= 1
        if need <= 0:
            return ready_time(self.limit, 0, (), 0, now, store.paused_until())
        held = store.held(now)
        over = held + need - self.limit
        earliest = store.earliest(over, now) if 0 < over <= held else ()
        return ready_time(self.limit, held, earliest, need, now, store.paused_until())

    def time_to_send(self, count: int, round_trip: float = 0.0) -> float:
        """Seconds until ``count`` more requests can all have been sent, from what the ledger
        holds now (a running pause included): for plans and deadlines."""
        now = self._now()
        store = self._store
        held = store.held(now)
        earliest = store.earliest(needed_expiries(self.limit, held, count), now)
        wait = send_times(self.limit, self.span, held, earliest, count, now, round_trip)
        return max(wait, store.paused_until() - now)

    def sends_within(self, seconds: float, round_trip: float = 0.0) -> int:
        """How many requests this bucket can still send in the next ``seconds``."""
        now = self._now()
        store = self._store
        held = store.held(now)
        earliest = store.earliest(needed_expiries(self.limit, held, None), now)
        start = max(now, store.paused_until())
        return sends_within(self.limit, self.span, held, earliest, now + seconds - start, start,
                            round_trip)

    # -- the seed's vocabulary ----------------------------------------------------------------
    def can_spend(self) -> bool:
        """A slot is free (claims count as held) and the bucket is not paused."""
        return self.ready_at(1) <= self._now() + EPSILON

    def spend(self) -> Any:
        """Take a slot for a request sent now; returns the key to :meth:`settle` it with."""
        if not self.can_spend():
            raise BudgetExhausted(f"bucket {self.name!r}: no free slot")
        now = self._now()
        return self._store.take(SLOT, now + self._in_flight_span, now)

    def can_reserve(self, n: int = 1) -> bool:
        """``n`` more slots are free now, to be held as claims."""
        return self.ready_at(n) <= self._now() + EPSILON

    def reserve(self) -> Claim:
        """Claim one slot for a later request (:meth:`spend_reserved` or
        :meth:`release_reservation`)."""
        if not self.can_reserve(1):
            raise BudgetExhausted(f"bucket {self.name!r}: no slot to reserve")
        now = self._now()
        return Claim(self, self._store.take(CLAIM, now + self._claim_ttl, now))

    def can_spend_reserved(self, claim: Claim) -> bool:
        """The claim's slot can be used now (not paused; a lapsed claim needs a free slot)."""
        return self.ready_at(1, claim) <= self._now() + EPSILON

    def spend_reserved(self, claim: Claim) -> Any:
        """Send on a claimed slot (or on a free one if the claim lapsed); returns the slot key."""
        if not self.can_spend_reserved(claim):
            raise BudgetExhausted(f"bucket {self.name!r}: no slot for the reservation")
        now = self._now()
        if self._store.convert(claim.key, now + self._in_flight_span, now):
            return claim.key
        return self._store.take(SLOT, now + self._in_flight_span, now)

    def release_reservation(self, claim: Claim) -> None:
        """Give a claim back unused (idempotent)."""
        self._store.drop(claim.key)

    # -- after the send -----------------------------------------------------------------------
    def settle(self, key: Any, answered_at: float) -> None:
        """The answer arrived (or the attempt was given up) at ``answered_at``: the slot stays
        held one window (and the guard) past it."""
        self._store.settle(key, answered_at + self.span)

    def pause(self, until: float) -> None:
        """No send before ``until`` (429 penalty); pauses only ever extend."""
        self._store.pause(until)

    def is_paused(self) -> bool:
        return self._now() < self._store.paused_until()
