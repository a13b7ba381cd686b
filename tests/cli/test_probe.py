"""``bmctl probe`` through the real CLI over the in-process sandbox: ``--all`` over every market
of the platform (``--market`` narrows), and ``--dry-run`` printing a plan."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from bmctl.sandbox.model import ListingSpec
from tests.cli.helpers import invoke
from tests.cli.sandbox_helpers import JP, LID, TWO, offer, small_catalogue, start_sandbox

GB = "44444444-5555-4666-8777-888888888888"


def catalogue() -> list[ListingSpec]:
    """LID in fr-fr, TWO in fr-fr and de-de, JP in ja-jp, GB in en-gb."""
    return [*small_catalogue(),
            ListingSpec(id=GB, sku="SKU-GB", quantity=4, listing_id=1004,
                        offers=(offer("en-gb", "90.00", max_price="150.00", min_price="40.00",
                                      rivals=("85.00",)),))]


def rows_of(stdout: str) -> list[tuple[str, str, str]]:
    return sorted((r["listing_id"], r["market"], r["currency"]) for r in json.loads(stdout))


def test_all_probes_every_market_of_the_platform_and_market_narrows(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path, catalogue())
    every = box.run("--format", "json", "probe", "--all", "--settle", "0")
    assert every.exit_code == 0, every.stderr
    assert rows_of(every.stdout) == sorted([
        (LID, "fr-fr", "EUR"), (TWO, "fr-fr", "EUR"), (TWO, "de-de", "EUR"), (GB, "en-gb", "GBP")])
    assert "in 3 markets, after 13 listing page(s)" in every.stderr
    narrowed = box.run("--format", "json", "probe", "--all", "--market", "en-gb", "--settle", "0")
    assert narrowed.exit_code == 0, narrowed.stderr
    assert rows_of(narrowed.stdout) == [(GB, "en-gb", "GBP")]
    japan = box.run("--format", "json", "--market", "ja-jp", "probe", "--all", "--settle", "0")
    assert rows_of(japan.stdout) == [(JP, "ja-jp", "JPY")]


def test_all_with_bounds_needs_a_market(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path, catalogue())
    refused = box.run("probe", "--all", "--floor", "80")
    assert refused.exit_code == 2 and "--market" in refused.stderr
    assert box.seen == []  # nothing was sent
    given = box.run("--format", "json", "probe", "--all", "--floor", "80", "--market", "fr-fr", "--settle", "0")
    assert given.exit_code == 0, given.stderr
    # The bounds are the intersection of every source: --floor, unless min_price is higher.
    floors = {(r["floor"], r["floor_source"]) for r in json.loads(given.stdout)}
    assert ("80.00", "option") in floors
    assert all(source == "min_price" and Decimal(floor) > 80 for floor, source in floors - {("80.00", "option")})


def test_dry_run_prints_a_plan_and_sends_no_write(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path, catalogue())
    plan = box.run("--format", "json", "probe", "--all", "--dry-run", "--settle", "0")
    assert plan.exit_code == 0, plan.stderr
    assert box.writes() == []
    rows = {(r["listing_id"], r["market"]): r for r in json.loads(plan.stdout)}
    losing = rows[(LID, "fr-fr")]
    assert (losing["outcome"], losing["final_price"], losing["dip_price"]) == ("planned", None, "94.99")
    assert losing["planned_writes"][0].startswith("dip 100.00 EUR -> 94.99 EUR: ")
    winning = rows[(TWO, "fr-fr")]  # winning at 200.00 with rivals at 210.00: the headroom
    assert (winning["outcome"], winning["final_price"]) == ("planned", None)
    assert winning["planned_writes"][0].startswith("raise 200.00 EUR -> 209.99 EUR: ")
    assert rows[(TWO, "de-de")]["outcome"] == "skipped"  # no floor in de-de: known from the reads
    assert "(dry run: reads only)" in plan.stderr and "listing_writes ~0" in plan.stderr

    table = box.run("--format", "table", "probe", "--all", "--dry-run", "--settle", "0")
    assert table.exit_code == 0, table.stderr
    header = table.stdout.splitlines()[0].split()
    assert "final_price" not in header and "writes" not in header and "reason" in header
    assert "planned" in table.stdout and "plan: not winning at 100.00 EUR: dip to 94.99 EUR" in table.stdout
    assert box.writes() == []


def test_help_says_all_covers_every_market_and_dry_run_prints_a_plan() -> None:
    text = " ".join(invoke(["probe", "--help"]).stdout.split())
    assert "every market it competes in" in text and "--market narrows" in text
    assert "print a plan" in text and "send no write" in text


def test_costs_set_floors_and_ceilings_and_every_row_names_its_sources(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path, catalogue())
    config = tmp_path / "bmctl.toml"
    config.write_text('[pricing]\ncosts = "costs.csv"\nfee_rate = "10%"\nfee_fixed = { EUR = "0.50" }\n'
                      'min_margin = 0.05\nmax_margin = "0.30"\n', encoding="utf-8")
    # LID: (70 + 0.50) / 0.85 = 82.95 (above min_price 80), ceiling 70.5 / 0.6 = 117.50.
    # TWO in fr-fr by sku: (100 + 0.50) / 0.85 = 118.24, below min_price 150; ceiling 167.50.
    (tmp_path / "costs.csv").write_text(f"listing_id,sku,cost\n{LID},,70\n,SKU-TWO,100\n", encoding="utf-8")
    box.config = config
    done = box.run("--format", "json", "probe", LID, TWO, "--settle", "0")
    assert done.exit_code == 0, done.stderr
    rows = {(r["listing_id"], r["market"]): r for r in json.loads(done.stdout)}
    one = rows[(LID, "fr-fr")]
    assert (one["floor"], one["floor_source"], one["ceiling"], one["ceiling_source"]) == (
        "82.95", "cost", "117.50", "cost")
    assert one["final_price"] == "94.99"
    two = rows[(TWO, "fr-fr")]
    assert (two["floor"], two["floor_source"], two["ceiling"], two["ceiling_source"]) == (
        "150.00", "min_price", "167.50", "cost")
    as_csv = box.run("--format", "csv", "probe", LID, "--settle", "0", "--dry-run")
    assert "floor_source,ceiling_source" in as_csv.stdout.splitlines()[0]


def test_a_malformed_costs_file_is_exit_2_naming_line_and_column_before_any_request(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path, catalogue())
    costs = tmp_path / "costs.csv"
    costs.write_text(f"listing_id,cost\n{LID},12\n{TWO},12,5O\n", encoding="utf-8")
    refused = box.run("probe", LID, "--costs", str(costs))
    assert refused.exit_code == 2
    assert "line 3: 3 fields" in refused.stderr
    costs.write_text(f"listing_id,cost\n{LID},12\n{TWO},1O.50\n", encoding="utf-8")
    refused = box.run("probe", LID, "--costs", str(costs))
    assert refused.exit_code == 2
    assert f"bmctl: error: {costs} line 3, column cost: '1O.50' is not a decimal number" in refused.stderr
    assert box.seen == []
    config = tmp_path / "bmctl.toml"
    config.write_text('[pricing]\nfee_rate = 0.7\nmin_margin = 0.3\n', encoding="utf-8")
    box.config = config
    refused = box.run("probe", LID)
    assert refused.exit_code == 2 and "1 - fee_rate - min_margin must be above zero" in refused.stderr
    assert box.seen == []


def test_all_reads_the_listing_pages_once_and_never_dips_against_our_own_offer(tmp_path: Path) -> None:
    from bmctl.sandbox.catalogue import own_offer_pair

    winner, other = own_offer_pair()
    box = start_sandbox(tmp_path, [*catalogue(), winner, other])
    done = box.run("--format", "json", "--market", "fr-fr", "probe", "--all", "--settle", "0")
    assert done.exit_code == 0, done.stderr
    rows = {r["listing_id"]: r for r in json.loads(done.stdout)}
    assert rows[other.id]["outcome"] == "kept"
    assert rows[other.id]["reason"].startswith(f"the Backbox winner is our own listing {winner.id[:8]}")
    assert ("POST", f"/ws/listings/{other.id}") not in box.writes()
    pages = [path for method, path in box.seen if method == "GET" and path == "/ws/listings"]
    assert len(pages) == 1  # the --all enumeration's; the probes knew our products from it


def test_a_listing_held_by_the_price_war_cooldown_is_a_held_row_and_costs_nothing(tmp_path: Path) -> None:
    box = start_sandbox(tmp_path, catalogue())
    box.config = tmp_path / "bmctl.toml"
    box.config.write_text('[pricing]\nwar_rounds = 1\nwar_cooldown = "2h"\n', encoding="utf-8")
    first = box.run("--format", "json", "probe", LID, "--settle", "0")
    assert first.exit_code == 0, first.stderr
    (row,) = json.loads(first.stdout)
    assert row["dip_price"] is not None and "price war: held until" in row["reason"]
    before = len(box.seen)
    for args in (["--all"], [LID], ["--all", "--dry-run"]):
        result = box.run("--format", "json", "--market", "fr-fr", "probe", *args, "--settle", "0")
        assert result.exit_code == 0, result.stderr
        held = [r for r in json.loads(result.stdout) if r["listing_id"] == LID]
        assert [r["outcome"] for r in held] == ["held"], held
        assert held[0]["reason"].startswith("held until ") and "1 price-war round in 24h" in held[0]["reason"]
        assert "1 held by the price-war cooldown" in result.stderr
    assert not [s for s in box.seen[before:] if LID in s[1]]  # nothing sent about LID
    forced = box.run("--format", "json", "probe", LID, "--settle", "0", "--ignore-cooldown")
    assert json.loads(forced.stdout)[0]["outcome"] != "held" and [s for s in box.seen if LID in s[1]]
    assert json.loads(box.run("--format", "json", "probe", LID, "--settle", "0").stdout)[0]["outcome"] == "held"
    box.clock.advance(2 * 3600)
    after = box.run("--format", "json", "probe", LID, "--settle", "0")
    assert json.loads(after.stdout)[0]["outcome"] != "held"
