"""RequestQueue: priority order, FIFO within a level, lanes per bucket signature."""

from __future__ import annotations

from bmctl.traffic.queue import Priority, RequestQueue


def test_priority_values() -> None:
    assert [p.value for p in (Priority.CRITICAL, Priority.HIGH, Priority.NORMAL, Priority.LOW)] \
        == [0, 1, 2, 3]


def test_priority_then_fifo_across_lanes() -> None:
    q: RequestQueue[str] = RequestQueue()
    q.push_item("low1", Priority.LOW, ("global",))
    q.push_item("n1", Priority.NORMAL, ("global", "competitors"))
    q.push_item("c1", Priority.CRITICAL, ("global", "listing_writes"))
    q.push_item("n2", Priority.NORMAL, ("global",))
    q.push_item("c2", Priority.CRITICAL, ("global",))
    q.push_item("n3", Priority.NORMAL, ("global", "competitors"))
    assert len(q) == 6
    assert [q.pop_next() for _ in range(6)] == ["c1", "c2", "n1", "n2", "n3", "low1"]
    assert not q


def test_requeue_keeps_its_place() -> None:
    q: RequestQueue[str] = RequestQueue()
    lane = q.lane(("global",))
    seq = q.push("first", Priority.HIGH, lane)
    q.push("second", Priority.HIGH, lane)
    assert q.pop(lane) == "first"
    q.push("first", Priority.HIGH, lane, seq)  # e.g. after a 429
    assert [q.pop(lane), q.pop(lane)] == ["first", "second"]


def test_active_lanes_sorted_by_head() -> None:
    q: RequestQueue[str] = RequestQueue()
    q.push_item("a", Priority.LOW, ("global",))
    q.push_item("b", Priority.HIGH, ("global", "catalog"))
    assert [lane.signature for lane in q.active()] == [("global", "catalog"), ("global",)]
    assert q.active()[0].head() == "b"


def test_many_items_stay_ordered() -> None:
    q: RequestQueue[int] = RequestQueue()
    for i in range(1000):
        q.push_item(i, Priority((i * 7) % 4), ("global",) if i % 2 else ("global", "x"))
    out = [q.pop_next() for _ in range(1000)]
    assert out == sorted(range(1000), key=lambda i: ((i * 7) % 4, i))


def test_clear_returns_the_queued_items() -> None:
    q: RequestQueue[str] = RequestQueue()
    q.push_item("a", Priority.LOW, ("global",))
    q.push_item("b", Priority.HIGH, ("global", "x"))
    assert sorted(q.clear()) == ["a", "b"]
    assert len(q) == 0 and q.active() == []
    q.push_item("c", Priority.LOW, ("global",))
    assert q.pop_next() == "c"
