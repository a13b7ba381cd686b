"""The probe command's core: ``--all`` over every market a listing competes in, the plan it
prints first, least-recently-probed order and ``not_started`` rows per listing and market."""

from __future__ import annotations

import json
import re
import uuid
from functools import partial
from pathlib import Path
from typing import Any

from bmctl.api.money import Money
from bmctl.commands.probe import ProbeRequest, probe
from bmctl.commands.run import CommandContext, execute
from bmctl.pricing.probe_types import ProbeParams
from bmctl.pricing.runner import ProbeRunOptions
from bmctl.sandbox.model import ListingSpec, OfferSpec
from bmctl.sandbox.world import SimWorld
from bmctl.traffic.transport import HttpRequest, HttpResponse
from tests.pricing.harness import Recorder

CURRENCY = {"fr-fr": "EUR", "de-de": "EUR", "en-gb": "GBP", "ja-jp": "JPY"}


def offer(market: str, price: str, rivals: tuple[str, ...], min_price: str, max_price: str) -> OfferSpec:
    cur = CURRENCY[market]
    return OfferSpec(market, Money.parse(price, cur), Money.parse(max_price, cur),
                     Money.parse(min_price, cur), tuple(Money.parse(r, cur) for r in rivals))


def spec(*offers: OfferSpec) -> ListingSpec:
    return ListingSpec(id=str(uuid.uuid4()), sku=f"SKU-{uuid.uuid4().hex[:8]}", offers=offers)


# Not winning in each market: each probe dips once.
FR = spec(offer("fr-fr", "100.00", ("95.00",), "50.00", "200.00"))
GB = spec(offer("en-gb", "90.00", ("85.00",), "40.00", "150.00"))
BOTH = spec(offer("fr-fr", "120.00", ("110.00",), "60.00", "200.00"),
            offer("de-de", "130.00", ("125.00",), "60.00", "200.00"))
JP = spec(offer("ja-jp", "15000", ("14000",), "12000", "20000"))  # another platform (AP)
CATALOGUE = [FR, GB, BOTH, JP]


def run_all(world: SimWorld, db: Path, request: ProbeRequest, *, transport: Any = None,
            dry_run: bool = False, **options: Any) -> tuple[list[dict], list[str], Recorder]:
    """One ``probe --all`` through the command core; its rows, info lines and requests."""
    rows: list[dict] = []
    info: list[str] = []
    recorder = Recorder(transport if transport is not None else world.transport)
    with world.runtime(db) as runtime:
        runtime.transport = recorder
        run_options = ProbeRunOptions(params=ProbeParams(settle=world.settle, dry_run=dry_run), **options)
        execute(CommandContext(runtime, emit=rows.append, info=info.append),
                partial(probe, request=request, targets=request.validate(None), options=run_options),  # type: ignore[arg-type]
                recover=not dry_run)
    return rows, info, recorder


def pairs(rows: list[dict]) -> list[tuple[str, str, str]]:
    return [(row["listing_id"], row["market"], row["currency"]) for row in rows]


def test_all_probes_every_listing_in_every_market_it_competes_in_and_market_narrows(tmp_path: Path) -> None:
    world = SimWorld(CATALOGUE, settle=2.0)
    rows, _, recorder = run_all(world, tmp_path / "a.db",
                                ProbeRequest(all_listings=True, market="fr-fr", every_market=True))
    assert sorted(pairs(rows)) == sorted([
        (FR.id, "fr-fr", "EUR"), (GB.id, "en-gb", "GBP"), (BOTH.id, "fr-fr", "EUR"), (BOTH.id, "de-de", "EUR"),
    ])  # each (listing, market) once, in its own currency; ja-jp is another platform's
    assert {row["outcome"] for row in rows} == {"won"}
    assert world.price(GB.id, "en-gb") == Money.parse("84.99", "GBP")
    assert world.price(BOTH.id, "de-de") == Money.parse("124.99", "EUR")
    # Every market of the platform was asked for its listings, with its own Accept-Language.
    walked = {r.headers["Accept-Language"] for r in recorder.sent if r.path == "/ws/listings"}
    assert walked >= {"fr-fr", "de-de", "en-gb", "sv-se"} and "ja-jp" not in walked

    narrowed, _, _ = run_all(world, tmp_path / "b.db", ProbeRequest(all_listings=True, market="de-de"))
    assert pairs(narrowed) == [(BOTH.id, "de-de", "EUR")]
    jp, _, _ = run_all(world, tmp_path / "c.db", ProbeRequest(all_listings=True, market="ja-jp"))
    assert [(r["market"], r["currency"], r["final_price"]) for r in jp] == [("ja-jp", "JPY", "13999")]


def test_the_plan_counts_the_listing_pages_of_every_market(tmp_path: Path) -> None:
    world = SimWorld(CATALOGUE, settle=2.0)
    rows, info, recorder = run_all(world, tmp_path / "a.db",
                                   ProbeRequest(all_listings=True, market="fr-fr", every_market=True))
    (plan,) = [line for line in info if line.startswith("plan:")]
    pages = sum(1 for r in recorder.sent if r.path == "/ws/listings")
    assert pages == 13  # one page per market of the EU platform
    probes = len(rows)
    assert probes == 4
    match = re.search(r"global ~(\d+)", plan)
    assert match is not None, plan
    # A typical probe reads its listing, its competitors twice and writes once; pages on top.
    assert int(match.group(1)) == pages + 4 * probes, plan
    assert f"{probes} probe(s) in 3 markets, after {pages} listing page(s)" in plan, plan


def test_least_recently_probed_first_across_markets(tmp_path: Path) -> None:
    world = SimWorld(CATALOGUE, settle=2.0)
    db = tmp_path / "cron.db"
    run_all(world, db, ProbeRequest(all_listings=True, market="fr-fr"))  # FR and BOTH in fr-fr
    world.clock.advance(900.0)
    run_all(world, db, ProbeRequest(all_listings=True, market="de-de"))  # BOTH in de-de
    world.clock.advance(900.0)
    rows, _, _ = run_all(world, db, ProbeRequest(all_listings=True, market="fr-fr", every_market=True),
                         max_in_flight=1)
    order = [(row["listing_id"], row["market"]) for row in rows]
    assert order[0] == (GB.id, "en-gb")  # never probed
    assert set(order[1:3]) == {(FR.id, "fr-fr"), (BOTH.id, "fr-fr")}  # probed longest ago
    assert order[3] == (BOTH.id, "de-de")  # probed most recently


def test_a_deadline_leaves_not_started_rows_per_listing_and_market(tmp_path: Path) -> None:
    world = SimWorld(CATALOGUE, settle=2.0)
    rows, _, _ = run_all(world, tmp_path / "a.db",
                         ProbeRequest(all_listings=True, market="fr-fr", every_market=True),
                         deadline=0.5)
    assert sorted(pairs(rows)) == sorted([
        (FR.id, "fr-fr", "EUR"), (GB.id, "en-gb", "GBP"), (BOTH.id, "fr-fr", "EUR"), (BOTH.id, "de-de", "EUR"),
    ])
    assert {row["outcome"] for row in rows} == {"not_started"}


class IgnoresAcceptLanguage:
    """A server whose ``GET /ws/listings`` lists every listing whatever the Accept-Language,
    each in the currency of a market it is offered in (as an independent stand-in did)."""

    def __init__(self, world: SimWorld) -> None:
        self.inner = world.transport

    def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
        if request.path != "/ws/listings":
            return self.inner.send(request, timeout)
        results: dict[str, Any] = {}
        for market in ("fr-fr", "en-gb", "ja-jp"):
            headers = {**request.headers, "Accept-Language": market}
            answer = self.inner.send(HttpRequest(request.method, request.path, request.query, headers,
                                                 base_url=request.base_url, market=market), timeout)
            for row in json.loads(answer.body)["results"]:
                results.setdefault(row["id"], row)
        body = {"count": len(results), "next": None, "previous": None, "results": list(results.values())}
        return HttpResponse(200, {"content-type": "application/json"}, json.dumps(body).encode())


def test_a_listing_of_another_market_is_never_probed_in_the_wrong_one(tmp_path: Path) -> None:
    world = SimWorld(CATALOGUE, settle=2.0)
    rows, _, _ = run_all(world, tmp_path / "a.db",
                         ProbeRequest(all_listings=True, market="fr-fr", every_market=True),
                         transport=IgnoresAcceptLanguage(world))
    assert (GB.id, "en-gb", "GBP") in pairs(rows)
    assert not [row for row in rows if row["listing_id"] in (GB.id, JP.id) and row["market"] != "en-gb"]


def competitor_reads(recorder: Recorder, listing_id: str) -> int:
    return sum(1 for r in recorder.sent if r.path == f"/ws/backbox/v1/competitors/{listing_id}")


def test_every_market_from_one_competitors_read_when_every_page_lists_every_listing(tmp_path: Path) -> None:
    # The stand-in lists every listing on every market's pages (EUR ones in all 11 EUR
    # markets): the markets come from the competitors answer, not from the pages, so no
    # listing is probed (and read at 2/s) in a market it does not compete in.
    world = SimWorld(CATALOGUE, settle=2.0)
    rows, _, recorder = run_all(world, tmp_path / "a.db",
                                ProbeRequest(all_listings=True, market="fr-fr", every_market=True),
                                transport=IgnoresAcceptLanguage(world))
    assert sorted(pairs(rows)) == sorted([
        (FR.id, "fr-fr", "EUR"), (GB.id, "en-gb", "GBP"), (BOTH.id, "fr-fr", "EUR"), (BOTH.id, "de-de", "EUR"),
    ])
    assert {row["outcome"] for row in rows} == {"won"}
    # The market the listing competes in second starts from the first one's read: one read
    # fewer than probing each market on its own.
    alone = 0
    for market in ("fr-fr", "de-de"):
        single = SimWorld(CATALOGUE, settle=2.0)
        _, _, by_id = run_all(single, tmp_path / f"{market}.db", ProbeRequest(ids=[BOTH.id], market=market))
        alone += competitor_reads(by_id, BOTH.id)
    assert competitor_reads(recorder, BOTH.id) == alone - 1
    assert world.price(BOTH.id, "de-de") == Money.parse("124.99", "EUR")


def test_a_listing_that_competes_in_no_market_of_the_platform_is_skipped_in_its_currency(tmp_path: Path) -> None:
    # Priced in EUR on the pages, but its competitors answer names only another platform's market.
    stray = spec(offer("fr-fr", "100.00", ("95.00",), "50.00", "200.00"))
    world = SimWorld([stray], settle=2.0)

    class ElsewhereOnly:
        def __init__(self) -> None:
            self.inner = world.transport

        def send(self, request: HttpRequest, timeout: float) -> HttpResponse:
            answer = self.inner.send(request, timeout)
            if request.path.startswith("/ws/backbox/"):
                records = json.loads(answer.body)
                for record in records:
                    record["market"] = "JP"
                return HttpResponse(answer.status, answer.headers, json.dumps(records).encode())
            return answer

    rows, _, recorder = run_all(world, tmp_path / "a.db",
                                ProbeRequest(all_listings=True, market="fr-fr", every_market=True),
                                transport=ElsewhereOnly())
    assert [(r["market"], r["currency"], r["outcome"]) for r in rows] == [("fr-fr", "EUR", "skipped")]
    assert "none of the markets" in rows[0]["reason"]
    assert not [r for r in recorder.sent if r.method == "POST"]


def test_a_probe_cut_short_is_not_a_turn(tmp_path: Path) -> None:
    """A probe that ended in ``error`` (a failure, an interruption, or a killed run's probe
    closed by recovery) or is still open leaves its listing owed a turn: the next deadline-bound
    run starts with it, not with it at the back of the line."""
    from bmctl.pricing.journal import Journal

    world = SimWorld(CATALOGUE, settle=2.0)
    with world.runtime(tmp_path / "t.db") as runtime:
        journal = Journal(runtime.db, runtime.run_id, runtime.clock.wall)
        journal.record_result({"listing_id": FR.id, "market": "fr-fr", "outcome": "won"})
        journal.record_result({"listing_id": GB.id, "market": "en-gb", "outcome": "error"})
        journal.open_probe(listing_id=BOTH.id, market="fr-fr", original_price=Money.parse("120.00", "EUR"),
                           floor=Money.parse("60.00", "EUR"), ceiling=Money.parse("200.00", "EUR"))
        assert set(journal.last_probed()) == {(FR.id, "fr-fr")}
