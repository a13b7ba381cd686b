"""The probe over the simulated sandbox: every outcome, reveal on and off, JPY, bounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bmctl.pricing.probe_types import ProbeParams, ProbeTarget
from bmctl.sandbox.world import SimWorld
from tests.pricing.harness import by_listing, listing, money, run_probes


def probe_one(tmp_path: Path, spec, *, reveal: bool = True, market: str = "fr-fr",
              params: ProbeParams | None = None, settle: float = 2.0, **target_kw):  # type: ignore[no-untyped-def]
    world = SimWorld([spec], reveal=reveal, settle=settle)
    target = ProbeTarget(spec.id, market, **target_kw)
    summary, recorder = run_probes(world, tmp_path / "bmctl.db", [target], params=params)
    (result,) = summary.results
    return result, recorder, world


def test_winnable_dips_to_the_price_to_win_in_one_write(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00", "99.00"])
    result, recorder, world = probe_one(tmp_path, spec)
    assert (result.outcome, result.final_price, result.dip_price) == ("won", money("94.99"), money("94.99"))
    assert result.writes == 1
    assert [body["price"] for _, body in recorder.writes()] == ["94.99"]
    assert world.price(spec.id, "fr-fr") == money("94.99")
    assert result.dip_seconds == 0.0


def test_winning_with_revealed_headroom_rises_once(tmp_path: Path) -> None:
    spec = listing("90.00", ["95.00"])
    result, recorder, world = probe_one(tmp_path, spec)
    assert (result.outcome, result.final_price, result.writes) == ("won", money("94.99"), 1)
    assert world.price(spec.id, "fr-fr") == money("94.99")


def test_headroom_is_capped_by_max_price(tmp_path: Path) -> None:
    spec = listing("85.00", ["95.00"], max_price="90.00")
    result, _, world = probe_one(tmp_path, spec)
    assert (result.outcome, result.final_price, result.ceiling) == ("won", money("90.00"), money("90.00"))


def test_ceiling_option_caps_but_never_above_max_price(tmp_path: Path) -> None:
    spec = listing("85.00", ["95.00"], max_price="90.00")
    result, _, _ = probe_one(tmp_path, spec, ceiling=money("120.00"))
    assert result.ceiling == money("90.00")
    assert result.final_price == money("90.00")
    spec = listing("85.00", ["95.00"])
    result, _, _ = probe_one(tmp_path, spec, ceiling=money("88.00"))
    assert result.final_price == money("88.00")


def test_unwinnable_leaves_the_price(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"], min_price="96.00")
    result, recorder, world = probe_one(tmp_path, spec)
    assert (result.outcome, result.writes, result.final_price) == ("unwinnable", 0, money("100.00"))
    assert recorder.writes() == []
    assert "below the floor" in result.reason


def test_no_floor_is_skipped(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"], min_price=None)
    result, recorder, _ = probe_one(tmp_path, spec)
    assert result.outcome == "skipped" and "no floor" in result.reason
    assert recorder.writes() == []
    floor_given, _, _ = probe_one(tmp_path, listing("100.00", ["95.00"], min_price=None), floor=money("60.00"))
    assert floor_given.outcome == "won"


def test_already_optimal_is_kept_without_writes_when_headroom_is_revealed(tmp_path: Path) -> None:
    spec = listing("94.99", ["95.00"])
    result, recorder, _ = probe_one(tmp_path, spec, params=ProbeParams(headroom="revealed"))
    assert (result.outcome, result.writes) == ("kept", 0)
    assert recorder.writes() == []


def test_hidden_headroom_is_found_by_the_search(tmp_path: Path) -> None:
    spec = listing("90.00", ["95.00"], max_price="150.00")
    result, recorder, world = probe_one(tmp_path, spec, reveal=False)
    assert result.outcome == "won"
    assert result.final_price == money("94.99")  # the highest price that still wins
    assert world.price(spec.id, "fr-fr") == money("94.99")
    assert 1 <= result.writes <= 3
    prices = [money(body["price"]) for _, body in recorder.writes()]
    assert all(money("50.00") <= p <= money("150.00") for p in prices)


def test_hidden_headroom_up_to_the_ceiling(tmp_path: Path) -> None:
    spec = listing("90.00", ["195.00"], max_price="150.00")
    result, _, _ = probe_one(tmp_path, spec, reveal=False)
    assert (result.outcome, result.final_price, result.writes) == ("won", money("150.00"), 1)


def test_no_search_after_a_dip_to_the_exact_price_to_win(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    result, recorder, _ = probe_one(tmp_path, spec, reveal=False)
    assert (result.outcome, result.final_price, result.writes) == ("won", money("94.99"), 1)


def test_backbox_that_never_follows_restores_and_reports_lost(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], settle=60.0)
    summary, recorder = run_probes(world, tmp_path / "b.db", [ProbeTarget(spec.id, "fr-fr")],
                                   params=ProbeParams(settle=2.0, peek_retries=3))
    (result,) = summary.results
    assert result.outcome == "lost"
    assert world.price(spec.id, "fr-fr") == money("100.00")
    assert [body["price"] for _, body in recorder.writes()] == ["94.99", "100.00"]
    assert result.dip_seconds > 0


def test_jpy_has_no_decimals(tmp_path: Path) -> None:
    spec = listing("15000", ["14000", "14500"], market="ja-jp", currency="JPY", min_price="12000",
                   max_price="20000")
    result, recorder, world = probe_one(tmp_path, spec, market="ja-jp")
    assert (result.outcome, result.final_price) == ("won", money("13999", "JPY"))
    assert [body for _, body in recorder.writes()] == [{"price": "13999", "currency": "JPY"}]


def test_listing_not_in_the_market_is_skipped(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    result, _, _ = probe_one(tmp_path, spec, market="de-de")
    assert result.outcome in ("skipped", "error")


def test_dry_run_sends_no_write(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    result, recorder, world = probe_one(tmp_path, spec, params=ProbeParams(dry_run=True))
    assert recorder.writes() == []
    assert world.price(spec.id, "fr-fr") == money("100.00")
    row = result.to_json()
    assert row["dry_run"] is True and row["outcome"] == "planned" and row["final_price"] is None
    assert row["planned_writes"] == [
        "dip 100.00 EUR -> 94.99 EUR: to win the Backbox (restored if it does not)"]
    assert row["dip_price"] == "94.99" and row["writes"] == 0
    # After a dip to the exact price to win, the real run raises nothing: neither does the plan.
    assert row["reason"].startswith("plan: not winning at 100.00 EUR: dip to 94.99 EUR")
    assert row["reason"].endswith("then no raise: one step higher loses")


@pytest.mark.parametrize("reveal", [True, False])
def test_dry_run_of_a_listing_already_winning_plans_the_search_not_a_win(tmp_path: Path, reveal: bool) -> None:
    spec = listing("90.00", ["195.00"], max_price="150.00")
    result, recorder, world = probe_one(tmp_path, spec, reveal=reveal, params=ProbeParams(dry_run=True))
    assert recorder.writes() == []
    assert world.price(spec.id, "fr-fr") == money("90.00")
    row = result.to_json()
    assert (row["outcome"], row["final_price"], row["dip_price"], row["writes"]) == ("planned", None, None, 0)
    (planned,) = row["planned_writes"]
    assert planned.startswith("raise 90.00 EUR -> 150.00 EUR: ")
    # Revealed headroom (price to win 194.99) is one raise capped by the ceiling; hidden, the search.
    assert ("headroom" in planned) == reveal and ("search" in planned) == (not reveal)
    assert row["reason"].startswith("plan: winning at 90.00 EUR; then ")
    assert "undone at once" in row["reason"]


@pytest.mark.parametrize(("spec_args", "params", "reveal"), [
    (("100.00", ["95.00"]), {}, True),  # losing: the dip
    (("90.00", ["95.00"]), {}, True),  # winning, headroom shown
    (("90.00", ["195.00"]), {}, False),  # winning, hidden headroom: the search
    (("100.00", ["95.00"]), {"step": "0.50"}, False),  # a dip below the price to win, then the search
])
def test_a_plan_names_the_writes_the_real_run_starts_with(tmp_path: Path, spec_args: Any,
                                                          params: dict, reveal: bool) -> None:
    price, rivals = spec_args
    spec = listing(price, rivals, max_price="150.00")
    plan, recorder, _ = probe_one(tmp_path / "dry", spec, reveal=reveal,
                                  params=ProbeParams(dry_run=True, **params))
    assert recorder.writes() == []
    real, real_recorder, _ = probe_one(tmp_path / "real", spec, reveal=reveal, params=ProbeParams(**params))
    planned = [entry.split(": ")[0].split(" -> ")[1] for entry in plan.planned]
    sent = [f"{body['price']} EUR" for _, body in real_recorder.writes()]
    assert planned and sent[:len(planned)] == planned, (plan.reason, sent)
    assert plan.outcome == "planned" and plan.final_price is None
    assert plan.dip_price == real.dip_price


def test_a_dry_run_reports_what_the_reads_settle_and_plans_the_rest(tmp_path: Path) -> None:
    specs = [listing("150.00", ["195.00"], max_price="150.00"),  # winning at the ceiling: kept
             listing("100.00", ["95.00", "30.00"]),  # unwinnable
             listing("100.00", ["95.00"])]  # losing, winnable: a plan
    world = SimWorld(specs)
    targets = [ProbeTarget(s.id, "fr-fr") for s in specs]
    plan, recorder = run_probes(world, tmp_path / "dry.db", targets, params=ProbeParams(dry_run=True))
    assert recorder.writes() == []
    real, _ = run_probes(world, tmp_path / "real.db", targets)
    plans, reals = by_listing(plan), by_listing(real)
    for spec in specs[:2]:  # settled by the reads: as the real run reports it, nothing planned
        row = plans[spec.id].to_json()
        assert (row.pop("dry_run"), row.pop("planned_writes")) == (True, [])
        assert row == reals[spec.id].to_json()
    assert [r.outcome for r in (plans[s.id] for s in specs)] == ["kept", "unwinnable", "planned"]


def test_every_change_is_in_history_with_snapshot(tmp_path: Path) -> None:
    from bmctl.pricing.journal import history
    from bmctl.store.db import open_database

    spec = listing("100.00", ["95.00"])
    probe_one(tmp_path, spec)
    db = open_database(tmp_path / "bmctl.db")
    (change,) = history(db, spec.id)
    assert (change["old_price"], change["new_price"], change["reason"]) == ("100.00", "94.99", "dip")
    snapshot = db.conn.execute("select snapshot from price_changes").fetchone()[0]
    assert "price_to_win" in snapshot
    probes = list(db.query("select state, outcome from probes"))
    assert probes == [{"state": "closed", "outcome": "won"}]


@pytest.mark.parametrize("reveal", [True, False])
def test_batch_of_mixed_listings_ends_right(tmp_path: Path, reveal: bool) -> None:
    specs = [
        listing("100.00", ["95.00", "99.00"]),            # winnable
        listing("90.00", ["95.00"]),                       # winning with headroom
        listing("100.00", ["95.00"], min_price="96.00"),   # unwinnable
        listing("100.00", ["95.00"], min_price=None),      # no floor
        listing("85.00", ["95.00"], max_price="90.00"),    # max_price below the competition
    ]
    world = SimWorld(specs, reveal=reveal)
    summary, recorder = run_probes(world, tmp_path / "m.db", [ProbeTarget(s.id, "fr-fr") for s in specs])
    results = by_listing(summary)
    expected = [("won", "94.99"), ("won", "94.99"), ("unwinnable", "100.00"), ("skipped", None),
                ("won", "90.00")]
    for spec, (outcome, final) in zip(specs, expected):
        result = results[spec.id]
        assert result.outcome == outcome, result
        if final is not None:
            assert result.final_price == money(final)
    winnable = results[specs[0].id]
    assert winnable.writes == 1


def test_a_coarse_step_never_rounds_the_dip_below_the_floor(tmp_path: Path) -> None:
    # price_to_win 59.99, floor 59.98: the 0.05 grid would say 59.95, below the floor.
    spec = listing("100.00", ["60.00"], min_price="59.98")
    result, recorder, world = probe_one(tmp_path, spec, params=ProbeParams(step="0.05"))
    assert (result.outcome, result.final_price) == ("won", money("59.98")), result
    assert [body["price"] for _, body in recorder.writes()] == ["59.98"]
    backbox = world.marketplace.backbox(spec.id, "fr-fr")
    assert backbox is not None and backbox.is_winning


def test_winning_below_a_raised_floor_is_kept_when_the_market_shows_no_allowed_price_wins(
        tmp_path: Path) -> None:
    # Winning at 86.00 against 89.00; the operator's floor is 92.00: every allowed price loses,
    # and the revealed headroom (88.99) says so without a write.
    spec = listing("86.00", ["89.00"], max_price="96.00")
    result, recorder, world = probe_one(tmp_path, spec, reveal=True, floor=money("92.00"))
    assert result.outcome == "kept" and recorder.writes() == [], result
    backbox = world.marketplace.backbox(spec.id, "fr-fr")
    assert backbox is not None and backbox.is_winning


def test_below_a_raised_floor_with_hidden_headroom_the_search_finds_no_allowed_price_wins(
        tmp_path: Path) -> None:
    # The same market with the headroom hidden: only a raise can tell. The ceiling loses, the
    # exact price to win (88.99) is below the floor, so the listing ends at the floor.
    spec = listing("86.00", ["89.00"], max_price="96.00")
    result, recorder, world = probe_one(tmp_path, spec, reveal=False, floor=money("92.00"))
    assert (result.outcome, result.final_price) == ("unwinnable", money("92.00")), result
    assert [body["price"] for _, body in recorder.writes()] == ["96.00", "92.00"]
    assert "below the floor" in result.reason


@pytest.mark.parametrize("reveal", [True, False])
def test_winning_below_a_raised_floor_rises_into_the_bounds_to_the_highest_winning_price(
        tmp_path: Path, reveal: bool) -> None:
    # Winning at 100.00 against 120.00 with a floor of 105.00: 119.99 is allowed and wins.
    spec = listing("100.00", ["120.00"], max_price="150.00")
    result, recorder, world = probe_one(tmp_path, spec, reveal=reveal, floor=money("105.00"))
    assert (result.outcome, result.final_price) == ("won", money("119.99")), result
    assert recorder.writes()[-1][1]["price"] == "119.99" and len(recorder.writes()) == (1 if reveal else 2)
    assert all(money(body["price"]) >= money("105.00") for _, body in recorder.writes())
    backbox = world.marketplace.backbox(spec.id, "fr-fr")
    assert backbox is not None and backbox.is_winning


def test_a_tie_given_away_by_the_search_is_won_back_one_tick_lower(tmp_path: Path) -> None:
    # Holding a tie at 50.00 with hidden headroom: the raise to 60.00 loses, the undo to 50.00
    # no longer wins (the rival holds the tie now), so the probe takes 49.99.
    spec = listing("50.00", ["50.00"], min_price="40.00", max_price="60.00", incumbent=True)
    result, recorder, world = probe_one(tmp_path, spec, reveal=False, params=ProbeParams(headroom="hidden"))
    assert (result.outcome, result.final_price) == ("won", money("49.99")), result
    assert [body["price"] for _, body in recorder.writes()] == ["60.00", "50.00", "49.99"]
    backbox = world.marketplace.backbox(spec.id, "fr-fr")
    assert backbox is not None and backbox.is_winning


def test_probes_refused_only_by_rate_limits_exit_4(tmp_path: Path) -> None:
    """429 after every retry is "rate limits stopped the run": exit 4, rerunning resumes."""
    from bmctl.commands.probe import outcome_of
    from bmctl.pricing.batch import BatchSummary
    from bmctl.pricing.probe_types import ProbeResult

    limited = ProbeResult("a", "fr-fr", outcome="error", reason="429", exit_code=4)
    broken = ProbeResult("b", "fr-fr", outcome="error", reason="404", exit_code=1)
    warnings: list[str] = []
    assert outcome_of(BatchSummary(results=[limited]), warnings.append).exit_code == 4
    assert "rate limits" in warnings[0]
    assert outcome_of(BatchSummary(results=[limited, broken]), warnings.append).exit_code == 1
    assert outcome_of(BatchSummary(results=[ProbeResult("c", "fr-fr", outcome="won")]),
                      warnings.append).exit_code == 0


def test_a_probe_refused_by_429_after_every_retry_reports_exit_code_4(tmp_path: Path) -> None:
    from bmctl.traffic.transport import HttpResponse

    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec])

    class Always429:
        def send(self, request, timeout):  # type: ignore[no-untyped-def]
            return HttpResponse(429, {"retry-after": "1"}, b"")

    world.transport = Always429()  # type: ignore[assignment]
    summary, _ = run_probes(world, tmp_path / "r.db", [ProbeTarget(spec.id, "fr-fr")])
    (result,) = summary.results
    assert (result.outcome, result.exit_code) == ("error", 4)


class FirstCompetitorsRead:
    """Passes requests to ``inner``, but the first competitors read meets ``fault`` instead."""

    def __init__(self, inner, fault):  # type: ignore[no-untyped-def]
        self.inner, self.fault, self.hit = inner, fault, False

    def send(self, request, timeout):  # type: ignore[no-untyped-def]
        if not self.hit and "/competitors/" in request.path:
            self.hit = True
            return self.fault(request, timeout)
        return self.inner.send(request, timeout)


def test_a_read_that_timed_out_once_and_was_then_answered_does_not_fail_the_probe(tmp_path: Path) -> None:
    from bmctl.traffic.transport import TransportError

    def timeout(request, timeout):  # type: ignore[no-untyped-def]
        raise TransportError("timeout", "read timed out")

    spec = listing("100.00", ["95.00", "99.00"])
    world = SimWorld([spec])
    transport = FirstCompetitorsRead(world.transport, timeout)
    summary, _ = run_probes(world, tmp_path / "t.db", [ProbeTarget(spec.id, "fr-fr")], transport=transport)
    (result,) = summary.results
    assert transport.hit
    assert (result.outcome, result.final_price) == ("won", money("94.99")), result.reason


@pytest.mark.parametrize("path", ["/ws/backbox/v1/competitors/", "/ws/listings/"])
def test_a_first_read_with_a_malformed_answer_is_asked_again_and_the_probe_goes_on(
        tmp_path: Path, path: str) -> None:
    """Issue 13, point 4: one truncated answer to a read (the sandbox's ``malformed`` fault) is
    retried like a 5xx; it used to end the probe in ``error``."""
    import sqlite3

    from tests.pricing.harness import fault_once

    spec = listing("100.00", ["95.00", "99.00"])
    world = SimWorld([spec])
    hit = fault_once(world, "malformed", lambda r: r.method == "GET" and r.path.startswith(path))
    summary, recorder = run_probes(world, tmp_path / "m.db", [ProbeTarget(spec.id, "fr-fr")])
    (result,) = summary.results
    assert len(hit) == 1
    assert (result.outcome, result.final_price) == ("won", money("94.99")), result.reason
    assert [body["price"] for _, body in recorder.writes()] == ["94.99"]
    conn = sqlite3.connect(tmp_path / "m.db")
    rows = conn.execute("select outcome, error from rate_limit_logs where path like ? order by id",
                        (path + "%",)).fetchall()
    conn.close()
    assert rows[0][0] == "retry" and rows[0][1].startswith("malformed answer: not JSON")
    assert rows[1] == ("ok", None)
