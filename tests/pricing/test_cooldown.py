"""Price-war cooldown and raise back over several runs on one database (cron, simulated time)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from bmctl.config import PricingSettings
from bmctl.pricing.cooldown import CooldownRules, PricingMemory, is_war_round
from bmctl.pricing.probe_types import ProbeParams, ProbeTarget
from bmctl.sandbox.world import SimWorld
from tests.pricing.harness import listing, money, run_probes

MINUTES = 60.0
HOURS = 3600.0


def cron(world: SimWorld, db: Path, spec: Any, *, params: ProbeParams | None = None,
         pricing: PricingSettings | None = None, **target_kw: Any) -> tuple[Any, Any]:
    """One `bmctl probe ID` run over the world; (result, requests sent)."""
    summary, recorder = run_probes(world, db, [ProbeTarget(spec.id, "fr-fr", **target_kw)],
                                   params=params or ProbeParams(settle=world.settle),
                                   pricing=pricing or PricingSettings())
    (result,) = summary.results
    return result, recorder.sent


def undercut(world: SimWorld, spec: Any) -> None:
    """The rival answers our win: one tick under our price."""
    ours = world.price(spec.id, "fr-fr")
    world.marketplace.set_rivals(spec.id, "fr-fr", [ours.with_amount(ours.amount - Decimal("0.01"))])


def test_three_rounds_in_a_day_hold_the_listing_without_a_request(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], settle=2.0)
    db = tmp_path / "bmctl.db"
    outcomes = []
    for _ in range(3):
        result, _ = cron(world, db, spec)
        outcomes.append(result)
        undercut(world, spec)
        world.clock.advance(15 * MINUTES)
    assert [r.outcome for r in outcomes] == ["won", "won", "won"]
    assert all(r.dip_price is not None for r in outcomes)
    assert "price war" not in outcomes[1].reason
    assert "; price war: held until " in outcomes[2].reason  # the third round starts the hold
    assert "3 price-war rounds in 24h" in outcomes[2].reason
    held, sent = cron(world, db, spec)
    assert held.outcome == "held" and sent == []  # a held listing costs no request
    assert held.reason.startswith("held until ") and "3 price-war rounds in 24h" in held.reason
    assert held.writes == 0 and held.final_price is None
    # The plan of a dry run shows it too.
    planned, sent = cron(world, db, spec, params=ProbeParams(settle=2.0, dry_run=True))
    assert (planned.outcome, sent) == ("held", [])
    # After the cooldown the listing is probed again.
    world.clock.advance(6 * HOURS)
    again, sent = cron(world, db, spec)
    assert again.outcome == "won" and sent


def test_unwinnable_rounds_count_and_war_rounds_zero_never_holds(tmp_path: Path) -> None:
    spec = listing("100.00", ["45.00"])  # the price to win is below the floor (50)
    world = SimWorld([spec])
    db = tmp_path / "bmctl.db"
    results = []
    for _ in range(3):
        results.append(cron(world, db, spec)[0])
        world.clock.advance(1 * HOURS)
    assert [r.outcome for r in results] == ["unwinnable"] * 3
    assert "held until" in results[2].reason
    assert cron(world, db, spec)[0].outcome == "held"
    off = PricingSettings(war_rounds=0)
    assert cron(world, db, spec, pricing=off)[0].outcome == "unwinnable"


def test_rounds_spread_wider_than_the_window_do_not_hold(tmp_path: Path) -> None:
    spec = listing("100.00", ["45.00"])
    world = SimWorld([spec])
    db = tmp_path / "bmctl.db"
    pricing = PricingSettings(war_window="2h")
    for _ in range(4):
        result, _ = cron(world, db, spec, pricing=pricing)
        assert result.outcome == "unwinnable" and "held" not in result.reason
        world.clock.advance(90 * MINUTES)


def test_a_discovering_target_whose_markets_are_all_held_sends_nothing(tmp_path: Path) -> None:
    spec = listing("100.00", ["45.00"])
    world = SimWorld([spec])
    db = tmp_path / "bmctl.db"
    for _ in range(3):
        cron(world, db, spec)
        world.clock.advance(10 * MINUTES)
    discover = ProbeTarget(spec.id, "fr-fr", discover=("fr-fr", "de-de"))
    summary, recorder = run_probes(world, db, [discover], pricing=PricingSettings())
    assert [r.outcome for r in summary.results] == ["held"] and recorder.sent == []


def test_memory_windows_slide_and_count(tmp_path: Path) -> None:
    rules = CooldownRules(war_rounds=3, war_window=100.0, war_cooldown=50.0)
    memory = PricingMemory(rules)
    lost = {"listing_id": "A", "market": "fr-fr", "outcome": "lost", "dip_price": "9.00", "writes": 2}
    assert memory.record(lost, 0.0) is None
    assert memory.record(lost, 60.0) is None
    hold = memory.record(lost, 90.0)
    assert hold is not None and hold.until == 140.0 and hold.rounds == 3
    assert memory.hold("a", "fr-fr", 139.0) is not None and memory.hold("a", "fr-fr", 140.0) is None
    assert memory.hold("a", "de-de", 100.0) is None
    # One more round while two are still in the window holds it again.
    assert memory.record(lost, 150.0) is not None
    assert not is_war_round({"outcome": "won", "dip_price": None})
    assert is_war_round({"outcome": "won", "dip_price": "9.00"})
    assert not is_war_round({"outcome": "error", "dip_price": "9.00"})
    assert not is_war_round({"outcome": "capped", "dip_price": "9.00"})


def test_raise_back_waits_for_raise_back_after_then_searches_upwards(tmp_path: Path) -> None:
    # Winning at 90 with a rival at 120, headroom hidden: the first probe searches upwards.
    spec = listing("90.00", ["120.00"], incumbent=True)
    world = SimWorld([spec], reveal=False)
    db = tmp_path / "bmctl.db"
    first, _ = cron(world, db, spec)
    assert (first.outcome, first.final_price) == ("won", money("119.99"))
    assert first.reason == "raised back from 90.00 EUR to 119.99 EUR"
    # The rival leaves; an hour later the price changed too recently: kept, no write.
    world.marketplace.set_rivals(spec.id, "fr-fr", [])
    world.clock.advance(1 * HOURS)
    kept, sent = cron(world, db, spec)
    assert (kept.outcome, kept.writes, kept.final_price) == ("kept", 0, money("119.99"))
    assert "no upward search before" in kept.reason and "raise_back_after 24h" in kept.reason
    assert all(r.method == "GET" for r in sent)
    plan, _ = cron(world, db, spec, params=ProbeParams(settle=2.0, dry_run=True))
    assert plan.outcome == "kept" and "no upward search before" in plan.reason
    # A day after the last change: Peak only, up to the ceiling.
    world.clock.advance(23 * HOURS)
    raised, _ = cron(world, db, spec)
    assert (raised.outcome, raised.final_price, raised.dip_price) == ("won", money("200.00"), None)
    assert raised.reason == "raised back from 119.99 EUR to 200.00 EUR"
    assert world.price(spec.id, "fr-fr") == money("200.00")


def test_raise_back_after_is_configurable(tmp_path: Path) -> None:
    spec = listing("90.00", ["120.00"], incumbent=True)
    world = SimWorld([spec], reveal=False)
    db = tmp_path / "bmctl.db"
    cron(world, db, spec)
    world.marketplace.set_rivals(spec.id, "fr-fr", [money("150.00")])
    world.clock.advance(2 * HOURS)
    result, _ = cron(world, db, spec, pricing=PricingSettings(raise_back_after="1h"))
    assert (result.outcome, result.final_price) == ("won", money("149.99"))


def test_discovery_probes_the_markets_that_are_not_held_and_reads_nothing_more_for_the_held(tmp_path: Path) -> None:
    from dataclasses import replace

    from bmctl.sandbox.model import OfferSpec

    base = listing("100.00", ["45.00"])  # fr-fr: the price to win is below the floor
    german = OfferSpec("de-de", money("100.00"), money("200.00"), money("50.00"), (money("95.00"),))
    spec = replace(base, offers=(*base.offers, german))
    world = SimWorld([spec])
    db = tmp_path / "bmctl.db"
    discover = ProbeTarget(spec.id, "fr-fr", discover=("fr-fr", "de-de"))
    for _ in range(3):  # fr-fr: three unwinnable rounds; de-de: one dip, then winning
        run_probes(world, db, [discover], pricing=PricingSettings())
        world.clock.advance(10 * MINUTES)
    summary, recorder = run_probes(world, db, [discover], pricing=PricingSettings())
    assert {r.market: r.outcome for r in summary.results} == {"de-de": "kept", "fr-fr": "held"}
    # One competitors read names both markets; de-de's listing read; nothing for fr-fr.
    assert [(r.method, r.market) for r in recorder.sent] == [("GET", "fr-fr"), ("GET", "de-de")]
    assert "competitors" in recorder.sent[0].path


def test_memory_hold_agrees_with_its_definition_on_random_rounds() -> None:
    import random

    rng = random.Random(17)
    for _ in range(300):
        rules = CooldownRules(war_rounds=rng.randint(1, 4), war_window=float(rng.choice((60, 100, 300))),
                             war_cooldown=float(rng.choice((20, 50, 120))))
        times = sorted(rng.uniform(0, 600) for _ in range(rng.randint(0, 12)))
        memory = PricingMemory(rules, rounds={("a", "fr-fr"): list(times)})
        for now in (rng.uniform(0, 800) for _ in range(20)):
            # Held at `now` iff a round at or before it completed war_rounds rounds within the
            # window and its cooldown still runs; until the latest such cooldown end.
            ends = [times[i] + rules.war_cooldown for i in range(rules.war_rounds - 1, len(times))
                    if times[i] <= now and times[i] - times[i - rules.war_rounds + 1] <= rules.war_window
                    and now < times[i] + rules.war_cooldown]
            hold = memory.hold("A", "fr-fr", now)
            assert (hold.until if hold else None) == (max(ends) if ends else None), (rules, times, now)
