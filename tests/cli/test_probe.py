"""``bmctl probe`` through the real CLI over the in-process sandbox: ``--all`` over every market
of the platform (``--market`` narrows)."""

from __future__ import annotations

import json
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
    assert {r["floor"] for r in json.loads(given.stdout)} == {"80.00"}


def test_help_says_all_covers_every_market() -> None:
    text = " ".join(invoke(["probe", "--help"]).stdout.split())
    assert "every market it competes in" in text and "--market narrows" in text
