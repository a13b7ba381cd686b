"""The priority queue: one ``heapq`` per bucket signature, ordered by priority then FIFO.

Requests that spend the same buckets share a lane (a heap); there are only a handful of
signatures (``(global,)``, ``(global, competitors)``, ...), so choosing the next request means
comparing k lane heads, and pushing or popping costs O(log n): O(k log n) per dispatch.
Within a lane the head blocks everything behind it, which is exactly "a blocked request holds
back lower-priority requests that need the same buckets".
"""

from __future__ import annotations

from enum import IntEnum
from heapq import heappop, heappush
from typing import Any, Generic, Iterator, TypeVar

T = TypeVar("T")

# Priority and sequence number packed into one int: one int comparison per heap step.
_SEQ_BITS = 48


class Priority(IntEnum):
    """Service levels; the lowest value is served first."""

    CRITICAL = 0  # the write that ends a dip (peak or restore)
    HIGH = 1  # the rest of a probe already under way
    NORMAL = 2  # starting new work
    LOW = 3  # bulk reads (listing pages)


def order_key(priority: int, seq: int) -> int:
    """The heap key of an entry: priority first, then submission order."""
    return (priority << _SEQ_BITS) | seq


class Lane(Generic[T]):
    """The heap of one bucket signature; ``payload`` is free for the owner (bucket objects)."""

    __slots__ = ("signature", "members", "heap", "payload")

    def __init__(self, signature: tuple[str, ...]) -> None:
        self.signature = signature
        self.members = frozenset(signature)
        self.heap: list[tuple[int, T]] = []
        self.payload: Any = None

    def __len__(self) -> int:
        return len(self.heap)

    def __repr__(self) -> str:
        return f"Lane({self.signature!r}, {len(self.heap)} queued)"

    def head_key(self) -> int:
        """Order key of the head entry (the lane must not be empty)."""
        return self.heap[0][0]

    def head(self) -> T:
        """The next item of this lane, left in place."""
        return self.heap[0][1]


class RequestQueue(Generic[T]):
    """Items queued by priority (CRITICAL first), FIFO within a level, one heap per signature."""

    __slots__ = ("_lanes", "_active", "_seq", "_len")

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, ...], Lane[T]] = {}
        self._active: list[Lane[T]] = []  # lanes with at least one item
        self._seq = 0
        self._len = 0

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def lane(self, signature: tuple[str, ...]) -> Lane[T]:
        """The lane for ``signature``, created on first use."""
        lane = self._lanes.get(signature)
        if lane is None:
            lane = self._lanes[signature] = Lane(signature)
        return lane

    def lanes(self) -> Iterator[Lane[T]]:
        """Every lane ever created."""
        return iter(self._lanes.values())

    def push(self, item: T, priority: int, lane: Lane[T], seq: int | None = None) -> int:
        """Queue ``item``; ``seq`` keeps an earlier place (requeue after a 429). Returns the seq."""
        if seq is None:
            self._seq += 1
            seq = self._seq
        heap = lane.heap
        if not heap:
            self._active.append(lane)
        heappush(heap, (order_key(priority, seq), item))
        self._len += 1
        return seq

    def pop(self, lane: Lane[T]) -> T:
        """Take the head of ``lane``."""
        heap = lane.heap
        item = heappop(heap)[1]
        if not heap:
            self._active.remove(lane)
        self._len -= 1
        return item

    def active(self) -> list[Lane[T]]:
        """Non-empty lanes in service order of their heads (k is small: sorting is cheap)."""
        active = self._active
        if len(active) > 1:
            active.sort(key=Lane.head_key)
        return active

    def clear(self) -> list[T]:
        """Empty every lane; returns the items that were queued."""
        items = [item for lane in self._active for _, item in lane.heap]
        for lane in self._active:
            lane.heap.clear()
        self._active.clear()
        self._len = 0
        return items

    def pop_next(self) -> T:
        """The overall next item, ignoring buckets (for callers without lanes, and tests)."""
        if not self._len:
            raise IndexError("pop from an empty RequestQueue")
        return self.pop(self.active()[0])

    def push_item(self, item: T, priority: int, signature: tuple[str, ...] = ()) -> int:
        """Convenience: push into the lane of ``signature``."""
        return self.push(item, priority, self.lane(signature))
