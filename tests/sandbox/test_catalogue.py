"""Demo and generated catalogues: coverage of the probe's cases, determinism, the file format."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from bmctl.sandbox.catalogue import (
    CatalogueError,
    catalogue_to_json,
    demo_catalogue,
    generate_catalogue,
    load_catalogue,
    save_catalogue,
)
from bmctl.sandbox.model import Marketplace


def classify(mp: Marketplace) -> Counter:
    cases: Counter = Counter()
    for listing in mp.listings():
        for code, offer in listing.offers.items():
            view = mp.backbox(listing.id, code)
            cases[("market", code)] += 1
            if view is None:
                cases["offline" if listing.quantity else "out_of_stock"] += 1
            elif offer.min_price is None:
                cases["no_min"] += 1
            elif view.is_winning:
                if view.price_to_win.amount > offer.max_price:
                    cases["max_below"] += 1
                if view.price_to_win.amount > offer.seen:
                    cases["winning_headroom"] += 1
                if offer.seen == min(offer.rivals or [offer.seen + 1]):
                    cases["tie_held"] += 1
            elif view.price_to_win.amount >= offer.min_price:
                cases["winnable"] += 1
            else:
                cases["unwinnable"] += 1
    return cases


def test_demo_covers_every_case_and_market() -> None:
    specs = demo_catalogue()
    assert len(specs) >= 20
    mp = Marketplace(lambda: 0.0)
    mp.load(specs)
    cases = classify(mp)
    for case in ("winning_headroom", "winnable", "unwinnable", "no_min", "max_below", "tie_held",
                 "offline", "out_of_stock"):
        assert cases[case] >= 1, case
    for code in ("fr-fr", "de-de", "en-gb", "ja-jp"):
        assert cases[("market", code)] >= 3


def test_demo_is_deterministic_per_seed() -> None:
    assert demo_catalogue(3) == demo_catalogue(3)
    assert demo_catalogue(3) != demo_catalogue(4)


def test_generated_catalogue_for_benchmarks() -> None:
    specs = generate_catalogue(1000, seed=1)
    assert len(specs) == 1000 and len({s.id for s in specs}) == 1000
    assert len({s.sku for s in specs}) == 1000
    assert specs == generate_catalogue(1000, seed=1)
    mp = Marketplace(lambda: 0.0)
    mp.load(specs)
    cases = classify(mp)
    assert cases["winnable"] > 200 and cases["winning_headroom"] > 100 and cases["unwinnable"] > 30
    soak = generate_catalogue(200, ("fr-fr", "en-gb", "ja-jp"), seed=2)
    assert Counter(o.market for s in soak for o in s.offers) == {"fr-fr": 67, "en-gb": 67, "ja-jp": 66}
    with pytest.raises(ValueError):
        generate_catalogue(3, ("xx-xx",))


def test_save_and_load_round_trip(tmp_path) -> None:
    path = tmp_path / "cat.json"
    specs = demo_catalogue()
    save_catalogue(path, specs)
    data = json.loads(path.read_text())
    first = next(iter(data["listings"][0]["markets"].values()))
    assert isinstance(first["price"], str) and isinstance(first["competitors"][0], str)
    assert load_catalogue(path) == specs


def test_minimal_file(tmp_path) -> None:
    path = tmp_path / "cat.json"
    path.write_text(json.dumps({"listings": [{
        "id": "11111111-2222-4333-8444-555555555555", "sku": "A",
        "markets": {"ja-jp": {"price": "15000", "max_price": "20000", "competitors": ["14000"]}}}]}))
    (s,) = load_catalogue(path)
    assert s.offers[0].price.currency == "JPY" and s.offers[0].min_price is None and s.quantity == 5


@pytest.mark.parametrize("mutate,needle", [
    (lambda d: d.pop("listings"), "listings"),
    (lambda d: d["listings"][0].pop("sku"), "missing 'sku'"),
    (lambda d: d["listings"][0].update(id="nope"), "not a UUID"),
    (lambda d: _m(d).update(price=12.5), "decimal strings"),
    (lambda d: _m(d).update(price="12.345"), "too many decimals"),
    (lambda d: _m(d).update(currency="USD"), "currency"),
    (lambda d: d["listings"][0]["markets"].update({"xx-yy": {}}), "unknown market"),
    (lambda d: d["listings"].append(dict(d["listings"][0])), "duplicate id"),
    (lambda d: d.update(version=9), "version"),
])
def test_bad_files_say_where(tmp_path, mutate, needle) -> None:
    data = catalogue_to_json(demo_catalogue()[:2])
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(CatalogueError, match=needle):
        load_catalogue(path)


def _m(data):
    return next(iter(data["listings"][0]["markets"].values()))


def test_unreadable_files(tmp_path) -> None:
    with pytest.raises(CatalogueError, match="cannot read"):
        load_catalogue(tmp_path / "missing.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(CatalogueError, match="not valid JSON"):
        load_catalogue(tmp_path / "x.json")
