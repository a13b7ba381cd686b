"""Seeded catalogues for the sandbox, and the catalogue file behind ``--seed FILE``.

File format (JSON, UTF-8; amounts are decimal strings in the market's currency)::

    {
      "format": "bmctl-sandbox-catalogue", "version": 1,
      "listings": [
        {
          "id": "3f1c...-uuid", "sku": "IPHONE13-128-MIDNIGHT-EXC",          (required)
          "listing_id": 100001, "product_id": "uuid", "backmarket_id": 5001,  (optional)
          "title": "iPhone 13 128GB - Midnight - Unlocked", "grade": "EXCELLENT",
          "quantity": 5, "publication_state": 2, "warranty_delay": 12, "comment": null,
          "markets": {                                                         (required, >= 1)
            "fr-fr": {
              "price": "489.00", "max_price": "650.00",                        (required)
              "min_price": "420.00",                         (optional, null = no floor)
              "competitors": ["479.90", "495.00"],           (other sellers' prices, optional)
              "incumbent": false,                            (we hold the Backbox on a tie)
              "currency": "EUR",                             (optional; must match the market)
              "reacting": [                                  (rivals that react, optional)
                {"kind": "undercut", "price": "495.00", "floor": "430.00", "interval": 300},
                {"kind": "leave", "price": "470.00", "present": 7200, "away": 14400, "offset": 0}
              ]
            }
          }
        }
      ]
    }

``demo_catalogue(seed)`` covers every case a probe meets (already winning with headroom,
winnable, unwinnable, no floor, max_price below the competition, ties held and lost, alone,
offline, out of stock, two of our listings on one product: ``own_offer_pair``) in fr-fr,
de-de, en-gb and ja-jp. ``generate_catalogue`` makes big mixed catalogues for benchmarks and
soaks; its ``price_war`` (a rival who undercuts whoever wins, every few minutes) and
``rival_leaves`` (a rival who leaves for hours and comes back) cases are drawn only when the
weights name them.

A reacting rival (``bmctl.sandbox.model.ReactingRival``): ``undercut`` reprices every
``interval`` seconds (default 300) to one tick under the lowest other price, within ``[floor,
price]``; ``leave`` is in the Backbox at ``price`` for ``present`` seconds, then away for
``away`` seconds, and again (its first leave ``offset + present`` seconds after the start).
"""

from __future__ import annotations

import json
import random
import uuid
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from bmctl.api.markets import MARKETS
from bmctl.api.money import Money, MoneyError, money_text, tick
from bmctl.sandbox.model import GRADES, ListingSpec, OfferSpec, ReactingRival

FORMAT = "bmctl-sandbox-catalogue"
VERSION = 1
DEMO_MARKETS = ("fr-fr", "de-de", "en-gb", "ja-jp")

# Rough price level of each currency against EUR, so every market gets plausible prices.
_LEVEL = {"EUR": Decimal(1), "GBP": Decimal("0.86"), "USD": Decimal("1.08"),
          "AUD": Decimal("1.65"), "SEK": Decimal("11.5"), "JPY": Decimal(160)}
_PRODUCTS = [("iPhone 13", 420), ("iPhone 12", 330), ("iPhone 14 Pro", 690), ("Galaxy S22", 310),
             ("Pixel 7", 280), ("iPad Air 4", 360), ("MacBook Air M1", 640), ("Galaxy A54", 210),
             ("iPhone SE 2022", 230), ("Switch OLED", 250), ("AirPods Pro 2", 150),
             ("Apple Watch S7", 240)]
_STORAGE = ["64GB", "128GB", "256GB"]
_COLOURS = ["Midnight", "Blue", "Starlight", "Graphite", "Green", "Red"]


class CatalogueError(ValueError):
    """A catalogue file that cannot be used; the message says where and why."""


class CatalogueScenario:
    """Offer builders by case; each takes (market, base price, rng) and returns an OfferSpec."""

    @staticmethod
    def build(name: str, market: str, base: Decimal, rng: random.Random) -> OfferSpec:
        cur = MARKETS[market].currency
        g = tick(cur)

        def m(x: Decimal) -> Money:
            return Money(max(g, x.quantize(g, ROUND_HALF_UP)), cur)

        def rivals(best: Decimal) -> tuple[Money, ...]:
            extra = [best * Decimal(str(1 + rng.uniform(0.01, 0.15))) for _ in range(rng.randint(0, 3))]
            return tuple(m(x) for x in [best, *extra])

        f = lambda lo, hi: Decimal(str(round(rng.uniform(lo, hi), 4)))  # noqa: E731
        p = base
        if name == "winning":  # already winning, with headroom up to the best rival
            return OfferSpec(market, m(p), m(p * f(1.3, 1.5)), m(p * f(0.8, 0.9)), rivals(p * f(1.03, 1.10)))
        if name == "winnable":  # not winning, price_to_win above the floor
            return OfferSpec(market, m(p * f(1.03, 1.08)), m(p * f(1.3, 1.5)), m(p * f(0.85, 0.95)), rivals(p))
        if name == "unwinnable":  # price_to_win below the floor
            return OfferSpec(market, m(p * f(1.05, 1.08)), m(p * f(1.3, 1.5)), m(p * f(1.01, 1.03)), rivals(p))
        if name == "no_min":  # no floor: the probe skips it
            return OfferSpec(market, m(p * f(1.03, 1.08)), m(p * f(1.3, 1.5)), None, rivals(p))
        if name == "max_below":  # winning, but max_price caps the headroom below the best rival
            return OfferSpec(market, m(p), m(p * f(1.08, 1.12)), m(p * f(0.8, 0.9)), rivals(p * f(1.2, 1.3)))
        if name in ("tie_held", "tie_lost"):  # same price as the best rival; who keeps it?
            return OfferSpec(market, m(p), m(p * f(1.3, 1.5)), m(p * f(0.8, 0.9)), rivals(p),
                             incumbent=name == "tie_held")
        if name == "alone":  # no rival: wins, headroom up to max_price
            return OfferSpec(market, m(p), m(p * f(1.2, 1.4)), m(p * f(0.8, 0.9)), ())
        if name == "offline":  # price above max_price: not online, not competing
            return OfferSpec(market, m(p * f(1.15, 1.25)), m(p * f(1.05, 1.1)), m(p * f(0.8, 0.9)), rivals(p))
        if name == "price_war":  # alone with a rival who undercuts whoever wins, to its floor
            war = ReactingRival("undercut", m(p * f(1.02, 1.05)), floor=m(p * f(0.88, 0.95)),
                                interval=float(rng.choice((120, 300, 600))))
            return OfferSpec(market, m(p * f(1.06, 1.1)), m(p * f(1.3, 1.5)), m(p * f(0.8, 0.85)), (),
                             reacting=(war,))
        if name == "rival_leaves":  # alone with a rival who leaves for hours and comes back
            leaver = ReactingRival("leave", m(p), present=float(rng.choice((3, 4, 6))) * 3600,
                                   away=float(rng.choice((4, 6, 8))) * 3600,
                                   offset=float(rng.randint(0, 12)) * 900)
            return OfferSpec(market, m(p * f(1.02, 1.05)), m(p * f(1.2, 1.4)), m(p * f(0.8, 0.9)), (),
                             reacting=(leaver,))
        raise ValueError(f"unknown scenario {name!r}")


DEMO_SCENARIOS = ("winning", "winnable", "unwinnable", "no_min", "max_below", "tie_held",
                  "tie_lost", "alone", "winnable", "winning", "offline", "out_of_stock")
BENCH_WEIGHTS: dict[str, float] = {"winnable": 0.35, "winning": 0.25, "unwinnable": 0.10,
                                   "no_min": 0.05, "max_below": 0.10, "tie_held": 0.05,
                                   "tie_lost": 0.05, "alone": 0.05}


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _listing(i: int, rng: random.Random, offers: Callable[[Decimal], tuple[OfferSpec, ...]],
             quantity: int) -> ListingSpec:
    name, price = _PRODUCTS[i % len(_PRODUCTS)]
    storage, colour = rng.choice(_STORAGE), rng.choice(_COLOURS)
    grade = rng.choice(["EXCELLENT", "VERY_GOOD", "GOOD", "PREMIUM", "FAIR"])
    base = Decimal(price) * Decimal(str(round(rng.uniform(0.9, 1.1), 3)))
    sku = f"{name}-{storage}-{colour}-{grade}-{i + 1:05d}".upper().replace(" ", "")
    return ListingSpec(
        id=_uuid(rng), sku=sku, offers=offers(base), quantity=quantity, listing_id=100001 + i,
        product_id=_uuid(rng), backmarket_id=5001 + i % len(_PRODUCTS),
        title=f"{name} {storage} - {colour} - Unlocked", grade=grade,
    )


def _scaled(base: Decimal, market: str) -> Decimal:
    return base * _LEVEL[MARKETS[market].currency]


def demo_catalogue(seed: int = 7) -> list[ListingSpec]:
    """26 listings in fr-fr, de-de, en-gb and ja-jp covering every probe case; same seed, same
    catalogue."""
    rng = random.Random(seed)
    specs = []
    for i in range(24):
        scenario = DEMO_SCENARIOS[i % len(DEMO_SCENARIOS)]
        market = DEMO_MARKETS[(i + i // len(DEMO_SCENARIOS)) % len(DEMO_MARKETS)]
        kind = "winnable" if scenario == "out_of_stock" else scenario

        def offers(base: Decimal, kind: str = kind, market: str = market, i: int = i) -> tuple[OfferSpec, ...]:
            first = CatalogueScenario.build(kind, market, _scaled(base, market), rng)
            if i % 5 == 0 and market in ("fr-fr", "de-de"):  # some EU listings sell in two markets
                other = "de-de" if market == "fr-fr" else "fr-fr"
                extra = rng.choice(["winnable", "winning"])
                return first, CatalogueScenario.build(extra, other, _scaled(base, other), rng)
            return (first,)

        specs.append(_listing(i, rng, offers, 0 if scenario == "out_of_stock" else rng.randint(1, 12)))
    # Two of our listings on one product: the probe must not dip one against the other.
    return specs + own_offer_pair("fr-fr", seed + 1000)


def own_offer_pair(market: str = "fr-fr", seed: int = 11) -> list[ListingSpec]:
    """Two of the seller's listings on one product in ``market``: the second holds the Backbox
    (its ``max_price`` keeps it at its price) and is among the first's competitors, so a probe
    of the first meets our own offer as the Backbox winner. The sandbox's rivals are static
    prices: the pair shows the case as long as the second listing's price stays put."""
    rng = random.Random(seed)
    cur = MARKETS[market].currency
    level = _LEVEL[cur]
    grid = tick(cur)

    def m(amount: str) -> Money:
        return Money((Decimal(amount) * level).quantize(grid, ROUND_HALF_UP), cur)

    product = _uuid(rng)
    winner = ListingSpec(id=_uuid(rng), sku="PIXEL7-128-OBSIDIAN-EXC-B", quantity=3, listing_id=100901,
                         product_id=product, backmarket_id=5901, title="Pixel 7 128GB - Obsidian - Unlocked",
                         offers=(OfferSpec(market, m("279.00"), m("279.00"), m("240.00"), (m("289.00"),),
                                           incumbent=True),))
    other = ListingSpec(id=_uuid(rng), sku="PIXEL7-128-OBSIDIAN-EXC-A", quantity=2, listing_id=100902,
                        product_id=product, backmarket_id=5901, title="Pixel 7 128GB - Obsidian - Unlocked",
                        offers=(OfferSpec(market, m("285.00"), m("320.00"), m("240.00"),
                                          (winner.offers[0].price, m("289.00"))),))
    return [winner, other]


def generate_catalogue(n: int, markets: Sequence[str] = ("fr-fr", "de-de", "en-gb"), seed: int = 0,
                       *, weights: Mapping[str, float] = BENCH_WEIGHTS) -> list[ListingSpec]:
    """``n`` listings, one market each (round robin over ``markets``), cases drawn by
    ``weights``: for benchmarks (1,000+) and soaks."""
    unknown = [m for m in markets if m not in MARKETS]
    if unknown or not markets:
        raise ValueError(f"unknown or no markets: {unknown}")
    rng = random.Random(seed)
    names, odds = list(weights), list(weights.values())
    specs = []
    for i in range(n):
        market = markets[i % len(markets)]
        kind = rng.choices(names, odds)[0]
        def offers(base: Decimal, kind: str = kind, market: str = market) -> tuple[OfferSpec, ...]:
            return (CatalogueScenario.build(kind, market, _scaled(base, market), rng),)

        specs.append(_listing(i, rng, offers, rng.randint(1, 12)))
    return specs


# --- files ------------------------------------------------------------------------------------


def catalogue_to_json(specs: Iterable[ListingSpec]) -> dict[str, Any]:
    """The JSON document for a catalogue (the module docstring describes it)."""
    listings = []
    for s in specs:
        markets = {}
        for o in s.offers:
            market: dict[str, Any] = {
                "price": o.price.to_api(), "min_price": money_text(o.min_price),
                "max_price": o.max_price.to_api(), "competitors": [r.to_api() for r in o.rivals],
                "incumbent": o.incumbent, "currency": o.price.currency,
            }
            if o.reacting:
                market["reacting"] = [_reacting_to_json(r) for r in o.reacting]
            markets[o.market] = market
        listings.append({
            "id": s.id, "listing_id": s.listing_id, "product_id": s.product_id,
            "backmarket_id": s.backmarket_id, "sku": s.sku, "title": s.title, "grade": s.grade,
            "quantity": s.quantity, "publication_state": s.publication_state,
            "warranty_delay": s.warranty_delay, "comment": s.comment, "markets": markets,
        })
    return {"format": FORMAT, "version": VERSION, "listings": listings}


def save_catalogue(path: str | Path, specs: Iterable[ListingSpec]) -> None:
    """Write a catalogue file."""
    text = json.dumps(catalogue_to_json(specs), indent=2, ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def load_catalogue(path: str | Path) -> list[ListingSpec]:
    """Read a catalogue file; CatalogueError says what is wrong and where."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise CatalogueError(f"cannot read catalogue {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise CatalogueError(f"catalogue {path} is not valid JSON: {error}") from None
    try:
        return catalogue_from_json(data)
    except CatalogueError as error:
        raise CatalogueError(f"catalogue {path}: {error}") from None


def catalogue_from_json(data: Any) -> list[ListingSpec]:
    """Listings from a parsed catalogue document."""
    if not isinstance(data, dict) or not isinstance(data.get("listings"), list):
        raise CatalogueError('expected an object with a "listings" array')
    if data.get("version", VERSION) != VERSION:
        raise CatalogueError(f"unsupported version {data.get('version')!r} (this bmctl reads {VERSION})")
    specs, seen = [], set()
    for i, item in enumerate(data["listings"]):
        where = f"listings[{i}]"
        spec = _listing_from_json(item, where)
        if spec.id.lower() in seen:
            raise CatalogueError(f"{where}: duplicate id {spec.id}")
        seen.add(spec.id.lower())
        specs.append(spec)
    return specs


def _field(item: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str,
           default: Any = ..., nullable: bool = False) -> Any:
    if name not in item:
        if default is ...:
            raise CatalogueError(f"{where}: missing {name!r}")
        return default
    value = item[name]
    if value is None and nullable:
        return None
    if isinstance(value, bool) and kind is not bool or not isinstance(value, kind):
        raise CatalogueError(f"{where}.{name}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _listing_from_json(item: Any, where: str) -> ListingSpec:
    if not isinstance(item, dict):
        raise CatalogueError(f"{where}: expected an object")
    ident = _field(item, "id", str, where)
    try:
        uuid.UUID(ident)
    except ValueError:
        raise CatalogueError(f"{where}.id: {ident!r} is not a UUID") from None
    grade = _field(item, "grade", str, where, "EXCELLENT")
    if grade not in GRADES:
        raise CatalogueError(f"{where}.grade: {grade!r} is not one of {', '.join(GRADES)}")
    state = _field(item, "publication_state", int, where, 2)
    if state not in range(5):
        raise CatalogueError(f"{where}.publication_state: must be 0-4, got {state}")
    quantity = _field(item, "quantity", int, where, 5)
    if quantity < 0:
        raise CatalogueError(f"{where}.quantity: must be >= 0")
    markets = _field(item, "markets", dict, where)
    if not markets:
        raise CatalogueError(f"{where}.markets: at least one market is needed")
    offers = tuple(_offer_from_json(code, value, f"{where}.markets.{code}") for code, value in markets.items())
    return ListingSpec(
        id=ident, sku=_field(item, "sku", str, where), offers=offers, quantity=quantity,
        listing_id=_field(item, "listing_id", int, where, 0),
        product_id=_field(item, "product_id", str, where, "") or str(uuid.uuid5(uuid.NAMESPACE_URL, ident)),
        backmarket_id=_field(item, "backmarket_id", int, where, 0),
        title=_field(item, "title", str, where, ""), grade=grade, publication_state=state,
        warranty_delay=_field(item, "warranty_delay", int, where, 12),
        comment=_field(item, "comment", str, where, None, nullable=True),
    )


def _offer_from_json(code: str, item: Any, where: str) -> OfferSpec:
    market = MARKETS.get(code)
    if market is None:
        raise CatalogueError(f"{where}: unknown market {code!r} (known: {', '.join(MARKETS)})")
    if not isinstance(item, dict):
        raise CatalogueError(f"{where}: expected an object")
    currency = _field(item, "currency", str, where, market.currency)
    if currency != market.currency:
        raise CatalogueError(f"{where}.currency: {currency!r} is not {market.currency}, the currency of {code}")

    def amount(name: str, value: Any) -> Money:
        if value is ...:
            raise CatalogueError(f"{where}: missing {name!r}")
        if not isinstance(value, str):
            raise CatalogueError(f"{where}.{name}: amounts are decimal strings, got {value!r}")
        try:
            return Money.parse(value, currency)
        except MoneyError as error:
            raise CatalogueError(f"{where}.{name}: {error}") from None

    rivals = _field(item, "competitors", list, where, [])
    min_price = item.get("min_price")
    def reacting_amount(j: int) -> Callable[[str, Any], Money]:
        return lambda name, value: amount(f"reacting[{j}].{name}", value)

    reacting = tuple(_reacting_from_json(r, f"{where}.reacting[{j}]", reacting_amount(j))
                     for j, r in enumerate(_field(item, "reacting", list, where, [])))
    return OfferSpec(
        market=code, price=amount("price", item.get("price", ...)),
        max_price=amount("max_price", item.get("max_price", ...)),
        min_price=amount("min_price", min_price) if min_price is not None else None,
        rivals=tuple(amount(f"competitors[{j}]", r) for j, r in enumerate(rivals)),
        incumbent=_field(item, "incumbent", bool, where, False), reacting=reacting,
    )


def _reacting_to_json(rival: ReactingRival) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": rival.kind, "price": rival.price.to_api()}
    if rival.kind == "undercut":
        data.update(floor=money_text(rival.floor), interval=rival.interval)
    else:
        data.update(present=rival.present, away=rival.away, offset=rival.offset)
    return data


def _reacting_from_json(item: Any, where: str, amount: Callable[[str, Any], Money]) -> ReactingRival:
    if not isinstance(item, dict):
        raise CatalogueError(f"{where}: expected an object")
    floor = item.get("floor")
    numbers = {}
    for name in ("interval", "present", "away", "offset"):
        if name in item:
            value = _field(item, name, (int, float), where)
            numbers[name] = float(value)
    try:
        return ReactingRival(kind=_field(item, "kind", str, where), price=amount("price", item.get("price", ...)),
                             floor=amount("floor", floor) if floor is not None else None, **numbers)
    except ValueError as error:
        raise CatalogueError(f"{where}: {error}") from None
