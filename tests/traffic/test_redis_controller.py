"""The controller on a ledger that checks at commit (as the Redis one does): a refused
admission (another host was quicker) leaves the call as it was, and it is decided again."""

from __future__ import annotations

import copy
import random
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from bmctl.traffic.buckets import DEFAULT_LIMITS
from bmctl.traffic.controller import TrafficController
from bmctl.traffic.ledger import AdmissionConflict, MemoryLedger
from bmctl.traffic.queue import Priority

from .fakes import FakeTransport, RecordingClock, post
from .test_controller import LIST, RES_LIMITS, WSPAN, claims


class RefusingLedger(MemoryLedger):
    """In memory, but the first commit of every admission that takes something is refused:
    its takes are rolled back and :class:`AdmissionConflict` raised."""

    refuses_at_commit = True

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.refused = 0
        self._refuse_next = True

    @contextmanager
    def transaction(self) -> Iterator[None]:  # type: ignore[override]
        saved = {name: copy.deepcopy(store) for name, store in self._stores.items()}
        yield
        changed = any(_state(saved[name]) != _state(store) for name, store in self._stores.items())
        if changed and self._refuse_next:
            self._refuse_next = False
            self.refused += 1
            for name, store in saved.items():  # nothing was taken
                self._stores[name] = store
                self.buckets[name]._store = store
            raise AdmissionConflict("another host was quicker")
        if changed:
            self._refuse_next = True


def _state(store: Any) -> tuple[Any, ...]:
    return (sorted(store._settled), sorted(store._open.items()), store._paused, store._seq)


def test_a_refused_admission_is_decided_again_with_the_call_unchanged() -> None:
    clock = RecordingClock()
    transport = FakeTransport(clock, ())
    specs = dict(DEFAULT_LIMITS)
    specs.update(RES_LIMITS)
    ledger = RefusingLedger(specs, clock.monotonic)
    ctl = TrafficController(ledger, None, transport, clock=clock, rng=random.Random(7))
    dip = ctl.submit(post(LIST + "dip"), Priority.HIGH, reserve_exit=True)
    ctl.submit(post(LIST + "other"), Priority.NORMAL)
    ctl.run(until=lambda: dip.done)
    assert dip.attempts == 1 and dip.reservation is not None and dip.reservation.active
    assert claims(ctl, "listing_writes") == 1
    ctl.call_at(1.0, lambda: ctl.submit(post(LIST + "exit"), Priority.CRITICAL,
                                        reservation=dip.reservation))
    ctl.run()
    assert ledger.refused >= 3  # every admission was refused once
    assert transport.paths() == [LIST + "dip", LIST + "exit", LIST + "other"]
    assert transport.times() == pytest.approx([0.0, 1.0, WSPAN])
    assert claims(ctl, "listing_writes") == 0 and not dip.reservation.active
    assert ctl.buckets["listing_writes"].held() == 2
