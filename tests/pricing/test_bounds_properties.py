"""Property test of the pricing rules over random markets, costs and caps (simulated time).

No write is ever outside the intersection of every bound (the cost rule's, the listing's
min_price / max_price, the operator's); a blank, zero or missing cost never gives a floor;
no dip or peak write moves a price further than ``max_step_down`` / ``max_step_up``; over
consecutive cron runs with rivals undercutting, the price-war cooldown (random rounds, windows
and cooldowns) holds listings without a request and never lets a write out of the bounds.
The bounds are recomputed here independently of bmctl, from the case's numbers.

CI runs a modest number of examples; a dedicated run of many cases:

    BMCTL_PROPERTY_EXAMPLES=10000 python -m pytest tests/pricing/test_bounds_properties.py -q -n0 --timeout 0
"""

from __future__ import annotations

import sqlite3
import tempfile
from dataclasses import dataclass, replace
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from bmctl.api.money import Money, tick
from bmctl.config import PricingSettings
from bmctl.pricing.costs import check_pricing, parse_costs
from bmctl.pricing.probe_types import ProbeParams, ProbeTarget
from bmctl.sandbox.world import SimWorld
from tests.pricing.harness import by_listing, run_probes
from tests.pricing.test_probe_properties import MARKETS, PROPERTY, Case, cases, check_write, spec_of

OUTCOMES = ("won", "kept", "unwinnable", "lost", "skipped", "capped", "held")


@dataclass(frozen=True)
class Cost:
    kind: str  # "value" | "blank" | "zero" | "missing"
    ticks: int = 0
    other_currency: bool = False  # the row says a currency that is not the market's


@dataclass(frozen=True)
class Rules:
    fee_rate: Decimal
    fee_fixed: dict[str, str] | None  # per currency; a currency left out cannot use costs
    min_margin: Decimal
    max_margin: Decimal | None
    step_down: str | dict[str, str] | None
    step_up: str | dict[str, str] | None


def caps() -> st.SearchStrategy[str | dict[str, str] | None]:
    shares = st.sampled_from(["1%", "2%", "5%", "10%", "0.25", "0.5"])
    amounts = st.sampled_from([{"EUR": "1.00", "JPY": "1"}, {"EUR": "3.00", "JPY": "5"},
                               {"EUR": "20.00", "JPY": "20"}, {"EUR": "2.50"}])
    return st.one_of(st.none(), shares, amounts)


@st.composite
def rules(draw: st.DrawFn) -> Rules:
    fee_rate = Decimal(draw(st.integers(0, 15))) / 100
    fee_fixed = draw(st.one_of(st.none(), st.sampled_from([{"EUR": "0.50", "JPY": "50"}, {"EUR": "0"},
                                                           {"EUR": "1.99", "JPY": "0"}])))
    min_margin = Decimal(draw(st.integers(-5, 25))) / 100
    max_margin = draw(st.one_of(st.none(), st.integers(max(0, int(min_margin * 100)), 60)))
    return Rules(fee_rate, fee_fixed, min_margin, Decimal(max_margin) / 100 if max_margin is not None else None,
                 draw(caps()), draw(caps()))


@st.composite
def costs(draw: st.DrawFn, case: Case) -> Cost:
    kind = draw(st.sampled_from(["value", "value", "value", "blank", "zero", "missing"]))
    # Mostly costs whose floor lands near the market (every case then shows up), some anywhere.
    near = st.integers(max(1, case.price * 4 // 10), max(1, case.price * 9 // 10))
    ticks = draw(st.one_of(near, near, st.integers(1, case.price * 2)))
    return Cost(kind, ticks, draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()))


def settings_of(r: Rules) -> PricingSettings:
    def text(value: Decimal | None) -> str:
        return "" if value is None else str(value)

    return PricingSettings(fee_rate=text(r.fee_rate), fee_fixed=r.fee_fixed if r.fee_fixed is not None else "",
                           min_margin=text(r.min_margin), max_margin=text(r.max_margin),
                           max_step_down=r.step_down or "", max_step_up=r.step_up or "")


def cost_cell(cost: Cost, currency: str) -> tuple[str, str]:
    if cost.kind == "blank":
        return "", ""
    if cost.kind == "zero":
        return ("0.00" if currency == "EUR" else "0"), ""
    amount = Decimal(cost.ticks) * tick(currency)
    return str(amount), ("GBP" if cost.other_currency else currency)


def expected(case: Case, cost: Cost, r: Rules) -> tuple[Money, Money, str, str] | None:
    """(floor, ceiling, floor source, ceiling source) by the documented rules, or None when the
    listing must be skipped."""
    cur = case.currency
    grid = tick(cur)
    floors: list[tuple[str, Money]] = []
    ceilings: list[tuple[str, Money]] = []
    if case.floor is not None:
        floors.append(("option", case.money(case.floor)))  # type: ignore[arg-type]
    if case.ceiling is not None:
        ceilings.append(("option", case.money(case.ceiling)))  # type: ignore[arg-type]
    if cost.kind == "value":
        if cost.other_currency:
            return None
        fixed = Decimal(0) if r.fee_fixed is None else (
            Decimal(r.fee_fixed[cur]) if cur in r.fee_fixed else None)
        if fixed is None:
            return None
        base = Decimal(cost.ticks) * grid + fixed
        floors.append(("cost", Money((base / (1 - r.fee_rate - r.min_margin)).quantize(grid, ROUND_CEILING), cur)))
        if r.max_margin is not None:  # never under the cost's own floor (close margins)
            top = (base / (1 - r.fee_rate - r.max_margin)).quantize(grid, ROUND_FLOOR)
            ceilings.append(("cost", Money(max(top, floors[-1][1].amount), cur)))
    if case.min_price is not None:
        floors.append(("min_price", case.money(case.min_price)))  # type: ignore[arg-type]
    ceilings.append(("max_price", case.money(case.max_price)))  # type: ignore[arg-type]
    floors = [(s, m) for s, m in floors if m.amount > 0]
    if not floors:
        return None
    floor_source, floor = max(floors, key=lambda pair: pair[1].amount)
    ceiling_source, ceiling = min(ceilings, key=lambda pair: pair[1].amount)
    if floor > ceiling:
        return None
    return floor, ceiling, floor_source, ceiling_source


def cap_of(cap: str | dict[str, str] | None, old: Money) -> Decimal | None:
    """The largest move allowed from ``old`` (0: none), or None without a cap."""
    if cap is None:
        return None
    if isinstance(cap, dict):
        return Decimal(cap[old.currency]) if old.currency in cap else Decimal(0)
    share = Decimal(cap[:-1]) / 100 if cap.endswith("%") else Decimal(cap)
    return old.amount * share


WARS = [(0, "24h", "6h"), (1, "1h", "30m"), (2, "24h", "6h"), (3, "24h", "6h"), (2, "2h", "1h")]


@PROPERTY
@given(data=st.data(), batch=st.lists(cases(), min_size=1, max_size=3), r=rules(),
       reveal=st.booleans(), settle=st.sampled_from([0.0, 2.0]), max_raises=st.integers(0, 3),
       headroom=st.sampled_from(["auto", "hidden"]), war=st.sampled_from(WARS),
       runs=st.integers(1, 3))
def test_no_write_outside_the_bounds_from_every_source_and_no_move_beyond_the_caps(
        data: st.DataObject, batch: list[Case], r: Rules, reveal: bool, settle: float, max_raises: int,
        headroom: str, war: tuple[int, str, str], runs: int) -> None:
    """One to three cron runs on one database, rivals undercutting between them (a price war the
    cooldown may hold): whatever the costs, caps and cooldowns, every write of every run is
    inside the bounds and no move goes beyond its cap; a held listing costs no request."""
    costs_of = [data.draw(costs(case)) for case in batch]
    specs = [spec_of(c) for c in batch]
    lines = ["listing_id,cost,currency,note"]
    for spec, case, cost in zip(specs, batch, costs_of):
        if cost.kind != "missing":
            amount, currency = cost_cell(cost, case.currency)
            lines.append(f"{spec.id},{amount},{currency},ignored")
    rules_ = replace(check_pricing(settings_of(r)), costs=parse_costs("\n".join(lines) + "\n", "costs.csv"))
    params = ProbeParams(settle=settle, max_raises=max_raises, headroom=headroom, rules=rules_)
    pricing = replace(settings_of(r), war_rounds=war[0], war_window=war[1], war_cooldown=war[2])
    world = SimWorld(specs, reveal=reveal, settle=settle)
    targets = [ProbeTarget(s.id, MARKETS[c.currency], c.money(c.floor), c.money(c.ceiling))
               for s, c in zip(specs, batch)]
    by_id = {s.id: (c, cost) for s, c, cost in zip(specs, batch, costs_of)}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "p.db"
        for run in range(runs):
            if run:  # the rivals answer: each undercuts our price by a few ticks, some time later
                for spec, case in zip(specs, batch):
                    ours = world.price(spec.id, MARKETS[case.currency])
                    cut = data.draw(st.integers(1, 3)) * tick(case.currency)
                    world.marketplace.set_rivals(spec.id, MARKETS[case.currency],
                                                 [ours.with_amount(max(ours.amount - cut, tick(case.currency)))])
                world.clock.advance(data.draw(st.sampled_from([300.0, 900.0, 3600.0, 7 * 3600.0])))
            summary, recorder = run_probes(world, db, targets, params=params, pricing=pricing)
            check_run(summary, recorder, specs, batch, costs_of, by_id, r)
        conn = sqlite3.connect(db)
        moves = list(conn.execute("select listing_id, old_price, new_price, currency, reason from price_changes"))
        conn.close()
    for _, old_text, new_text, currency, reason in moves:
        old, new = Money(Decimal(old_text), currency), Money(Decimal(new_text), currency)
        if reason == "dip":
            cap = cap_of(r.step_down, old)
            assert cap is None or old.amount - new.amount <= cap, (reason, old, new, r)
        elif reason == "peak":
            cap = cap_of(r.step_up, old)
            assert cap is None or new.amount - old.amount <= cap, (reason, old, new, r)


def check_run(summary: Any, recorder: Any, specs: list[Any], batch: list[Case], costs_of: list[Cost],
              by_id: dict[str, tuple[Case, Cost]], r: Rules) -> None:
    """One run's writes inside the bounds, and each listing's outcome and bounds as documented."""
    results = by_listing(summary)
    assert len(results) == len(batch)
    for request in recorder.sent:
        if request.method == "POST":
            case, cost = by_id[request.listing_id or ""]
            bounds = expected(case, cost, r)
            assert bounds is not None, f"a write for a listing that must be skipped: {case} {cost} {r}"
            check_write(request.body or b"", case.currency, bounds[:2])
    for spec, case, cost in zip(specs, batch, costs_of):
        result = results[spec.id]
        assert result.outcome in OUTCOMES, result
        event(f"{result.outcome}, floor from {result.floor_source}")
        if result.outcome == "held":  # the cooldown: not even a read
            assert result.writes == 0 and not [q for q in recorder.sent if q.listing_id == spec.id]
            continue
        bounds = expected(case, cost, r)
        if cost.kind != "value":
            assert result.floor_source != "cost" and result.ceiling_source != "cost", (cost, result)
        if bounds is None:
            assert (result.outcome, result.writes) == ("skipped", 0), (case, cost, r, result)
            continue
        if result.outcome == "skipped" and ("does not compete" in result.reason or "breaker" in result.reason):
            continue
        assert (result.floor, result.ceiling, result.floor_source, result.ceiling_source) == bounds, (
            case, cost, r, result)
        if result.outcome == "capped":
            assert result.writes <= 1
