"""``report``: what repricing earned, per listing and market, from the journal and the history.

Read-only arithmetic over the ``probes`` and ``price_changes`` tables; every figure is defined in
docs/REFERENCE.md (bmctl report) so that it can be checked by hand. Money is Decimal, per
currency, never summed across currencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bmctl.pricing.cooldown import is_war_round
from bmctl.pricing.journal import APPLIED

#: The fields of a report row, in order (the json/csv contract).
REPORT_FIELDS = (
    "listing_id", "market", "currency", "probes", "probes_won", "backbox_share", "price_changes",
    "writes", "avg_price", "avg_floor", "avg_ceiling", "range_position", "peak_margin", "peak_wins",
    "war_rounds",
)
#: Outcomes of a probe that decided something about the Backbox (the denominator of the share).
DECIDED = ("won", "kept", "lost", "unwinnable", "capped")
#: Outcomes that end with the Backbox ours (``kept``: already winning, price unchanged).
WINNING = ("won", "kept")
SHARE_PLACES = Decimal("0.0001")


@dataclass
class _Tally:
    """The running sums of one (listing, market)."""

    currency: str = ""
    probes: int = 0
    won: int = 0
    prices: list[Decimal] = field(default_factory=list)
    floors: list[Decimal] = field(default_factory=list)
    ceilings: list[Decimal] = field(default_factory=list)
    peak: Decimal = Decimal(0)
    peak_wins: int = 0
    rounds: int = 0
    changes: int = 0
    writes: int = 0


def _amount(text: Any) -> Decimal | None:
    try:
        return Decimal(str(text)) if text not in (None, "") else None
    except ArithmeticError:
        return None


def _mean(values: list[Decimal], quantum: Decimal) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(quantum, ROUND_HALF_UP)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def report(db: Any, since: str, *, listing_id: str | None = None, market: str | None = None) -> list[dict[str, Any]]:
    """One row per (listing, market) with a probe or a price change since ``since`` (the
    store's UTC text), ordered by listing and market."""
    from bmctl.api.money import tick

    where, params = _filters(since, listing_id, market, "coalesce(finished_at, updated_at)")
    tallies: dict[tuple[str, str], _Tally] = {}
    probes = db.conn.execute(
        "select listing_id, market, currency, outcome, dip_price, final_price, floor, ceiling"
        f" from probes where state = 'closed' and {where}", params)
    for lid, mkt, currency, outcome, dip, final, floor, ceiling in probes:
        tally = tallies.setdefault((lid, mkt), _Tally())
        tally.currency = tally.currency or currency or ""
        if is_war_round({"outcome": outcome, "dip_price": dip}):
            tally.rounds += 1
        if outcome not in DECIDED:
            continue
        tally.probes += 1
        tally.won += outcome in WINNING
        final_amount, floor_amount, ceiling_amount = _amount(final), _amount(floor), _amount(ceiling)
        if final_amount is not None:
            tally.prices.append(final_amount)
            if floor_amount is not None:
                tally.floors.append(floor_amount)
            if ceiling_amount is not None:
                tally.ceilings.append(ceiling_amount)
        dip_amount = _amount(dip)
        if outcome == "won" and dip_amount is not None and final_amount is not None:
            tally.peak += final_amount - dip_amount
            tally.peak_wins += 1
    where, params = _filters(since, listing_id, market, "ts")
    changes = db.conn.execute(f"select listing_id, market, currency, status from price_changes where {where}", params)
    for lid, mkt, currency, status in changes:
        tally = tallies.setdefault((lid, mkt), _Tally())
        tally.currency = tally.currency or currency or ""
        tally.writes += 1
        tally.changes += status in APPLIED
    rows = []
    for (lid, mkt), tally in sorted(tallies.items()):
        quantum = tick(tally.currency) if tally.currency else Decimal("0.01")
        price = _mean(tally.prices, quantum)
        floor = _mean(tally.floors, quantum)
        ceiling = _mean(tally.ceilings, quantum)
        position = None
        if price is not None and floor is not None and ceiling is not None and ceiling > floor:
            position = ((price - floor) / (ceiling - floor)).quantize(SHARE_PLACES, ROUND_HALF_UP)
        share = (Decimal(tally.won) / tally.probes).quantize(SHARE_PLACES, ROUND_HALF_UP) if tally.probes else None
        rows.append({
            "listing_id": lid, "market": mkt, "currency": tally.currency or None,
            "probes": tally.probes, "probes_won": tally.won, "backbox_share": _text(share),
            "price_changes": tally.changes, "writes": tally.writes,
            "avg_price": _text(price), "avg_floor": _text(floor), "avg_ceiling": _text(ceiling),
            "range_position": _text(position),
            "peak_margin": _text(tally.peak.quantize(quantum)) if tally.probes else None,
            "peak_wins": tally.peak_wins, "war_rounds": tally.rounds,
        })
    return rows


def _filters(since: str, listing_id: str | None, market: str | None, at: str) -> tuple[str, list[Any]]:
    clauses, params = [f"{at} >= ?"], [since]
    if listing_id is not None:
        clauses.append("lower(listing_id) = ?")
        params.append(listing_id.lower())
    if market is not None:
        clauses.append("market = ?")
        params.append(market)
    return " and ".join(clauses), params


def win_series(db: Any, since: str, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
    """Per (listing, market), the price each decided probe left the listing at, oldest first,
    marked ``won`` (the Backbox ours at its end) or ``lost`` (not): the report's chart."""
    from bmctl.pricing.journal import PricePoint

    series: dict[tuple[str, str], list[Any]] = {key: [] for key in keys}
    if not keys:
        return series
    marks = ",".join("?" * len(DECIDED))
    rows = db.conn.execute(
        "select listing_id, market, currency, outcome, final_price, coalesce(finished_at, updated_at) as at"
        f" from probes where state = 'closed' and at >= ? and outcome in ({marks}) order by at, id",
        (since, *DECIDED))
    for lid, mkt, currency, outcome, final, at in rows:
        points = series.get((lid, mkt))
        if points is not None and final:
            points.append(PricePoint(at, final, currency, "won" if outcome in WINNING else "lost"))
    return series
