"""The TrafficController: a single-threaded event loop that sends requests when the ledger allows.

One loop serves everything: it fires due timers, dispatches the best request whose buckets all
have a free slot in the budget ledger (taken at once, all or nothing, in one ledger
transaction), settles each slot when the answer is in, and otherwise sleeps exactly until the
next slot frees, a pause ends, or a retry or timer is due. Callbacks run inside the loop and may
submit more work.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from heapq import heappop, heappush
from http import HTTPStatus
from itertools import chain
from typing import Any, Callable, Iterable, Mapping

from bmctl.errors import ConfigError
from bmctl.traffic.buckets import EPSILON, Bucket, Claim
from bmctl.traffic.clock import Clock
from bmctl.traffic.ledger import AdmissionConflict, Ledger
from bmctl.traffic.queue import Lane, Priority, RequestQueue
from bmctl.traffic.routes import DEFAULT_ROUTES, RouteMap
from bmctl.traffic.transport import (
    HttpRequest,
    HttpResponse,
    Transport,
    TransportError,
    UnusableAnswer,
)
from bmctl.traffic.waits import LONG_WAIT, Say, WaitNotices
from bmctl.traffic.wire import SyncWire, Wire

_INF = math.inf
_IDEMPOTENT = frozenset({"GET", "HEAD"})  # methods whose unusable answer may be asked again

#: Checks a 2xx answer and returns what the caller makes of it, or raises UnusableAnswer.
Accept = Callable[[HttpRequest, HttpResponse], Any]


class TrafficStalled(RuntimeError):
    """Requests are queued that no token, timer or release can ever let through."""


@dataclass(slots=True)
class AttemptRecord:
    """One attempt, as the request log stores it."""

    request: HttpRequest
    call_id: int
    priority: Priority
    attempt: int
    buckets: tuple[str, ...]
    route: str
    sent_wall: float
    queue_wait_ms: float
    latency_ms: float
    status: int | None
    outcome: str  # ok | http_error | rate_limited | retry | timeout | connection_error | malformed
    retry_after: float | None
    error: str | None
    retry_in: float | None = None  # seconds until the request may go again (a retry or a 429)


class Reservation:
    """Claims on one slot of each of ``buckets`` (the write that will end a dip)."""

    __slots__ = ("claims", "active")

    def __init__(self, claims: tuple[Claim, ...]) -> None:
        self.claims = claims
        self.active = True

    @property
    def buckets(self) -> tuple[Bucket, ...]:
        return tuple(claim.bucket for claim in self.claims)

    def claim_for(self, bucket: Bucket) -> Claim | None:
        """This reservation's claim on ``bucket``, if any (and if still active)."""
        if self.active:
            for claim in self.claims:
                if claim.bucket is bucket:
                    return claim
        return None

    def release(self) -> None:
        """Give the claims back (idempotent)."""
        if self.active:
            self.active = False
            for claim in self.claims:
                claim.bucket.release_reservation(claim)

    def __repr__(self) -> str:
        state = "active" if self.active else "closed"
        return f"Reservation({[c.bucket.name for c in self.claims]}, {state})"


class Call:
    """A submitted request and its fate; ``done`` turns true once, then ``on_done`` runs.

    ``response`` is the last HTTP answer; ``error`` is set only when the last attempt got none.
    With an ``accept`` check, ``accepted`` says it took the final answer and ``value`` is what it
    made of it (parsed once)."""

    __slots__ = (
        "request", "priority", "done", "response", "error", "attempts", "reservation",
        "call_id", "on_done", "route", "buckets", "accept", "accepted", "value",
        "_lane", "_seq", "_enqueued", "_reserve_exit", "_use_reservation",
    )

    def __init__(self, request: HttpRequest, priority: Priority, call_id: int,
                 on_done: Callable[[Call], None] | None, accept: Accept | None = None) -> None:
        self.request = request
        self.priority = priority
        self.call_id = call_id
        self.on_done = on_done
        self.accept = accept
        self.accepted = False
        self.value: Any = None
        self.done = False
        self.response: HttpResponse | None = None
        self.error: TransportError | None = None
        self.attempts = 0
        self.reservation: Reservation | None = None
        self.route = "other"
        self.buckets: tuple[str, ...] = ()
        self._lane: Lane[Call] | None = None
        self._seq = 0
        self._enqueued = 0.0
        self._reserve_exit = False
        self._use_reservation: Reservation | None = None

    def __repr__(self) -> str:
        return (f"Call(#{self.call_id} {self.request.method} {self.request.path} "
                f"{self.priority.name} attempts={self.attempts} done={self.done})")


class _Flight:
    """A call on the wire: the slots it holds, and when it left (monotonic, wall)."""

    __slots__ = ("call", "lane", "slots", "sent_wall", "t0", "cancelled")

    def __init__(self, call: Call, lane: Lane[Call], slots: list[tuple[Bucket, Any]],
                 sent_wall: float) -> None:
        self.call = call
        self.lane = lane
        self.slots = slots
        self.sent_wall = sent_wall
        self.t0 = 0.0
        self.cancelled = False


class TimerHandle:
    """A scheduled callback; :meth:`cancel` stops it from running."""

    __slots__ = ("_entry",)

    def __init__(self, entry: list) -> None:
        self._entry = entry

    @property
    def when(self) -> float:
        """Monotonic time the callback is due."""
        return self._entry[0]

    def cancel(self) -> None:
        """Drop the callback (no-op when it already ran)."""
        self._entry[2] = None


def parse_retry_after(value: str | None, now_wall: float) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta seconds or an HTTP date), else ``None``."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        if when.tzinfo is None:  # "-0000" dates come back naive: they are UTC
            from datetime import timezone
            when = when.replace(tzinfo=timezone.utc)
        return max(0.0, when.timestamp() - now_wall)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


class _Undo:
    """What :meth:`TrafficController._take` changes on a call, to put back when the ledger
    refuses the takes at commit (:class:`~bmctl.traffic.ledger.AdmissionConflict`)."""

    __slots__ = ("controller", "call", "use", "use_active", "use_open", "reserve_exit",
                 "reservation", "attempts")

    def __init__(self, controller: "TrafficController", call: Call) -> None:
        self.controller = controller
        self.call = call
        self.use = call._use_reservation
        self.use_active = self.use.active if self.use is not None else False
        self.use_open = self.use in controller._reservations
        self.reserve_exit = call._reserve_exit
        self.reservation = call.reservation
        self.attempts = call.attempts

    def restore(self) -> None:
        call, reservations = self.call, self.controller._reservations
        if call.reservation is not self.reservation and call.reservation is not None:
            reservations.discard(call.reservation)
        call.reservation = self.reservation
        call._use_reservation = self.use
        if self.use is not None:
            self.use.active = self.use_active
            if self.use_open:
                reservations.add(self.use)
        call._reserve_exit = self.reserve_exit
        call.attempts = self.attempts


class TrafficController:
    """Single-threaded event loop: priority queue + budget ledger + timers, over a transport."""

    def __init__(
        self,
        ledger: Ledger,
        routes: RouteMap | None,
        transport: Transport,
        *,
        clock: Clock,
        on_attempt: Callable[[AttemptRecord], None] | None = None,
        max_attempts: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        timeout: float = 30.0,
        rng: random.Random | None = None,
        wire: Wire | None = None,
        max_in_flight: int | None = None,
        notice: Say | None = None,
        debug: Say | None = None,
    ) -> None:
        self.ledger = ledger
        self.buckets: Mapping[str, Bucket] = ledger.buckets
        self.routes = DEFAULT_ROUTES if routes is None else routes
        missing = self.routes.bucket_names() - self.buckets.keys()
        if missing:
            raise ConfigError(f"routes use unknown buckets: {', '.join(sorted(missing))}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        self.transport = transport
        self.clock = clock
        self.wire: Wire = wire if wire is not None else SyncWire(transport, clock.monotonic)
        #: Requests on the wire at once: the wire's capacity unless told fewer.
        self.max_in_flight = min(self.wire.capacity, max_in_flight or self.wire.capacity)
        self._flights: dict[int, _Flight] = {}
        self.on_attempt = on_attempt
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.timeout = timeout
        self.rng = rng if rng is not None else random.Random()
        self._queue: RequestQueue[Call] = RequestQueue()
        self._timers: list[list] = []  # [when, seq, fn]; fn None = cancelled
        self._timer_seq = 0
        self._call_ids = 0
        self._backing_off = 0  # calls waiting for a retry timer
        self._monotonic = clock.monotonic
        self._resolved: dict[tuple[str, str], tuple[Lane[Call], str]] = {}
        self._reservations: set[Reservation] = set()  # made by reserve_exit, not yet used
        self._flight_ids = 0
        self._landed: list[Any] = []  # answers polled but not taken in: a callback raised first
        #: Long waits (a 429 pause, a full bucket) said once on ``notice``; None: nobody listens.
        self._waits = WaitNotices(notice, debug) if notice is not None or debug is not None else None

    # -- public API -------------------------------------------------------------------------
    def now(self) -> float:
        """Monotonic seconds of the controller's clock."""
        return self._monotonic()

    def queued(self) -> int:
        """Requests not sent yet: in the queue or waiting for a retry."""
        return len(self._queue) + self._backing_off

    def in_flight(self) -> int:
        """Requests on the wire now."""
        return len(self._flights)

    def submit(
        self,
        request: HttpRequest,
        priority: Priority | int = Priority.NORMAL,
        *,
        on_done: Callable[[Call], None] | None = None,
        reserve_exit: bool = False,
        reservation: Reservation | None = None,
        accept: Accept | None = None,
    ) -> Call:
        """Queue a request; it is sent by :meth:`run` when its buckets allow.

        ``reserve_exit``: at dispatch, also claim one slot of each of its buckets for the
        request that will end what this one starts (``call.reservation``). ``reservation``:
        send on those claimed slots (retries take free slots like any request). ``accept``
        (idempotent reads only): called on each 2xx answer; what it returns is kept in
        ``call.value``, and an ``UnusableAnswer`` it raises is retried like a 5xx."""
        if type(priority) is not Priority:
            priority = Priority(priority)
        if accept is not None and request.method not in _IDEMPOTENT:
            # A write answered 2xx was applied: asking again is the caller's decision, not ours.
            raise ValueError(f"accept is for idempotent reads, not {request.method}")
        self._call_ids += 1
        call = Call(request, priority, self._call_ids, on_done, accept)
        key = (request.method, request.path)
        hit = self._resolved.get(key)
        if hit is None:
            hit = self._resolve(key)
        lane = call._lane = hit[0]
        call.route = hit[1]
        call.buckets = lane.signature
        call._reserve_exit = reserve_exit
        if reservation is not None:  # spent at dispatch; call.reservation stays for reserve_exit
            call._use_reservation = reservation
        call._enqueued = self._monotonic()
        call._seq = self._queue.push(call, priority, lane)
        return call

    def _resolve(self, key: tuple[str, str]) -> tuple[Lane[Call], str]:
        buckets, route = self.routes.resolve(*key)
        lane = self._queue.lane(buckets)
        if lane.payload is None:
            lane.payload = tuple(self.buckets[name] for name in buckets)
        if len(self._resolved) >= 65_536:  # paths carry listing ids: keep the cache bounded
            self._resolved.clear()
        hit = self._resolved[key] = (lane, route)
        return hit

    def call_at(self, when: float, fn: Callable[[], object]) -> TimerHandle:
        """Run ``fn()`` in the loop at monotonic time ``when``."""
        self._timer_seq += 1
        entry = [when, self._timer_seq, fn]
        heappush(self._timers, entry)
        return TimerHandle(entry)

    def call_later(self, delay: float, fn: Callable[[], object]) -> TimerHandle:
        """Run ``fn()`` in the loop ``delay`` seconds from now."""
        return self.call_at(self._monotonic() + delay, fn)

    def release(self, reservation: Reservation | None) -> None:
        """Give an unused reservation back (idempotent; ``None`` is ignored)."""
        if reservation is not None:
            reservation.release()
            self._reservations.discard(reservation)

    def cancel_all(self) -> int:
        """Abandon all queued work (after an interrupt): drop queued requests, pending retries
        and timers without calling their callbacks, and release every open reservation so that
        recovery writes are not held back by claims nobody will use. Returns the requests dropped."""
        dropped = len(self._queue.clear()) + self._backing_off
        for flight in self._flights.values():  # answered later: logged and settled, no callback
            flight.cancelled = True
        self._timers.clear()
        self._backing_off = 0
        for reservation in self._reservations:
            reservation.release()
        self._reservations.clear()
        self.ledger.flush()
        return dropped

    def execute(self, request: HttpRequest, priority: Priority | int = Priority.NORMAL, *,
                accept: Accept | None = None) -> HttpResponse:
        """Submit and run until this request is done; raises the last ``TransportError`` when no
        attempt got an HTTP answer, else returns the last answer (statuses are the caller's).
        ``accept``: as for :meth:`submit` (a 2xx answer it cannot use is asked for again)."""
        call = self.submit(request, priority, accept=accept)
        self.run(lambda: call.done)
        if not call.done:
            raise TrafficStalled(f"{call!r} did not finish")
        if call.response is None:
            assert call.error is not None
            raise call.error
        return call.response

    def run(self, until: Callable[[], bool] | None = None) -> None:
        """Dispatch, take in answers, fire timers and wait until ``until()`` is true or nothing
        is left (requests still on the wire included)."""
        try:
            self._loop(until)
        finally:
            self.ledger.flush()  # what this process settled is visible to the others now

    def drain(self, limit: float | None = None) -> None:
        """Wait for the requests still on the wire (their log rows and slots), at most until
        the monotonic time ``limit``; their callbacks do not run."""
        for flight in self._flights.values():
            flight.cancelled = True
        wire = self.wire
        while self._flights:
            self._take_in(wire.poll())
            if not self._flights or (limit is not None and self._monotonic() >= limit):
                break
            wire.wait(self._monotonic() + 0.1 if limit is None else limit)
        self.ledger.flush()

    def close(self) -> None:
        """Stop the wire's workers (after :meth:`drain`)."""
        self.wire.close()

    def _loop(self, until: Callable[[], bool] | None) -> None:
        timers = self._timers
        monotonic = self._monotonic
        sleep = self.clock.sleep
        ledger = self.ledger
        wire = self.wire
        flights = self._flights
        while True:
            done = wire.poll()  # answers first: they free slots
            if done or self._landed:
                self._take_in(done)
            if until is not None and until():
                return
            while timers and timers[0][2] is None:
                heappop(timers)
            now = monotonic()
            if timers and timers[0][0] <= now + EPSILON:
                fn = heappop(timers)[2]
                fn()
                continue
            if self._queue._len and len(flights) < self.max_in_flight:
                wake = self._dispatch(now)
                if wake is None:
                    continue
            else:
                wake = _INF
            if timers and timers[0][0] < wake:
                wake = timers[0][0]
            if flights:
                ledger.flush()
                wire.wait(wake)  # an answer, or the next token, retry or timer
                continue
            if wake == _INF:
                if self._queue._len:
                    raise TrafficStalled(
                        f"{self._queue._len} request(s) need more slots than their buckets have")
                return
            ledger.flush()
            sleep(wake - now)

    def _take_in(self, done: Iterable[Any]) -> None:
        """Complete finished requests. When a callback raises (a run-stopping error), the
        answers polled with it are kept for the next run() or drain(): their slots and log rows
        must not be lost, nor drain() wait out its limit for them. ``done`` may be any iterable
        (a wire may hand answers over one by one)."""
        if self._landed:
            done = chain(self._landed, done)
            self._landed = []
        answers = iter(done)
        for token, result, answered in answers:
            try:
                self._complete(token, result, answered)
            except BaseException:
                self._landed = list(answers)
                raise

    # -- the dispatch path (hot) ---------------------------------------------------------------
    def _dispatch(self, now: float) -> float | None:
        """Send the best ready request and return None, or return when to look again."""
        undo: _Undo | None = None
        try:
            with self.ledger.transaction():
                chosen = self._choose(now)
                if type(chosen) is not float:
                    call, lane = chosen  # type: ignore[misc]
                    if self.ledger.refuses_at_commit:
                        undo = _Undo(self, call)
                    slots = self._take(call, lane.payload)
        except AdmissionConflict:
            # A shared store refused the takes at commit (another host was quicker): nothing
            # was taken, so the call is as it was; decide again on a fresh read.
            if undo is not None:
                undo.restore()
            return now
        waits = self._waits
        if waits is not None and waits.pending:
            waits.flush()
        if type(chosen) is float:
            return chosen  # type: ignore[return-value]
        self._queue.pop(lane)
        self._start(call, lane, slots)
        return None

    def _choose(self, now: float) -> tuple[Call, Lane[Call]] | float:
        """The request to send now and its lane, or the time to look again."""
        lanes = self._queue.active()
        limit = now + EPSILON
        if len(lanes) == 1:  # the common case: no hold-back bookkeeping
            lane = lanes[0]
            call = lane.heap[0][1]
            ready = self._ready(call, lane.payload, now)
            if ready <= limit:
                return call, lane
            if ready - now >= LONG_WAIT and self._waits is not None:
                self._tell_wait(call, lane.payload, now)
            return ready
        wake = _INF
        held: set[str] | None = None
        for lane in lanes:
            call = lane.heap[0][1]
            buckets = lane.payload
            if held is not None and not held.isdisjoint(lane.members):
                # Held back by a higher-priority head on a shared full bucket; what this head
                # itself lacks is held for it too (it outranks everything after it).
                for b in buckets:
                    if self._ready_one(call, b, now) > limit:
                        held.add(b.name)
                continue
            ready = -_INF
            short: list[str] | None = None
            for b in buckets:  # one pass: readiness and the buckets this head lacks
                r = self._ready_one(call, b, now)
                if r > limit:
                    if short is None:
                        short = []
                    short.append(b.name)
                if r > ready:
                    ready = r
            if short is None:
                return call, lane
            if ready < wake:
                wake = ready
            if ready - now >= LONG_WAIT and self._waits is not None:
                self._tell_wait(call, buckets, now)
            # Hold back only the buckets this head lacks: holding every bucket it needs would
            # let a dip waiting on listing_writes stop all global reads, including the peeks
            # that finish probes and free those slots (a deadlock).
            if held is None:
                held = set(short)
            else:
                held.update(short)
        return wake

    def _ready(self, call: Call, buckets: tuple[Bucket, ...], now: float) -> float:
        """When every bucket of ``call`` can give it its slots (max over its buckets)."""
        t = -_INF
        for b in buckets:
            r = self._ready_one(call, b, now)
            if r > t:
                t = r
        return t

    def _tell_wait(self, call: Call, buckets: tuple[Bucket, ...], now: float) -> None:
        """The head ``call`` of a queue waits long: say for which bucket(s) (rare path)."""
        waits = self._waits
        assert waits is not None
        for b in buckets:
            waits.waiting(b, self._ready_one(call, b, now), now)

    @staticmethod
    def _ready_one(call: Call, b: Bucket, now: float) -> float:
        res = call._use_reservation
        claim = res.claim_for(b) if res is not None else None
        return b.ready_at(2 if call._reserve_exit else 1, claim, now)

    def _take(self, call: Call, buckets: tuple[Bucket, ...]) -> list[tuple[Bucket, Any]]:
        """Take the call's slots (and its exit's claims) through the buckets, in the open
        ledger transaction that just found them all free."""
        res = call._use_reservation
        slots: list[tuple[Bucket, Any]] = []
        if res is not None:
            call._use_reservation = None  # retries take free slots
            claims = {claim.bucket: claim for claim in res.claims} if res.active else {}
            res.active = False
            self._reservations.discard(res)
            for b in buckets:
                claim = claims.pop(b, None)
                slots.append((b, b.spend_reserved(claim) if claim is not None else b.spend()))
            for claim in claims.values():  # claims on buckets this request does not use
                claim.bucket.release_reservation(claim)
        else:
            for b in buckets:
                slots.append((b, b.spend()))
        if call._reserve_exit:  # the exit of a dip is secured in the same step
            call._reserve_exit = False
            call.reservation = Reservation(tuple(b.reserve() for b in buckets))
            self._reservations.add(call.reservation)
        call.attempts += 1
        return slots

    def _start(self, call: Call, lane: Lane[Call], slots: list[tuple[Bucket, Any]]) -> None:
        """Put the call on the wire; :meth:`_complete` takes its answer in."""
        self._flight_ids += 1
        flight = _Flight(call, lane, slots, self.clock.wall())
        self._flights[self._flight_ids] = flight
        flight.t0 = self.wire.start(self._flight_ids, call.request, self.timeout)

    def _complete(self, token: int, result: HttpResponse | TransportError, t1: float) -> None:
        """An answer (or its absence) is in: settle the slots, then the attempt (done,
        requeued or backing off). A cancelled call is logged and settled, nothing more."""
        flight = self._flights.pop(token)
        call, lane, slots, t0, sent_wall = flight.call, flight.lane, flight.slots, flight.t0, flight.sent_wall
        if isinstance(result, TransportError):
            call.error = result
            outcome = "timeout" if result.kind == "timeout" else "connection_error"
            if result.unreachable:
                # Never connected (refused, or no such host): the server never saw it, so its
                # slots are settled now; and the host is down, so asking again only waits. The
                # call ends with this error, even after an earlier answer (the run must stop).
                for b, key in slots:
                    b.settle(key, t1)
                call.response = None
                self._report(call, t0, t1, sent_wall, None, outcome, None, str(result))
                if not flight.cancelled:
                    self._finish(call)
                return
            # No answer: the server may count this request later than we gave up on it (it
            # may sit in a queue there), so its slots keep their provisional expiry, as if
            # this process had died with it on the wire.
            if flight.cancelled:
                self._report(call, t0, t1, sent_wall, None, outcome, None, str(result))
                return
            if call.attempts < self.max_attempts:
                delay = self._backoff_delay(call)
                self._report(call, t0, t1, sent_wall, None, outcome, None, str(result), delay)
                self._back_off(call, delay)
            else:
                self._report(call, t0, t1, sent_wall, None, outcome, None, str(result))
                self._finish(call)
            return
        response = result
        for b, key in slots:
            b.settle(key, t1)
        call.response = response
        call.error = None  # answered: an earlier attempt's lost answer no longer describes the call
        status = response.status
        retry_in: float | None = None
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.wall())
            retry_in = 0.0
            for b, _ in slots:
                pause = b.spec.penalty if retry_after is None else retry_after
                retry_in = max(retry_in, pause)
                b.pause(t1 + pause)
            if self._waits is not None:
                self._waits.paused((b for b, _ in slots), self._what(call), retry_in,
                                   retry_after is not None, t1)
                self._waits.flush()
        if flight.cancelled:
            outcome = "ok" if status < 400 else ("rate_limited" if status == 429 else "http_error")
            self._report(call, t0, t1, sent_wall, status, outcome, None,
                         None if status < 400 else http_error(response))
            return
        if status < 400:
            if call.accept is not None and 200 <= status < 300:
                try:
                    call.value = call.accept(call.request, response)
                    call.accepted = True
                except UnusableAnswer as unusable:
                    # The server answered but the body is cut or garbled (a proxy, a dropped
                    # stream): a read may simply be asked again. Never log the body itself.
                    why = f"malformed answer: {unusable.reason or unusable}"
                    if call.attempts < self.max_attempts:
                        delay = self._backoff_delay(call)
                        self._report(call, t0, t1, sent_wall, status, "retry", None, why, delay)
                        self._back_off(call, delay)
                    else:
                        self._report(call, t0, t1, sent_wall, status, "malformed", None, why)
                        self._finish(call)
                    return
            self._report(call, t0, t1, sent_wall, status, "ok", None, None)
            self._finish(call)
        elif status == 429:
            again = call.attempts < self.max_attempts
            self._report(call, t0, t1, sent_wall, status, "rate_limited", retry_after,
                         http_error(response), retry_in if again else None)
            if again:
                # Same priority and same place in line; the paused buckets make it wait.
                call._enqueued = t1
                self._queue.push(call, call.priority, lane, call._seq)
            else:
                self._finish(call)
        elif status >= 500 and call.attempts < self.max_attempts:
            delay = self._backoff_delay(call)
            self._report(call, t0, t1, sent_wall, status, "retry", None, http_error(response), delay)
            self._back_off(call, delay)
        else:
            self._report(call, t0, t1, sent_wall, status, "http_error", None, http_error(response))
            self._finish(call)

    def _report(self, call: Call, t0: float, t1: float, sent_wall: float, status: int | None,
                outcome: str, retry_after: float | None, error: str | None,
                retry_in: float | None = None) -> None:
        on_attempt = self.on_attempt
        if on_attempt is not None:
            on_attempt(AttemptRecord(
                call.request, call.call_id, call.priority, call.attempts, call.buckets,
                call.route, sent_wall, (t0 - call._enqueued) * 1000.0, (t1 - t0) * 1000.0,
                status, outcome, retry_after, error, retry_in))

    @staticmethod
    def _what(call: Call) -> str:
        """A request as a notice names it: its route, or its method and path."""
        if call.route != "other":
            return call.route
        return f"{call.request.method} {call.request.path}"

    def _finish(self, call: Call) -> None:
        call.done = True
        if call.on_done is not None:
            call.on_done(call)  # exceptions propagate out of run(), by design

    def _backoff_delay(self, call: Call) -> float:
        """Exponential backoff with jitter: base * 2^(n-1), capped, scaled into [50 %, 100 %]."""
        delay = min(self.backoff_cap, self.backoff_base * (2 ** (call.attempts - 1)))
        return delay * (0.5 + 0.5 * self.rng.random())

    def _back_off(self, call: Call, delay: float) -> None:
        """Queue ``call`` again in ``delay`` seconds (:meth:`_backoff_delay`)."""
        self._backing_off += 1

        def requeue() -> None:
            self._backing_off -= 1
            call._enqueued = self._monotonic()
            self._queue.push(call, call.priority, call._lane, call._seq)  # type: ignore[arg-type]

        self.call_later(delay, requeue)


def http_error(response: HttpResponse) -> str:
    """The log's one-line ``error`` for an HTTP error answer: status, reason and, from the WAF,
    the cf-ray to quote to support (headers only: bodies may echo what was sent)."""
    try:
        text = f"HTTP {response.status} {HTTPStatus(response.status).phrase}"
    except ValueError:
        text = f"HTTP {response.status}"
    ray = response.headers.get("cf-ray")
    return f"{text} (cf-ray {ray})" if ray else text
