"""The Backbox model: lowest price wins, ties stay with the incumbent, settle, reveal, drift."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bmctl.sandbox.model import Drift, UnknownListing
from tests.sandbox.helpers import LID, eur, market, spec


def view(mp, m="fr-fr"):
    return mp.backbox(LID, m)


def test_lowest_price_wins_and_challenger_must_undercut() -> None:
    mp, _ = market(spec("100.00", ("95.00", "110.00")), settle=0)
    v = view(mp)
    assert not v.is_winning
    assert v.price_to_win == eur("94.99")
    assert v.winner_price == eur("95.00")
    mp.set_price(LID, "fr-fr", eur("95.00"))  # a tie does not take it from the incumbent rival
    assert not view(mp).is_winning
    mp.set_price(LID, "fr-fr", eur("94.99"))
    v = view(mp)
    assert v.is_winning and v.winner_price == eur("94.99")


def test_tie_stays_with_us_when_we_are_incumbent() -> None:
    mp, _ = market(spec("95.00", ("95.00",), incumbent=True), settle=0)
    v = view(mp)
    assert v.is_winning
    assert v.price_to_win == eur("94.99")  # the price that wins outright, below our tie
    mp.set_price(LID, "fr-fr", eur("94.00"))
    mp.set_price(LID, "fr-fr", eur("95.00"))  # back to the tie: still ours
    assert view(mp).is_winning
    mp.set_price(LID, "fr-fr", eur("95.01"))
    v = view(mp)
    assert not v.is_winning and v.price_to_win == eur("94.99")
    mp.set_price(LID, "fr-fr", eur("95.00"))  # the rival is incumbent now: a tie is theirs
    assert not view(mp).is_winning


def test_rival_tie_does_not_take_our_backbox() -> None:
    mp, _ = market(spec("90.00", ("95.00",)), settle=0)
    assert view(mp).is_winning
    mp.set_rivals(LID, "fr-fr", [eur("90.00")])
    assert view(mp).is_winning
    mp.set_rivals(LID, "fr-fr", [eur("89.99")])
    assert not view(mp).is_winning


def test_reveal_shows_headroom_and_no_reveal_hides_it() -> None:
    mp, _ = market(spec("90.00", ("95.00", "99.00")), reveal=True)
    assert view(mp).price_to_win == eur("94.99")
    mp, _ = market(spec("90.00", ("95.00", "99.00")), reveal=False)
    v = view(mp)
    assert v.is_winning and v.price_to_win == eur("90.00")


def test_alone_wins_and_reveals_up_to_max_price() -> None:
    mp, _ = market(spec("90.00", (), max_price="120.00"))
    v = view(mp)
    assert v.is_winning and v.price_to_win == eur("120.00") and v.winner_price == eur("90.00")


def test_settle_delay_keeps_the_old_price_in_the_backbox() -> None:
    mp, clock = market(spec("100.00", ("95.00",)), settle=2.0)
    mp.set_price(LID, "fr-fr", eur("94.99"))
    assert mp.offer(LID, "fr-fr").price == Decimal("94.99")  # the listing shows it at once
    clock.advance(1.99)
    v = view(mp)
    assert v.price == eur("100.00") and not v.is_winning
    clock.advance(0.01)
    v = view(mp)
    assert v.price == eur("94.99") and v.is_winning


def test_writes_settle_in_order() -> None:
    mp, clock = market(spec("100.00", ("95.00",)), settle=2.0)
    mp.set_price(LID, "fr-fr", eur("90.00"))
    clock.advance(1.0)
    mp.set_price(LID, "fr-fr", eur("99.00"))
    clock.advance(1.0)
    assert view(mp).price == eur("90.00") and view(mp).is_winning
    clock.advance(1.0)
    assert view(mp).price == eur("99.00") and not view(mp).is_winning


def test_above_max_price_is_offline_and_not_listed() -> None:
    mp, _ = market(spec("90.00", ("95.00",), max_price="100.00"), settle=0)
    mp.set_price(LID, "fr-fr", eur("100.01"))
    assert view(mp) is None and mp.competitors(LID) == []
    mp.set_price(LID, "fr-fr", eur("90.00"))
    assert view(mp).is_winning


def test_out_of_stock_does_not_compete() -> None:
    mp, _ = market(spec("90.00", ("95.00",)))
    mp.set_quantity(LID, 0)
    assert mp.competitors(LID) == []
    mp.set_quantity(LID, 2)
    assert view(mp).is_winning


def test_jpy_tick_is_one_yen() -> None:
    mp, _ = market(spec("15000", ("14000",), min_price="12000", max_price="20000", market="ja-jp"))
    v = mp.backbox(LID, "ja-jp")
    assert v.price_to_win.amount == Decimal("13999") and v.price_to_win.currency == "JPY"


def test_unknown_listing_and_market() -> None:
    mp, _ = market()
    with pytest.raises(UnknownListing):
        mp.get("00000000-0000-4000-8000-000000000000")
    with pytest.raises(UnknownListing):
        mp.offer(LID, "de-de")
    assert mp.get("42").id == LID  # the legacy integer id works too


def test_currency_mismatch_refused() -> None:
    from bmctl.api.money import Money
    mp, _ = market()
    with pytest.raises(ValueError):
        mp.set_price(LID, "fr-fr", Money.parse("10", "GBP"))


def _walk(seed: int) -> list[list[Decimal]]:
    mp, clock = market(spec("100.00", ("95.00", "97.00")), seed=seed,
                       drift=Drift(interval=10.0, step=Decimal("0.01"), band=Decimal("0.05")))
    out = []
    for _ in range(50):
        clock.advance(10.0)
        out.append(list(mp.offer(LID, "fr-fr").rivals))
    return out


def test_drift_is_deterministic_per_seed_and_bounded() -> None:
    a, b, c = _walk(3), _walk(3), _walk(4)
    assert a == b and a != c
    assert len({tuple(x) for x in a}) > 10  # it does move
    for rivals in a:
        assert Decimal("90.25") <= rivals[0] <= Decimal("99.75")
        assert all(r == r.quantize(Decimal("0.01")) for r in rivals)


def test_drift_independent_of_query_order() -> None:
    mp, clock = market(spec("100.00", ("95.00",)), seed=9, drift=Drift(interval=5.0))
    mp2, clock2 = market(spec("100.00", ("95.00",)), seed=9, drift=Drift(interval=5.0))
    for _ in range(20):
        clock.advance(5.0)
        mp.offer(LID, "fr-fr")
    clock2.advance(100.0)
    assert mp.offer(LID, "fr-fr").rivals == mp2.offer(LID, "fr-fr").rivals


def test_drift_can_take_the_backbox_in_time_order() -> None:
    # We win at 95.00 against 96.00; drifting rivals eventually undercut us.
    mp, clock = market(spec("95.00", ("96.00",)), seed=2,
                       drift=Drift(interval=1.0, step=Decimal("0.02"), band=Decimal("0.2")))
    states = []
    for _ in range(200):
        clock.advance(1.0)
        states.append(view(mp).is_winning)
    assert True in states and False in states


def test_specs_round_trip_current_state() -> None:
    mp, _ = market(spec("100.00", ("95.00",)), settle=0)
    mp.set_price(LID, "fr-fr", eur("94.00"))
    (s,) = mp.specs()
    assert s.offers[0].price == eur("94.00") and s.offers[0].incumbent


def test_parse_drift() -> None:
    from bmctl.sandbox.model import parse_drift

    assert parse_drift("interval=30, step=0.05") == Drift(interval=30.0, step=Decimal("0.05"))
    assert parse_drift("") == Drift()
    for bad in ("interval=-1", "band=1", "x=1", "step=inf", "interval=30,interval=40"):
        with pytest.raises(ValueError):
            parse_drift(bad)
