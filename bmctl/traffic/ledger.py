"""The budget ledger: one record of who holds which slot of which limit.

Every request is admitted through the ledger's :class:`~bmctl.traffic.buckets.Bucket` faces
under the anchored rule (``bmctl.traffic.admission``). Two ledgers implement the same
interface:

- :class:`MemoryLedger` — this process only, in memory: simulated time (tests, benchmarks) and
  the controller's overhead goal;
- ``bmctl.store.ledger.SqliteLedger`` — in the run's SQLite database, shared by every bmctl
  process that uses it (cron probes, an operator's ``competitors``, read-only commands too);
- ``bmctl.store.redis_ledger.RedisLedger`` — in Redis, shared by every bmctl process on every
  host that uses it; time is the Redis server's, and its transactions check at commit (a
  refused one raises :class:`AdmissionConflict`: nothing was taken, the controller decides again).

The controller brackets each admission decision in :meth:`Ledger.transaction` (one atomic
check-and-take across all the buckets a request needs), calls :meth:`Ledger.flush` before it
idles, and :meth:`Ledger.close` at the end of the run.
"""

from __future__ import annotations

import heapq
from contextlib import AbstractContextManager
from types import TracebackType
from typing import Any, Callable, Mapping

from bmctl.traffic.buckets import CLAIM, SLOT, Bucket, LimitSpec

#: Default longest wait for an answer, as the transport allows it (connect + read timeouts).
DEFAULT_IN_FLIGHT_BOUND = 60.0
#: Default life of a reservation (a dip lasts at most ``max_dip``; its exit then needs sending).
DEFAULT_CLAIM_TTL = 180.0


class AdmissionConflict(RuntimeError):
    """A transaction's takes were refused at commit: another host took the slots between the
    read and the take (a shared store checks at commit). Nothing was taken; decide again."""


class Ledger(AbstractContextManager["Ledger"]):
    """Buckets over one store of slots; subclasses provide the store and its transactions."""

    #: Whether the store may refuse a transaction's takes when it commits
    #: (:class:`AdmissionConflict`: another host was quicker); the controller then keeps what
    #: it needs to put the call back, which local stores never ask of it.
    refuses_at_commit = False

    def __init__(self, specs: Mapping[str, LimitSpec], now: Callable[[], float], *,
                 in_flight_bound: float = DEFAULT_IN_FLIGHT_BOUND,
                 claim_ttl: float = DEFAULT_CLAIM_TTL) -> None:
        self.now = now
        self.specs = dict(specs)
        self.in_flight_bound = in_flight_bound
        self.claim_ttl = claim_ttl
        self.buckets: dict[str, Bucket] = {
            name: Bucket(name, spec, self._store_for(name), now,
                         in_flight_bound=in_flight_bound, claim_ttl=claim_ttl)
            for name, spec in self.specs.items()
        }

    def _store_for(self, name: str) -> Any:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        """One atomic admission decision (checks and takes across buckets). Leaving it may raise
        :class:`AdmissionConflict` (nothing taken) on a ledger that checks at commit."""
        return _NO_TRANSACTION

    def flush(self) -> None:
        """Make settled slots, released claims and pauses visible to other processes."""

    def close(self) -> None:
        """Flush and let go of the store."""
        self.flush()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def describe(self) -> str:
        """Where the ledger lives, for ``bmctl logs stats`` and messages."""
        raise NotImplementedError

    def holders(self) -> list[dict[str, Any]]:
        """Per bucket and holder: slots and claims held now (``bmctl logs stats``)."""
        return []


class _NoTransaction(AbstractContextManager[None]):
    def __exit__(self, *exc: object) -> None:
        return None


_NO_TRANSACTION = _NoTransaction()


class MemoryBucketStore:
    """One bucket's slots in memory: settled slots in a heap of expiries (never touched again),
    in-flight slots and claims in a small dict by key."""

    __slots__ = ("_settled", "_open", "_paused", "_seq")

    def __init__(self) -> None:
        self._settled: list[float] = []
        self._open: dict[int, tuple[str, float]] = {}  # key -> (kind, expiry)
        self._paused = float("-inf")
        self._seq = 0

    def held(self, now: float) -> int:
        settled = self._settled
        while settled and settled[0] <= now:
            heapq.heappop(settled)
        held = len(settled)
        if self._open:
            for key, (_, expires) in list(self._open.items()):
                if expires > now:
                    held += 1
                else:  # a lapsed claim (or an answer that outlived every bound)
                    del self._open[key]
        return held

    def earliest(self, k: int, now: float) -> list[float]:
        if k <= 0:
            return []
        settled = heapq.nsmallest(k, self._settled) if k > 2 else _smallest2(self._settled, k)
        opened = sorted(e for _, e in self._open.values() if e > now)
        return heapq.nsmallest(k, [e for e in settled if e > now] + opened)

    def paused_until(self) -> float:
        return self._paused

    def take(self, kind: str, expires: float, now: float) -> int:
        self._seq += 1
        self._open[self._seq] = (kind, expires)
        return self._seq

    def convert(self, key: int, expires: float, now: float) -> bool:
        entry = self._open.get(key)
        if entry is None or entry[0] != CLAIM or entry[1] <= now:
            return False
        self._open[key] = (SLOT, expires)
        return True

    def is_live(self, key: int, now: float) -> bool:
        entry = self._open.get(key)
        return entry is not None and entry[0] == CLAIM and entry[1] > now

    def settle(self, key: int, expires: float) -> None:
        if self._open.pop(key, None) is not None:
            heapq.heappush(self._settled, expires)

    def drop(self, key: int) -> None:
        self._open.pop(key, None)

    def pause(self, until: float) -> None:
        if until > self._paused:
            self._paused = until

    def counts(self, now: float) -> tuple[int, int]:
        """(slots, claims) held now."""
        self.held(now)
        claims = sum(1 for kind, _ in self._open.values() if kind == CLAIM)
        return len(self._settled) + len(self._open) - claims, claims


def _smallest2(heap: list[float], k: int) -> list[float]:
    """The ``k`` (1 or 2) smallest items of a heap, without a scan."""
    if not heap:
        return []
    if k == 1 or len(heap) == 1:
        return [heap[0]]
    second = heap[1] if len(heap) == 2 or heap[1] <= heap[2] else heap[2]
    return [heap[0], second]


class MemoryLedger(Ledger):
    """The ledger of one process, in memory (simulated time, tests, benchmarks)."""

    def __init__(self, specs: Mapping[str, LimitSpec], now: Callable[[], float], **kw: Any) -> None:
        self._stores: dict[str, MemoryBucketStore] = {}
        super().__init__(specs, now, **kw)

    def _store_for(self, name: str) -> MemoryBucketStore:
        store = self._stores[name] = MemoryBucketStore()
        return store

    def describe(self) -> str:
        return "in memory (this process only)"

    def holders(self) -> list[dict[str, Any]]:
        now = self.now()
        rows = []
        for name, store in self._stores.items():
            slots, claims = store.counts(now)
            if slots or claims:
                rows.append({"bucket": name, "run_id": None, "pid": None, "slots": slots, "claims": claims})
        return rows
