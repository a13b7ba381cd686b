"""The probe's bounds as the intersection of every source (cost rule, min_price/max_price, the
operator's), which source set each, and the caps per write (max_step_down / max_step_up)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bmctl.api.money import Money
from bmctl.config import PricingSettings
from bmctl.pricing.costs import check_pricing, parse_costs
from bmctl.pricing.probe_types import ProbeParams, ProbeTarget
from bmctl.sandbox.world import SimWorld
from tests.pricing.harness import listing, money, run_probes


def params(costs: str | None = None, **pricing: Any) -> ProbeParams:
    rules = check_pricing(PricingSettings(**pricing))
    if costs is not None:
        rules = replace(rules, costs=parse_costs(costs, "costs.csv"))
    return ProbeParams(settle=2.0, rules=rules)


def probe(tmp_path: Path, spec, p: ProbeParams, **target: Any):  # type: ignore[no-untyped-def]
    world = SimWorld([spec], settle=2.0)
    summary, recorder = run_probes(world, tmp_path / "bmctl.db", [ProbeTarget(spec.id, "fr-fr", **target)],
                                   params=p)
    (result,) = summary.results
    return result, recorder, world


def changes(tmp_path: Path) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(tmp_path / "bmctl.db")
    try:
        return list(conn.execute("select old_price, new_price, reason from price_changes order by id"))
    finally:
        conn.close()


def test_the_cost_floor_is_used_and_named(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price="50.00", max_price="200.00")
    # (60 + 0.50) / (1 - 0.10 - 0.05) = 71.176... -> 71.18; max_margin 0.20: 60.5 / 0.7 = 86.42
    p = params(f"listing_id,cost\n{spec.id},60\n", fee_rate="0.10", fee_fixed="0.50 EUR", min_margin="0.05",
               max_margin="0.20")
    result, _, world = probe(tmp_path, spec, p)
    assert (result.floor, result.floor_source) == (money("71.18"), "cost")
    assert (result.ceiling, result.ceiling_source) == (money("86.42"), "cost")
    assert (result.outcome, result.final_price) == ("won", money("79.99"))
    row = result.to_json()
    assert (row["floor_source"], row["ceiling_source"]) == ("cost", "cost")


def test_a_cost_floor_above_the_price_to_win_makes_it_unwinnable(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price="50.00")
    p = params(f"sku,cost\n{spec.sku},75\n", fee_rate="0.10")  # 75 / 0.9 = 83.34
    result, recorder, _ = probe(tmp_path, spec, p)
    assert (result.outcome, result.floor, result.floor_source, result.writes) == (
        "unwinnable", money("83.34"), "cost", 0)
    assert recorder.writes() == []


def test_the_highest_floor_and_lowest_ceiling_win_whatever_their_source(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price="70.00", max_price="150.00")
    p = params(f"listing_id,cost\n{spec.id},60\n")  # floor 60 (min_margin 0)
    result, _, _ = probe(tmp_path, spec, p, floor=money("65.00"), ceiling=money("140.00"))
    assert (result.floor, result.floor_source, result.ceiling, result.ceiling_source) == (
        money("70.00"), "min_price", money("140.00"), "option")
    result, _, _ = probe(tmp_path / "2", spec, p, floor=money("75.00"), source="file")
    assert (result.floor_source, result.ceiling_source) == ("file", "max_price")


@pytest.mark.parametrize("cells", ["{id},", "{id},0", "{id},0.00", "{other},100"])
def test_a_blank_zero_or_missing_cost_never_gives_a_floor(tmp_path: Path, cells: str) -> None:
    spec = listing("100.00", ["80.00"], min_price=None)
    text = "listing_id,cost\n" + cells.format(id=spec.id, other="5fa85f64-5717-4562-b3fc-2c963f66afa6") + "\n"
    result, recorder, world = probe(tmp_path, spec, params(text, fee_rate="0.10", fee_fixed="0.50 EUR"))
    assert (result.outcome, result.writes) == ("skipped", 0)
    assert "no floor" in result.reason
    assert recorder.writes() == [] and world.price(spec.id, "fr-fr") == money("100.00")


def test_a_zero_min_price_is_no_floor_either(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price=None)
    spec = replace(spec, offers=(replace(spec.offers[0], min_price=Money(Decimal("0.00"), "EUR")),))
    result, recorder, _ = probe(tmp_path, spec, ProbeParams(settle=2.0))
    assert (result.outcome, result.writes) == ("skipped", 0) and "no floor" in result.reason


def test_a_cost_in_another_currency_skips_the_listing(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price="50.00")
    result, recorder, _ = probe(tmp_path, spec, params(f"listing_id,cost,currency\n{spec.id},60,GBP\n"))
    assert result.outcome == "skipped" and "in GBP" in result.reason and recorder.writes() == []


def test_an_empty_intersection_skips_the_listing(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price="50.00", max_price="120.00")
    result, recorder, _ = probe(tmp_path, spec, params(f"listing_id,cost\n{spec.id},130\n"))
    assert result.outcome == "skipped" and recorder.writes() == []
    assert result.reason == "floor 130.00 EUR (cost) is above the effective ceiling 120.00 EUR (max_price)"


def test_a_dip_beyond_max_step_down_is_a_capped_dip_kept_for_the_next_run(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price="50.00")
    result, recorder, world = probe(tmp_path, spec, params(max_step_down="5%"))
    assert (result.outcome, result.writes, result.final_price, result.dip_price) == (
        "capped", 1, money("95.00"), money("95.00"))
    assert "max_step_down 5% allows 100.00 EUR -> 95.00 EUR" in result.reason
    assert "79.99 EUR" in result.reason and "not winning" in result.reason
    assert [body["price"] for _, body in recorder.writes()] == ["95.00"]  # no restore
    assert changes(tmp_path) == [("100.00", "95.00", "dip")]
    world.clock.advance(5)
    assert world.price(spec.id, "fr-fr") == money("95.00")


def test_a_capped_dip_rounds_towards_the_start_so_it_never_moves_more_than_the_cap(tmp_path: Path) -> None:
    spec = listing("99.99", ["80.00"], min_price="50.00")
    # The cap is 2.9997: 96.9903 goes up to 97.00 (a move of 2.99); 96.99 would move 3.00.
    result, _, _ = probe(tmp_path, spec, params(max_step_down="3%"))
    assert (result.outcome, result.final_price) == ("capped", money("97.00"))


def test_a_dip_within_max_step_down_is_a_plain_dip(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"], min_price="50.00")
    result, _, _ = probe(tmp_path, spec, params(max_step_down="10.00 EUR"))
    assert (result.outcome, result.final_price) == ("won", money("94.99"))


def test_a_cap_without_an_amount_in_the_currency_allows_no_move(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"], min_price="50.00")
    result, recorder, _ = probe(tmp_path, spec, params(max_step_down="10.00 GBP"))
    assert (result.outcome, result.writes) == ("capped", 0) and recorder.writes() == []
    assert "gives no amount in EUR, so it allows no move" in result.reason


def test_max_step_up_caps_the_peak(tmp_path: Path) -> None:
    spec = listing("90.00", ["120.00"], min_price="50.00", max_price="200.00")
    result, _, _ = probe(tmp_path, spec, params(max_step_up="5.00 EUR"))
    assert (result.outcome, result.final_price) == ("won", money("95.00"))
    assert changes(tmp_path) == [("90.00", "95.00", "peak")]


def test_max_step_up_caps_the_hidden_headroom_search(tmp_path: Path) -> None:
    spec = listing("90.00", ["120.00"], min_price="50.00", max_price="200.00")
    world = SimWorld([spec], settle=2.0, reveal=False)
    p = replace(params(max_step_up="10%"), headroom="hidden", max_raises=3)
    summary, _ = run_probes(world, tmp_path / "bmctl.db", [ProbeTarget(spec.id, "fr-fr")], params=p)
    (result,) = summary.results
    assert result.outcome == "won" and result.final_price == money("99.00")
    for old, new, reason in changes(tmp_path):
        if reason == "peak":
            assert money(new).amount - money(old).amount <= money(old).amount / 10


def test_the_dry_run_plans_the_capped_dip(tmp_path: Path) -> None:
    spec = listing("100.00", ["80.00"], min_price="50.00")
    p = replace(params(max_step_down="5%"), dry_run=True)
    result, recorder, _ = probe(tmp_path, spec, p)
    assert result.outcome == "planned" and result.dip_price == money("95.00") and recorder.writes() == []
    assert result.planned[0].startswith("capped dip 100.00 EUR -> 95.00 EUR")
