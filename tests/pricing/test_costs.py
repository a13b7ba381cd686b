"""The costs file, the ``[pricing]`` rules and the floor and ceiling they give (Decimal only)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from bmctl.api.money import Money
from bmctl.config import PricingSettings
from bmctl.errors import ConfigError, UsageError
from bmctl.pricing.costs import CostRow, check_pricing, parse_costs, parse_step_cap

A = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
B = "4fa85f64-5717-4562-b3fc-2c963f66afa6"


def rules(**values: Any):  # type: ignore[no-untyped-def]
    return check_pricing(PricingSettings(**values))


def test_floor_and_ceiling_from_cost_round_outwards_to_the_tick() -> None:
    r = rules(fee_rate="0.10", fee_fixed="0.50 EUR", min_margin="5%", max_margin=0.30)
    # (100 + 0.50) / 0.85 = 118.2352...: up to 118.24; / 0.60 = 167.50 exactly.
    floor, ceiling, refused = r.cost_bounds(CostRow(2, Decimal("100"), None), "EUR")
    assert (floor, ceiling, refused) == (Money(Decimal("118.24"), "EUR"), Money(Decimal("167.50"), "EUR"), "")
    # (100 + 0.50) / 0.65 = 154.615...: down to 154.61 for a ceiling.
    _, ceiling, _ = rules(fee_rate="0.10", fee_fixed="0.50 EUR", max_margin="0.25").cost_bounds(
        CostRow(2, Decimal("100"), None), "EUR")
    assert ceiling == Money(Decimal("154.61"), "EUR")
    # JPY has no decimals: 1000 / 0.9 = 1111.1 -> 1112 up.
    floor, _, _ = rules(fee_rate="0.10").cost_bounds(CostRow(2, Decimal("1000"), None), "JPY")
    assert floor == Money(Decimal("1112"), "JPY")


@pytest.mark.parametrize("max_margin", ["0.20", "0.2001"])
def test_equal_or_close_margins_allow_the_floor_itself_not_nothing(max_margin: str) -> None:
    # (10 / 0.70 = 14.2857...): the floor rounds up to 14.29, the ceiling would round down to
    # 14.28 — under the floor, and every listing with a cost would be skipped.
    floor, ceiling, refused = rules(fee_rate="0.10", min_margin="0.20", max_margin=max_margin).cost_bounds(
        CostRow(2, Decimal("10"), None), "EUR")
    assert (floor, ceiling, refused) == (Money(Decimal("14.29"), "EUR"), Money(Decimal("14.29"), "EUR"), "")


def test_a_blank_or_zero_cost_gives_no_floor() -> None:
    table = parse_costs(f"listing_id,cost\n{A},\n{B},0.00\n", "costs.csv")
    r = rules(fee_rate="0.10", fee_fixed="0.50 EUR", min_margin="0.05")
    for listing in (A, B):
        row = table.find(listing, None, None, "fr-fr")
        assert row is not None and row.cost is None
        assert r.cost_bounds(row, "EUR") == (None, None, "")
    assert table.find("5fa85f64-5717-4562-b3fc-2c963f66afa6", None, None, "fr-fr") is None


def test_costs_by_id_sku_and_market_with_other_columns_ignored() -> None:
    text = (f"sku;listing_id;cost;market;currency;title\n"
            f";{A};100;fr-fr;EUR;Phone\n;{A};80;;;\nSKU-1;;50;;;\nSKU-1;;40;en-gb;GBP;\n")
    table = parse_costs(text, "c.csv")
    assert table.find(A, None, "SKU-1", "fr-fr").cost == Decimal("100")  # type: ignore[union-attr]
    assert table.find(A, None, "SKU-1", "de-de").cost == Decimal("80")  # type: ignore[union-attr]
    assert table.find(B, None, "SKU-1", "de-de").cost == Decimal("50")  # type: ignore[union-attr]
    row = table.find(B, None, "SKU-1", "en-gb")
    assert row is not None and (row.cost, row.currency) == (Decimal("40"), "GBP")
    # `bmctl listings --format csv` writes the UUID in id and the legacy number in listing_id.
    table = parse_costs(f"id,listing_id,sku,cost\n{A},1001,S,12.5\n", "l.csv")
    assert table.find(A.upper(), 1001, None, "fr-fr").cost == Decimal("12.5")  # type: ignore[union-attr]


def test_a_currency_other_than_the_markets_cannot_be_used() -> None:
    row = parse_costs(f"listing_id,cost,currency\n{A},100,GBP\n", "c.csv").find(A, None, None, "fr-fr")
    assert row is not None
    floor, _, refused = rules().cost_bounds(row, "EUR")
    assert floor is None and "line 2 is in GBP" in refused and "EUR" in refused


def test_fee_fixed_without_an_amount_in_the_currency_cannot_be_used() -> None:
    _, _, refused = rules(fee_fixed={"EUR": "0.50"}).cost_bounds(CostRow(2, Decimal("10"), None), "GBP")
    assert "fee_fixed gives no amount in GBP" in refused


@pytest.mark.parametrize("text, message", [
    (f"listing_id,cost\n{A},12,50\n", "line 2: 3 fields"),
    (f"listing_id,cost\n{A},abc\n", "line 2, column cost: 'abc' is not a decimal number"),
    (f"listing_id,cost\n{A},1e3\n", "line 2, column cost"),
    (f"listing_id,cost\n{A},-5\n", "line 2, column cost: a cost must not be negative"),
    ("listing_id,cost\nnot-a-uuid,5\n", "line 2, column listing_id: not a listing id"),
    (f"listing_id,cost,market\n{A},5,xx-yy\n", "line 2, column market"),
    (f"listing_id,cost,currency\n{A},5,XYZ\n", "line 2, column currency"),
    (f"# costs\nlisting_id,cost\n{A},5\n{A.upper()},6\n", "line 4: the cost of"),
    (f"{A},5\n", "line 1: the first line must be a header"),
    ("listing_id,price\n", "the first line must be a header"),
    ("\n# nothing\n", "empty costs file"),
    ("listing_id,sku,cost\n,,5\n", "line 2: no listing_id and no sku"),
])
def test_a_malformed_costs_file_names_the_line_and_column(text: str, message: str) -> None:
    with pytest.raises(UsageError, match="^c.csv") as caught:
        parse_costs(text, "c.csv")
    assert message in caught.value.message
    assert caught.value.exit_code == 2


@pytest.mark.parametrize("values, message", [
    ({"fee_rate": "0.5", "min_margin": "0.5"}, "1 - fee_rate - min_margin must be above zero"),
    ({"fee_rate": "0.2", "max_margin": "0.9"}, "1 - fee_rate - max_margin must be above zero"),
    ({"fee_rate": "1"}, "fee_rate must be a share"),
    ({"fee_rate": "ten"}, "not a decimal number"),
    ({"min_margin": "0.3", "max_margin": "0.2"}, "max_margin 0.2 is below min_margin 0.3"),
    ({"fee_fixed": "0.50"}, "names no currency"),
    ({"fee_fixed": "0.50 XYZ"}, "not a currency"),
    ({"fee_fixed": "0.505 EUR"}, "more decimals than EUR"),
    ({"max_step_down": "10.00"}, "read as a share of the price"),
    ({"max_step_up": "0"}, "greater than zero"),
    ({"max_step_up": True}, "must be a number"),
])
def test_pricing_settings_that_make_no_sense_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        rules(**values)
    assert message in caught.value.message and caught.value.exit_code == 2


def test_step_caps_are_shares_or_amounts_naming_their_currency() -> None:
    price = Money(Decimal("200.00"), "EUR")
    assert parse_step_cap("5%", "x").amount(price) == Decimal("10.0000")
    assert parse_step_cap(0.05, "x").amount(price) == Decimal("10.0000")
    assert parse_step_cap("12.50 EUR", "x").amount(price) == Decimal("12.50")
    table = parse_step_cap({"EUR": "12.50", "JPY": "2000"}, "x")
    assert table.amount(price) == Decimal("12.50")
    assert table.amount(Money(Decimal("30"), "GBP")) is None


def test_pricing_in_the_config_file_is_read_as_decimals(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bmctl.config import load_settings

    path = tmp_path / "bmctl.toml"
    path.write_text('[pricing]\ncosts = "c.csv"\nfee_rate = 0.10\nmin_margin = "5%"\n'
                    'fee_fixed = { EUR = "0.50", GBP = 0.45 }\nmax_step_down = 0.05\n', encoding="utf-8")
    settings = load_settings(str(path), environ={})
    # TOML numbers are read as Decimal, never float: the text typed is the text kept.
    assert (settings.pricing.fee_rate, settings.pricing.fee_fixed["GBP"]) == ("0.10", "0.45")
    r = check_pricing(settings.pricing)
    assert (r.fee_rate, r.min_margin) == (Decimal("0.1"), Decimal("0.05"))
    assert r.fee_fixed is not None and r.fee_fixed.get("GBP") == Decimal("0.45")
    assert settings.source("pricing.fee_rate") == f"file {path}"
    path.write_text('[pricing]\nfee_rate = 0.6\nmin_margin = 0.4\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="must be above zero"):
        load_settings(str(path), environ={})
    path.write_text('[pricing]\nfloor = 3\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown key 'floor'"):
        load_settings(str(path), environ={})


def test_the_costs_path_of_the_config_is_relative_to_its_folder(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bmctl.pricing.costs import rules_from_settings

    (tmp_path / "c.csv").write_text(f"listing_id,cost\n{A},10\n", encoding="utf-8")
    loaded = rules_from_settings(SimpleNamespace(**{**PricingSettings().__dict__, "costs": "c.csv"}),
                                 base=tmp_path)
    assert loaded.costs is not None and len(loaded.costs) == 1
