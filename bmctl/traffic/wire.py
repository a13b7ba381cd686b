"""Wires: how the controller's requests travel, one at a time or several at once.

The controller decides everything in one thread (queue, ledger, timers, callbacks). A wire only
carries requests: ``start`` puts one on the wire, ``poll`` hands back the ones that finished,
and ``wait(until)`` blocks until one finishes or the monotonic time ``until`` comes.

- :class:`SyncWire` sends each request right away through a blocking ``Transport.send``: one on
  the wire at a time (any transport, including test doubles that move a simulated clock).
- :class:`ThreadWire` keeps up to ``workers`` requests on the wire, each worker thread with its
  own transport (its own keep-alive connections); answers come back through a queue.
- ``bmctl.sandbox.inprocess.SimWire`` does the same in simulated time over the sandbox app.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from typing import Any, Callable, Protocol

from bmctl.traffic.transport import HttpRequest, HttpResponse, Transport, TransportError

#: What a finished request hands back: its token, its answer (or the error), and when.
Finished = tuple[Any, "HttpResponse | TransportError", float]


class Wire(Protocol):
    """Carries requests for the controller (see the module docstring)."""

    capacity: int

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        """Put ``request`` on the wire; returns the monotonic time it left."""
        ...

    def poll(self) -> list[Finished]:
        """Requests that finished since the last call (without waiting)."""
        ...

    def wait(self, until: float) -> None:
        """Block until a request finishes or the monotonic time ``until`` comes."""
        ...

    def close(self) -> None: ...


class SyncWire:
    """One request at a time, sent at once through a blocking transport."""

    capacity = 1

    def __init__(self, transport: Transport, monotonic: Callable[[], float]) -> None:
        self.transport = transport
        self._monotonic = monotonic
        self._done: deque[Finished] = deque()

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        sent = self._monotonic()
        try:
            result: HttpResponse | TransportError = self.transport.send(request, timeout)
        except TransportError as error:
            result = error
        except BaseException:
            # A stop signal inside the blocking send: the request may have left, so it ends as
            # one that got no answer; left on the wire, the restore would wait for it forever.
            self._done.append((token, TransportError("connection", "interrupted before the answer"),
                               self._monotonic()))
            raise
        self._done.append((token, result, self._monotonic()))
        return sent

    def poll(self) -> list[Finished]:
        done = list(self._done)
        self._done.clear()
        return done

    def wait(self, until: float) -> None:  # nothing is ever left on the wire
        return None

    def close(self) -> None:
        return None


class ThreadWire:
    """Up to ``workers`` requests on the wire at once, each worker with its own transport."""

    def __init__(self, make_transport: Callable[[], Transport], workers: int,
                 monotonic: Callable[[], float]) -> None:
        if workers < 1:
            raise ValueError("a wire needs at least one worker")
        self.capacity = workers
        self._make_transport = make_transport
        self._monotonic = monotonic
        # SimpleQueue (C, lock-free for the reader): a third of the hand-over cost of Queue.
        self._jobs: queue.SimpleQueue[tuple[Any, HttpRequest, float] | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Finished] = queue.SimpleQueue()
        self._ready: deque[Finished] = deque()  # taken off the queue by wait()
        self._threads: list[threading.Thread] = []
        self._outstanding = 0  # started and not yet handed back by poll()

    def _spawn_if_short(self) -> None:
        # Workers (and their connections) are made as the work needs them, not all up front:
        # a run that never has more than two requests on the wire opens two connections.
        if self._outstanding > len(self._threads) and len(self._threads) < self.capacity:
            thread = threading.Thread(target=self._work, args=(self._make_transport,), daemon=True,
                                      name=f"bmctl-wire-{len(self._threads)}")
            self._threads.append(thread)
            thread.start()

    def _work(self, make_transport: Callable[[], Transport]) -> None:
        transport = make_transport()  # built in the worker: its connections are its own
        while True:
            job = self._jobs.get()
            if job is None:
                close = getattr(transport, "close", None)
                if close is not None:
                    close()
                return
            token, request, timeout = job
            try:
                result: HttpResponse | TransportError = transport.send(request, timeout)
            except TransportError as error:
                result = error
            except Exception as error:  # noqa: BLE001 - a worker must never die silently
                result = TransportError("connection", f"{type(error).__name__}: {error}")
            self._done.put((token, result, self._monotonic()))

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        sent = self._monotonic()
        self._outstanding += 1
        self._spawn_if_short()
        self._jobs.put((token, request, timeout))
        return sent

    def poll(self) -> list[Finished]:
        done = list(self._ready)
        self._ready.clear()
        finished = self._done
        while not finished.empty():
            done.append(finished.get_nowait())  # only this thread takes from it: never Empty
        self._outstanding -= len(done)
        return done

    def wait(self, until: float) -> None:
        if self._ready:
            return
        # In slices of at most a second: a signal (Ctrl-C, SIGTERM) is handled within one.
        timeout = min(1.0, max(0.0, until - self._monotonic()))
        try:
            self._ready.append(self._done.get(timeout=timeout))
        except queue.Empty:
            return

    def close(self) -> None:
        for _ in self._threads:
            self._jobs.put(None)
