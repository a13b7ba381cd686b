"""A whole simulated world in one object: clock, marketplace, app and in-process transport.

Tests, benchmarks and the soak run bmctl's real runtime over it, hours of traffic in
milliseconds, with every request going through the same traffic controller as in production."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.faults import Faults
from bmctl.sandbox.inprocess import InProcessTransport
from bmctl.sandbox.limits import DEFAULT_LIMITS
from bmctl.sandbox.model import Drift, ListingSpec, Marketplace
from bmctl.traffic.clock import SimClock

SANDBOX_TOKEN = "sandbox"
SANDBOX_URL = "http://sandbox.invalid"


@dataclass
class SimWorld:
    """The sandbox marketplace in simulated time, with the transport bmctl sends through."""

    specs: Iterable[ListingSpec]
    settle: float = 2.0
    reveal: bool = True
    drift: Drift | None = None
    faults: Faults | None = None
    latency: float = 0.02
    seed: int = 0
    limits: Mapping[str, tuple[int, float]] | None = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    token: str = SANDBOX_TOKEN

    def __post_init__(self) -> None:
        self.clock = SimClock()
        self.marketplace = Marketplace(self.clock.monotonic, settle=self.settle, reveal=self.reveal,
                                       drift=self.drift, rng=random.Random(self.seed))
        self.marketplace.load(list(self.specs))
        self.app = SandboxApp(self.marketplace, token=self.token, faults=self.faults,
                              limits=self.limits, rng=random.Random(self.seed + 1))
        self.transport = InProcessTransport(self.app, self.clock, latency=self.latency)

    def settings(self, db: Path | str, **overrides: Any) -> Any:
        """bmctl settings pointing at this world (token, base URL, database)."""
        from dataclasses import replace

        from bmctl.config import Settings

        base = Settings(token=self.token, base_url=SANDBOX_URL, db=str(db),
                        user_agent="BM-sandbox-bmctl;sandbox@example.invalid")
        # `probe_settle=...`, `traffic_max_in_flight=...`: a field of that section.
        for section in ("probe", "traffic"):
            prefix = section + "_"
            fields_ = {k[len(prefix):]: overrides.pop(k) for k in list(overrides) if k.startswith(prefix)}
            if fields_:
                base = replace(base, **{section: replace(getattr(base, section), **fields_)})
        return replace(base, **overrides)

    def runtime(self, db: Path | str, command: str = "probe", *, writing: bool = True,
                **overrides: Any) -> Any:
        """A bmctl Runtime over this world (use it as a context manager)."""
        from bmctl.runtime import Runtime

        return Runtime(settings=self.settings(db, **overrides), command=command, argv=[command],
                       writing=writing, clock=self.clock, transport=self.transport)

    def price(self, listing_id: str, market: str) -> Any:
        """The listing's current price in a market (what the listing endpoint shows)."""
        offer = self.marketplace.offer(listing_id, market)
        return offer.money(offer.price)
