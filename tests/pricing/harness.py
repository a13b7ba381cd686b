"""Running real probe runs over the simulated sandbox world."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bmctl.api.money import Money
from bmctl.pricing.batch import BatchSummary
from bmctl.pricing.probe import ProbeParams, ProbeResult, ProbeTarget
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

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        self.sent.append(request)
        return self.inner.send(request, timeout)

    def writes(self) -> list[tuple[str, dict[str, Any]]]:
        return [
            (r.listing_id or "", json.loads(r.body or b"{}"))
            for r in self.sent if r.method == "POST"
        ]


def run_probes(world: SimWorld, db: Path, targets: Sequence[ProbeTarget], *,
               params: ProbeParams | None = None, deadline: float | None = None,
               breaker: int = 5, max_in_flight: int = 16, on_attempt: Any = None,
               transport: Any = None, **settings: Any) -> tuple[BatchSummary, Recorder]:
    """One probe run, as `bmctl probe` does it, over the world; returns summary and recorder.

    ``on_attempt`` also sees every AttemptRecord; ``transport`` wraps the world's transport."""
    recorder = Recorder(transport if transport is not None else world.transport)
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
