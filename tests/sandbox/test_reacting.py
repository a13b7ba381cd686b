"""Rivals that react: one who undercuts whoever wins, one who leaves and comes back; in the
model, in a catalogue file, and in the generated catalogues the soak uses."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from bmctl.sandbox.catalogue import CatalogueError, generate_catalogue, load_catalogue, save_catalogue
from bmctl.sandbox.model import ReactingRival
from tests.sandbox.helpers import LID, eur, market, spec


def with_rivals(*reacting: ReactingRival, price: str = "100.00", rivals: tuple[str, ...] = ()):  # type: ignore[no-untyped-def]
    base = spec(price, rivals)
    return replace(base, offers=(replace(base.offers[0], reacting=reacting),))


def test_the_undercutter_answers_whoever_wins_one_tick_under_down_to_its_floor() -> None:
    war = ReactingRival("undercut", eur("99.00"), floor=eur("90.00"), interval=60.0)
    mp, clock = market(with_rivals(war), settle=0)
    assert not mp.backbox(LID, "fr-fr").is_winning  # 99 < our 100
    mp.set_price(LID, "fr-fr", eur("95.00"))
    assert mp.backbox(LID, "fr-fr").is_winning
    clock.advance(60)
    view = mp.backbox(LID, "fr-fr")
    assert not view.is_winning and view.winner_price == eur("94.99") and view.price_to_win == eur("94.98")
    mp.set_price(LID, "fr-fr", eur("91.00"))
    clock.advance(60)
    assert mp.backbox(LID, "fr-fr").winner_price == eur("90.99")
    mp.set_price(LID, "fr-fr", eur("85.00"))
    clock.advance(60)
    view = mp.backbox(LID, "fr-fr")  # at its floor it stops: we keep the Backbox
    assert view.is_winning and mp.offer(LID, "fr-fr").reactors[0].price == eur("90.00").amount
    mp.set_quantity(LID, 0)  # we stop competing: it goes back up to its start price
    clock.advance(60)
    assert mp.offer(LID, "fr-fr").reactors[0].price == eur("99.00").amount


def test_the_undercutter_also_answers_other_rivals() -> None:
    war = ReactingRival("undercut", eur("99.00"), floor=eur("50.00"), interval=30.0)
    mp, clock = market(with_rivals(war, rivals=("97.00",), price="120.00"), settle=0)
    clock.advance(30)
    assert mp.backbox(LID, "fr-fr").winner_price == eur("96.99")


def test_the_leaver_leaves_and_comes_back_on_its_schedule() -> None:
    leaver = ReactingRival("leave", eur("90.00"), present=100.0, away=50.0, offset=10.0)
    mp, clock = market(with_rivals(leaver), settle=0)
    seen = []
    for t in (0, 109, 111, 159, 161, 259, 261):
        clock.advance(t - clock.monotonic())
        seen.append(mp.backbox(LID, "fr-fr").is_winning)
    assert seen == [False, False, True, True, False, False, True]
    clock.advance(300 - clock.monotonic())
    assert mp.backbox(LID, "fr-fr").price_to_win == eur("150.00")  # alone: up to max_price


def test_reacting_rivals_round_trip_through_a_catalogue_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    specs = [with_rivals(ReactingRival("undercut", eur("99.00"), floor=eur("90.00"), interval=120.0),
                         ReactingRival("leave", eur("95.00"), present=7200.0, away=3600.0))]
    path = tmp_path / "cat.json"
    save_catalogue(path, specs)
    market_json = json.loads(path.read_text())["listings"][0]["markets"]["fr-fr"]
    assert market_json["reacting"][0] == {"kind": "undercut", "price": "99.00", "floor": "90.00", "interval": 120.0}
    assert load_catalogue(path) == specs
    market_json["reacting"][0]["kind"] = "follow"
    bad = json.loads(path.read_text())
    bad["listings"][0]["markets"]["fr-fr"] = market_json
    path.write_text(json.dumps(bad))
    with pytest.raises(CatalogueError, match=r"reacting\[0\].*unknown reacting rival 'follow'"):
        load_catalogue(path)


def test_generated_catalogues_draw_them_when_asked() -> None:
    specs = generate_catalogue(40, seed=3, weights={"price_war": 1.0, "rival_leaves": 1.0})
    kinds = {o.reacting[0].kind for s in specs for o in s.offers}
    assert kinds == {"undercut", "leave"}
    for s in specs:
        for o in s.offers:
            rival = o.reacting[0]
            assert o.min_price is not None and o.min_price <= o.price <= o.max_price
            if rival.kind == "undercut":
                assert rival.floor is not None and rival.floor < rival.price < o.price
    assert all(not o.reacting for s in generate_catalogue(40, seed=3) for o in s.offers)
