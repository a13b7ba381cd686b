"""Running real probe runs over the simulated sandbox world."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bmctl.api.money import Money
from bmctl.pricing.batch import BatchSummary
from bmctl.pricing.probe_types import ProbeParams, ProbeResult, ProbeTarget
from bmctl.pricing.runner import ProbeRun, ProbeRunOptions
from bmctl.sandbox.model import ListingSpec, OfferSpec
from bmctl.sandbox.world import SimWorld
from bmctl.traffic.transport import HttpRequest, HttpResponse


def money(text: str, currency: str = "EUR") -> Money:
    return Money.parse(text, currency)


def listing(price: str, rivals: Sequence[str], *, market: str = "fr-fr", min_price: str | None = "50",
            max_price: str = "200", incumbent: bool = False, currency: str = "EUR",
            quantity: int = 5) -> ListingSpec:
    """One listing in one market, with rival prices."""
    offer = OfferSpec(
        market=market, price=money(price, currency), max_price=money(max_price, currency),
        min_price=money(min_price, currency) if min_price is not None else None,
        rivals=tuple(money(r, currency) for r in rivals), incumbent=incumbent,
    )
    return ListingSpec(id=str(uuid.uuid4()), sku=f"SKU-{uuid.uuid4().hex[:8]}", offers=(offer,),
                       quantity=quantity)


@dataclass
class Recorder:
    """Wraps a transport and keeps every request sent (to check the writes)."""

    inner: Any
    sent: list[HttpRequest] = field(default_factory=list)
    wires: list["RecordingWire"] = field(default_factory=list)

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.sent.append(request)
        return self.inner.send(request, timeout)

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (r.listing_id or "", json.loads(r.body or b"{}"))
            for r in self.sent if r.method == "POST"
        ]


class RecordingWire:
    """A wire (the world's ``SimWire``) that keeps every request it starts in the recorder, and
    counts how many were on it at once and how many answers overtook an earlier request's."""

    def __init__(self, recorder: Recorder, inner: Any) -> None:
        self.recorder = recorder
        self.inner = inner
        self.capacity = inner.capacity
        self.order: dict[Any, int] = {}  # token -> send number
        self.max_on_wire = 0
        self.out_of_order = 0
        self._latest = 0

    def start(self, token: Any, request: HttpRequest, timeout: float) -> float:
        self.recorder.sent.append(request)
        self.order[token] = len(self.recorder.sent)
        self.max_on_wire = max(self.max_on_wire, len(self.order))
        return float(self.inner.start(token, request, timeout))

    def poll(self) -> list[Any]:
        done = self.inner.poll()
        for token, _, _ in done:
            number = self.order.pop(token)
            self.out_of_order += number < self._latest
            self._latest = max(self._latest, number)
        return list(done)

    def wait(self, until: float) -> None:
        self.inner.wait(until)

    def close(self) -> None:
        self.inner.close()


def run_probes(world: SimWorld, db: Path, targets: Sequence[ProbeTarget], *,
               params: ProbeParams | None = None, deadline: float | None = None,
               breaker: int = 5, max_in_flight: int = 16, on_attempt: Any = None,
               transport: Any = None, wire: bool = False, **settings: Any) -> tuple[BatchSummary, Recorder]:
    """One probe run, as `bmctl probe` does it, over the world; returns summary and recorder.

    ``on_attempt`` also sees every AttemptRecord; ``transport`` wraps the world's transport;
    ``wire``: requests travel over the world's ``SimWire`` (``traffic_max_in_flight`` of them
    at once), through the :class:`RecordingWire` kept in ``recorder.wires``."""
    recorder = Recorder(transport if transport is not None else world.transport)
    if wire:
        def make_wire(workers: int) -> RecordingWire:
            made = RecordingWire(recorder, world.transport.wire(workers))
            recorder.wires.append(made)
            return made

        recorder.wire = make_wire  # type: ignore[attr-defined]  # what Runtime looks for
    runtime = world.runtime(db, **settings)
    runtime.transport = recorder
    options = ProbeRunOptions(params=params or ProbeParams(settle=world.settle), deadline=deadline,
                              max_in_flight=max_in_flight, breaker_floor_hits=breaker)
    with runtime:
        if on_attempt is not None:
            controller = runtime.controller
            log = controller.on_attempt

            def both(record: Any) -> None:
                on_attempt(record)
                if log is not None:
                    log(record)

            controller.on_attempt = both
        run = ProbeRun(runtime, options)
        if not options.params.dry_run:
            run.recover_first()
        summary = run.run(list(targets))
    return summary, recorder


def by_listing(summary: BatchSummary) -> dict[str, ProbeResult]:
    return {r.listing_id: r for r in summary.results}


def fault_once(world: SimWorld, fault: str, match: Any) -> list[HttpRequest]:
    """The sandbox's ``fault`` (``malformed``, ``error``, ...) for the first request ``match``
    accepts, then normal answers; returns the requests it hit (to check it happened)."""
    from bmctl.sandbox.app import Decision

    decide = world.app.decide
    hit: list[HttpRequest] = []

    def decide_once(request: HttpRequest) -> Decision:
        if not hit and match(request):
            hit.append(request)
            return Decision(0.0, fault)
        return decide(request)

    world.app.decide = decide_once  # type: ignore[method-assign]
    return hit
