"""Never undercut ourselves: a probe does not dip against our own listing on the same product
holding the Backbox in the same market."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bmctl.pricing.probe_types import ProbeParams, ProbeTarget
from bmctl.sandbox.catalogue import own_offer_pair
from bmctl.sandbox.model import ListingSpec
from bmctl.sandbox.world import SimWorld
from tests.pricing.harness import by_listing, listing, money, run_probes

PRODUCT = "aaaaaaaa-0000-4000-8000-00000000000a"


def pair(winner_rivals: tuple[str, ...] = ("99.00",), *, same_product: bool = True) -> tuple[ListingSpec, ListingSpec]:
    """B holds the Backbox at 95.00 (max_price keeps it there); A at 100.00 sees B's 95.00."""
    b = replace(listing("95.00", winner_rivals, max_price="95.00", incumbent=True), product_id=PRODUCT)
    a = replace(listing("100.00", ["95.00", "99.00"]),
                product_id=PRODUCT if same_product else "bbbbbbbb-0000-4000-8000-00000000000b")
    return a, b


def run(tmp_path: Path, specs: list[ListingSpec], ids: list[str], **kw):  # type: ignore[no-untyped-def]
    world = SimWorld(specs, settle=2.0)
    targets = [ProbeTarget(i, "fr-fr") for i in ids]
    summary, recorder = run_probes(world, tmp_path / "bmctl.db", targets, params=ProbeParams(settle=2.0, **kw))
    return by_listing(summary), recorder, world


def test_no_dip_against_our_own_winning_listing(tmp_path: Path) -> None:
    a, b = pair()
    results, recorder, world = run(tmp_path, [a, b], [a.id])  # B is not in the run: the pages tell
    result = results[a.id]
    assert (result.outcome, result.writes, result.final_price) == ("kept", 0, money("100.00"))
    assert result.reason == f"the Backbox winner is our own listing {b.id[:8]} (at 95.00 EUR): no dip against it"
    assert recorder.writes() == []
    assert any(r.path == "/ws/listings" for r in recorder.sent)  # our products, from the pages


def test_the_dry_run_says_so_too(tmp_path: Path) -> None:
    a, b = pair()
    results, recorder, _ = run(tmp_path, [a, b], [a.id, b.id], dry_run=True)
    assert results[a.id].outcome == "kept" and "our own listing" in results[a.id].reason


def test_a_rival_winning_at_the_price_is_dipped_against(tmp_path: Path) -> None:
    # B costs 95.00 too but a rival holds the Backbox below it: dipping A takes it from the rival.
    a, b = pair(("94.00",))
    a = replace(a, offers=(replace(a.offers[0], rivals=(money("94.00"), money("95.00"))),))
    results, _, _ = run(tmp_path, [a, b], [a.id, b.id])
    assert (results[a.id].outcome, results[a.id].final_price) == ("won", money("93.99"))


def test_another_product_is_no_sibling(tmp_path: Path) -> None:
    a, b = pair(same_product=False)
    results, _, _ = run(tmp_path, [a, b], [a.id])
    assert (results[a.id].outcome, results[a.id].final_price) == ("won", money("94.99"))


def test_the_sandbox_pair_shows_it(tmp_path: Path) -> None:
    specs = own_offer_pair()
    winner, other = specs
    assert winner.product_id == other.product_id
    results, recorder, _ = run(tmp_path, specs, [other.id, winner.id])
    assert results[other.id].outcome == "kept" and winner.id[:8] in results[other.id].reason
    assert recorder.writes() == []
