"""The sandbox marketplace for command-level tests, in simulated time: the real CLI runs
in-process over the in-process transport (no sockets, no waiting on the wall clock), with
request counting and scripted one-shot faults."""

from __future__ import annotations

import random
import sqlite3
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from bmctl.api.money import Money
from bmctl.sandbox.app import Decision, SandboxApp
from bmctl.sandbox.inprocess import InProcessTransport
from bmctl.sandbox.model import ListingSpec, Marketplace, OfferSpec
from bmctl.traffic.clock import SimClock
from tests.cli.helpers import invoke

# Not winning in fr-fr (rivals 95.00 and 110.00): price_to_win 94.99.
LID = "11111111-2222-4333-8444-555555555555"
# Two markets: winning in fr-fr, not in de-de; no min_price in de-de.
TWO = "22222222-3333-4444-8555-666666666666"
# Japan: JPY, no decimals.
JP = "33333333-4444-4555-8666-777777777777"
UNKNOWN = "99999999-9999-4999-8999-999999999999"

CURRENCIES = {"fr-fr": "EUR", "de-de": "EUR", "en-gb": "GBP", "ja-jp": "JPY"}


def offer(market: str, price: str, *, max_price: str, min_price: str | None = None,
          rivals: Iterable[str] = (), incumbent: bool = False) -> OfferSpec:
    cur = CURRENCIES[market]
    m = lambda text: Money.parse(text, cur)  # noqa: E731
    return OfferSpec(market, m(price), m(max_price), m(min_price) if min_price else None,
                     tuple(m(r) for r in rivals), incumbent)


def small_catalogue() -> list[ListingSpec]:
    return [
        ListingSpec(id=LID, sku="SKU-ONE", quantity=3, listing_id=1001, title="Phone one",
                    product_id="aaaaaaaa-0000-4000-8000-000000000001", backmarket_id=1,
                    offers=(offer("fr-fr", "100.00", max_price="150.00", min_price="80.00",
                                  rivals=("95.00", "110.00")),)),
        ListingSpec(id=TWO, sku="SKU-TWO", quantity=5, listing_id=1002, title="Phone two",
                    product_id="aaaaaaaa-0000-4000-8000-000000000002", backmarket_id=2,
                    offers=(offer("fr-fr", "200.00", max_price="260.00", min_price="150.00",
                                  rivals=("210.00",)),
                            offer("de-de", "220.00", max_price="260.00", rivals=("205.00",)))),
        ListingSpec(id=JP, sku="SKU-JP", quantity=2, listing_id=1003, title="Phone jp",
                    product_id="aaaaaaaa-0000-4000-8000-000000000003", backmarket_id=3,
                    offers=(offer("ja-jp", "15000", max_price="20000", min_price="12000",
                                  rivals=("14000",)),)),
    ]


class CountingApp(SandboxApp):
    """A SandboxApp that records every request reaching the server (faulty ones included) and
    plays ``script`` first: one entry per request, a fault kind (``error``, ``drop``,
    ``malformed``, ``waf``, ``challenge``) or None for a normal answer."""

    def __init__(self, marketplace: Marketplace, token: str = "sandbox", *,
                 script: Iterable[str | None] = (), **kwargs: Any) -> None:
        super().__init__(marketplace, token, **kwargs)
        self.script = list(script)
        self.seen: list[tuple[str, str]] = []
        self.answers: list[Any] = []

    def respond(self, request: Any, decision: Decision = Decision()) -> Any:
        response = super().respond(request, decision)
        self.answers.append(response)
        return response

    def decide(self, request: Any) -> Decision:
        self.seen.append((request.method, request.path))
        if self.script:
            return Decision(0.0, self.script.pop(0))
        return super().decide(request)

    def writes(self) -> list[tuple[str, str]]:
        return [s for s in self.seen if s[0] != "GET"]


class _NoServer:
    """What the tests read of a server: a lock (nothing runs concurrently here) and stop()."""

    lock = nullcontext()

    def stop(self) -> None:
        pass


@dataclass
class Sandbox:
    """A sandbox marketplace on a simulated clock and the environment that points bmctl at it."""

    app: CountingApp
    clock: SimClock
    transport: InProcessTransport
    db: Path
    token: str
    url: str = "http://127.0.0.1:8765"  # loopback, so no User-Agent warning; nothing listens
    server: Any = field(default_factory=_NoServer)
    config: Path | None = None
    outputs: list[str] = field(default_factory=list)

    def env(self, **extra: str) -> dict[str, str]:
        base = {"BMCTL_TOKEN": self.token, "BMCTL_BASE_URL": self.url, "BMCTL_DB": str(self.db)}
        if self.config is not None:
            base["BMCTL_CONFIG"] = str(self.config)
        return {**base, **extra}

    def run(self, *args: str, env: Mapping[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
        self.clock.advance(0.1)  # a process's start-up: two runs never start at one instant
        result = invoke(list(args), {**self.env(), **(env or {})}, input=input, clock=self.clock,
                        transport=self.transport)
        self.outputs.append(result.stdout + result.stderr)
        assert "Traceback" not in result.stderr, result.stderr
        return result

    def price(self, listing_id: str, market: str = "fr-fr") -> str:
        with self.server.lock:
            return str(self.app.marketplace.offer(listing_id, market).price)

    def min_price(self, listing_id: str, market: str = "fr-fr") -> str | None:
        with self.server.lock:
            value = self.app.marketplace.offer(listing_id, market).min_price
        return None if value is None else str(value)

    @property
    def seen(self) -> list[tuple[str, str]]:
        with self.server.lock:
            return list(self.app.seen)

    def writes(self) -> list[tuple[str, str]]:
        return [s for s in self.seen if s[0] != "GET"]

    def dump_db(self) -> str:
        """Every row of every table of the database, as text."""
        conn = sqlite3.connect(self.db)
        try:
            tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
            lines = []
            for table in tables:
                for row in conn.execute(f'select * from "{table}"'):
                    lines.append(f"{table}: {row!r}")
            return "\n".join(lines)
        finally:
            conn.close()


def start_sandbox(tmp_path: Path, specs: list[ListingSpec] | None = None, *, token: str = "sandbox",
                  script: Iterable[str | None] = (), limits: bool = True, settle: float = 0.0,
                  reveal: bool = True) -> Sandbox:
    from bmctl.sandbox.limits import DEFAULT_LIMITS

    clock = SimClock()
    marketplace = Marketplace(clock.monotonic, settle=settle, reveal=reveal, rng=random.Random(3))
    marketplace.load(specs if specs is not None else small_catalogue())
    app = CountingApp(marketplace, token, script=script, limits=DEFAULT_LIMITS if limits else None,
                      rng=random.Random(5))
    tmp_path.mkdir(parents=True, exist_ok=True)
    return Sandbox(app=app, clock=clock, transport=InProcessTransport(app, clock, latency=0.02),
                   db=tmp_path / "bmctl.db", token=token)
