"""Probe batches in simulated time: priorities, reservations, the breaker, the deadline, max_dip,
drifting competitors."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bmctl.api.money import Money
from bmctl.commands.probe import ProbeRequest, probe
from bmctl.commands.run import CommandContext
from bmctl.errors import ExitCode
from bmctl.pricing.probe_types import ProbeParams, ProbeTarget
from bmctl.pricing.runner import ProbeRunOptions
from bmctl.sandbox.catalogue import generate_catalogue
from bmctl.sandbox.model import Drift
from bmctl.sandbox.world import SimWorld
from bmctl.store.db import open_database
from bmctl.traffic.buckets import DEFAULT_LIMITS, LimitSpec
from bmctl.traffic.queue import Priority
from tests.pricing.harness import by_listing, listing, money, run_probes


def limits(**changes: LimitSpec) -> dict[str, LimitSpec]:
    out = dict(DEFAULT_LIMITS)
    out.update(changes)
    return out


def price_of(request: Any) -> Money:
    body = json.loads(request.body)
    return Money.parse(body["price"], body.get("currency", "EUR"))


def open_probes(db_path: Path) -> list[dict[str, Any]]:
    db = open_database(db_path)
    return list(db.query("select * from probes where state != 'closed'"))


class Undercut:
    """A transport wrapper: after the first write below the start price of a listing in
    ``victims``, a rival undercuts it at once (the Backbox never follows our dip)."""

    def __init__(self, world: SimWorld, victims: set[str]) -> None:
        self.world = world
        self.victims = victims
        self.inner = world.transport
        self.done: set[str] = set()

    def send(self, request: Any, timeout: float) -> Any:
        response = self.inner.send(request, timeout)
        lid = request.listing_id
        if request.method == "POST" and lid in self.victims and lid not in self.done and response.status < 300:
            self.done.add(lid)
            price = price_of(request)
            self.world.marketplace.set_rivals(lid, "fr-fr", [price.with_amount(price.amount - Decimal("1.00"))])
        return response


# --- priorities -----------------------------------------------------------------------------


def test_dip_exits_are_never_queued_behind_new_work(tmp_path: Path) -> None:
    """Global is the bottleneck, so every request competes for it: the write ending a dip goes
    out on the slots its dip claimed, at once, while new work (NORMAL) waits for free ones."""
    specs = [listing("100.00", ["95.00"]) for _ in range(40)]
    world = SimWorld(specs, settle=2.0)
    undercut = Undercut(world, {s.id for s in specs[::2]})  # half must restore (CRITICAL)
    records: list[Any] = []
    summary, recorder = run_probes(
        world, tmp_path / "p.db", [ProbeTarget(s.id, "fr-fr") for s in specs],
        transport=undercut, on_attempt=records.append, max_in_flight=40,
        limits=limits(**{"global": LimitSpec(4, 1.0)}),
    )
    assert len(summary.results) == 40
    outcomes = {r.outcome for r in summary.results}
    assert outcomes == {"won", "lost"}, outcomes
    critical = [r for r in records if r.priority == Priority.CRITICAL]
    assert len(critical) == 20
    normal_waits = [r.queue_wait_ms for r in records if r.priority == Priority.NORMAL]
    assert max(normal_waits) > 1000.0, "new work never waited: no contention"
    # At most the one request on the wire when it was queued (20 ms in this world).
    assert max(r.queue_wait_ms for r in critical) <= 20.0 + 1e-6
    # Each request at its level: the first look at the market (listing, then competitors) is
    # new work, NORMAL; the rest of a probe HIGH (so that the peeks of open dips never queue
    # behind other probes' first reads); the write ending a dip CRITICAL.
    by_call: dict[int, Any] = {}
    for r in records:
        by_call.setdefault(r.call_id, r)
    seen: set[str] = set()
    for r in sorted(by_call.values(), key=lambda r: r.call_id):
        if r.route == "listing_read":
            assert r.priority == Priority.NORMAL
        elif r.route == "competitors":
            first = r.request.listing_id not in seen
            seen.add(r.request.listing_id)
            assert r.priority == (Priority.NORMAL if first else Priority.HIGH), r
    for spec in specs:
        writes = [r for r in by_call.values() if r.route == "listing_write" and r.request.listing_id == spec.id]
        assert writes[0].priority == Priority.HIGH  # the dip
        if spec.id in undercut.done and len(writes) > 1:
            assert writes[1].priority == Priority.CRITICAL  # the restore ends the dip
    assert {r.outcome for r in records} == {"ok"}  # never over the sandbox's limits


# --- reservations ---------------------------------------------------------------------------


@pytest.mark.parametrize("deadline", [None, 1800.0])
def test_a_batch_that_runs_out_of_write_budget_strands_nothing(tmp_path: Path, deadline: float | None) -> None:
    """listing_writes 6/hour: the hourly budget runs out after a few dips. No dip is sent
    unless its exit is claimed, so every dipped listing is restored or confirmed
    winning soon after, and with a deadline the rest is left unstarted (exit 4)."""
    specs = [listing("100.00", ["95.00"]) for _ in range(12)]
    world = SimWorld(specs, settle=2.0)
    undercut = Undercut(world, {s.id for s in specs[::2]})
    records: list[Any] = []
    db = tmp_path / "p.db"
    summary, recorder = run_probes(
        world, db, [ProbeTarget(s.id, "fr-fr") for s in specs], transport=undercut,
        on_attempt=records.append, deadline=deadline,
        limits=limits(listing_writes=LimitSpec(6, 3600.0)),
    )
    results = by_listing(summary)
    assert {r.outcome for r in records} == {"ok"}
    assert open_probes(db) == []
    writes: dict[str, list[tuple[float, Money]]] = {}
    for r in records:
        if r.route == "listing_write":
            writes.setdefault(r.request.listing_id, []).append((r.sent_wall, price_of(r.request)))
    for spec in specs:
        start = money("100.00")
        final = world.price(spec.id, "fr-fr")
        if spec.id not in results:
            assert final == start and spec.id not in writes
            continue
        result = results[spec.id]
        sent = writes.get(spec.id, [])
        if sent and sent[0][1] < start:  # dipped
            if result.outcome == "won":
                backbox = world.marketplace.backbox(spec.id, "fr-fr")
                assert backbox is not None and backbox.is_winning and final == result.final_price
            else:
                assert result.outcome == "lost" and final == start
                # The exit went out on the slot its dip claimed: within max_dip (120 s) of
                # the dip, not when the hourly budget came back.
                assert len(sent) == 2 and sent[1][0] - sent[0][0] <= 120.0 + 1.0, sent
        assert final >= money("94.99")
    if deadline is None:
        assert summary.stopped_by is None and len(summary.results) == 12
    else:
        assert summary.stopped_by == "deadline"
        assert summary.not_started, "the budget for 12 probes is not there in 30 min"
        assert len(summary.results) + len(summary.not_started) == 12
        start_wall = min(r.sent_wall for r in records)
        assert max(r.sent_wall for r in records) - start_wall <= deadline


# --- the circuit breaker --------------------------------------------------------------------


def test_breaker_stops_new_probes_and_exits_1(tmp_path: Path) -> None:
    # price_to_win 94.99 == min_price: each dip goes to the floor.
    specs = [listing("100.00", ["95.00"], min_price="94.99") for _ in range(10)]
    world = SimWorld(specs)
    targets = [ProbeTarget(s.id, "fr-fr") for s in specs]
    warnings: list[str] = []
    with world.runtime(tmp_path / "p.db", probe_breaker_floor_hits=3) as runtime:
        options = ProbeRunOptions(params=ProbeParams(settle=2.0), max_in_flight=2, breaker_floor_hits=3)
        rows: list[dict] = []
        report = probe(CommandContext(runtime, warn=warnings.append, emit=rows.append),
                       ProbeRequest(ids=[t.listing_id for t in targets]),
                       targets, options)
    assert report.exit_code == ExitCode.ITEMS_FAILED
    assert report.summary.stopped_by == "breaker"
    won = [r for r in report.summary.results if r.outcome == "won"]
    assert len(won) == 3  # the open probes were finished
    assert report.summary.not_started
    assert any("circuit breaker" in w and "breaker_floor_hits" in w for w in warnings)
    assert sorted(r["listing_id"] for r in rows) == sorted(t.listing_id for t in targets)
    not_started = [r for r in rows if r["outcome"] == "not_started"]
    assert len(not_started) == len(report.summary.not_started)
    assert all("circuit breaker" in r["reason"] and "more than 3 listings" in r["reason"] for r in not_started)
    dipped = sum(1 for s in specs if world.price(s.id, "fr-fr") != money("100.00"))
    assert dipped == 3
    assert open_probes(tmp_path / "p.db") == []


def test_breaker_with_every_probe_in_flight_still_exits_1(tmp_path: Path) -> None:
    """All probes started before the breaker tripped: the rest are skipped, and the run still
    exits 1 saying why."""
    specs = [listing("100.00", ["95.00"], min_price="94.99") for _ in range(6)]
    world = SimWorld(specs)
    targets = [ProbeTarget(s.id, "fr-fr") for s in specs]
    warnings: list[str] = []
    with world.runtime(tmp_path / "p.db") as runtime:
        options = ProbeRunOptions(params=ProbeParams(settle=2.0), max_in_flight=16, breaker_floor_hits=2)
        report = probe(CommandContext(runtime, warn=warnings.append),
                       ProbeRequest(ids=[t.listing_id for t in targets]),
                       targets, options)
    assert report.exit_code == ExitCode.ITEMS_FAILED
    outcomes = sorted(r.outcome for r in report.summary.results)
    assert outcomes.count("won") == 2
    assert all("circuit breaker" in r.reason for r in report.summary.results if r.outcome != "won")
    assert any("circuit breaker" in w for w in warnings)


# --- the deadline ---------------------------------------------------------------------------


def test_deadline_starts_no_probe_that_cannot_finish_and_exits_4(tmp_path: Path) -> None:
    specs = [listing("100.00", ["95.00"]) for _ in range(30)]
    world = SimWorld(specs)
    targets = [ProbeTarget(s.id, "fr-fr") for s in specs]
    infos: list[str] = []
    warnings: list[str] = []
    finished_at: list[float] = []
    # 4 writes per minute: the deadline of 2 minutes holds about 8 probes.
    lim = limits(listing_writes=LimitSpec(4, 60.0))
    with world.runtime(tmp_path / "p.db", limits=lim) as runtime:
        start = world.clock.monotonic()
        options = ProbeRunOptions(params=ProbeParams(settle=2.0), deadline=120.0)
        context = CommandContext(runtime, info=infos.append, warn=warnings.append,
                                 emit=lambda row: finished_at.append(world.clock.monotonic()))
        report = probe(context, ProbeRequest(ids=[t.listing_id for t in targets]), targets, options)
    assert report.exit_code == ExitCode.LIMITED
    summary = report.summary
    assert summary.stopped_by == "deadline"
    assert 1 <= len(summary.results) < 30
    assert len(summary.results) + len(summary.not_started) == 30
    assert max(finished_at) - start <= 120.0, "a started probe finished after the deadline"
    assert all(r.outcome == "won" for r in summary.results)
    for target in summary.not_started:
        assert world.price(target.listing_id, "fr-fr") == money("100.00")
    assert any("deadline" in w and "not started" in w for w in warnings)
    plan = "\n".join(infos)
    assert "exceed" in plan and "listing_writes" in plan  # the plan warned before the batch


def test_plan_warns_when_writes_exceed_the_budget_within_the_deadline() -> None:
    from bmctl.pricing.plan import plan_probes

    plan = plan_probes(3000, DEFAULT_LIMITS, settle=2.0, max_raises=3, peek_retries=5,
                       deadline=600.0)
    text = plan.describe()
    assert "writes exceed" in text and "deadline" in text
    quiet = plan_probes(10, DEFAULT_LIMITS, settle=2.0, max_raises=3, peek_retries=5,
                        deadline=600.0)
    assert quiet.warnings == []


# --- max_dip --------------------------------------------------------------------------------


def test_a_dip_past_max_dip_is_restored_critical_and_reported_error(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], settle=1000.0)  # the Backbox never follows in time
    records: list[Any] = []
    params = ProbeParams(settle=2.0, peek_retries=100, max_dip=15.0)
    summary, recorder = run_probes(world, tmp_path / "p.db", [ProbeTarget(spec.id, "fr-fr")],
                                   params=params, on_attempt=records.append)
    (result,) = summary.results
    assert result.outcome == "error" and "max_dip" in result.reason
    assert world.price(spec.id, "fr-fr") == money("100.00")
    writes = [r for r in records if r.route == "listing_write"]
    assert [price_of(w.request) for w in writes] == [money("94.99"), money("100.00")]
    assert writes[1].priority == Priority.CRITICAL
    dip = writes[1].sent_wall - writes[0].sent_wall
    assert 15.0 <= dip <= 15.0 + 1.0, dip  # restored at max_dip, not a peek interval later
    assert 15.0 <= result.dip_seconds <= 16.0
    assert open_probes(tmp_path / "p.db") == []


# --- drift ----------------------------------------------------------------------------------


@pytest.mark.parametrize("reveal", [True, False])
def test_drifting_competitors_never_push_a_write_out_of_bounds(tmp_path: Path, reveal: bool) -> None:
    specs = generate_catalogue(60, seed=11)
    drift = Drift(interval=1.0, step=Decimal("0.02"), band=Decimal("0.10"))
    world = SimWorld(specs, settle=2.0, reveal=reveal, drift=drift, seed=3)
    offers = {s.id: s.offers[0] for s in specs}
    targets = [ProbeTarget(s.id, offers[s.id].market) for s in specs]
    db = tmp_path / "p.db"
    summary, recorder = run_probes(world, db, targets, params=ProbeParams(settle=2.0))
    results = by_listing(summary)
    assert len(results) == 60
    for request in recorder.sent:
        if request.method != "POST":
            continue
        offer = offers[request.listing_id]
        price = price_of(request)
        assert offer.min_price is not None
        assert offer.min_price <= price <= offer.max_price, (price, offer)
    assert open_probes(db) == []
    for spec in specs:
        offer, result = offers[spec.id], results[spec.id]
        now = world.price(spec.id, offer.market)
        assert result.final_price == now or result.outcome == "skipped", result
        if result.outcome in ("lost", "unwinnable", "skipped", "error"):
            assert now == offer.price, result  # nothing left at a dipped price
        if result.outcome == "won" and result.writes:
            assert result.final_price is not None


def test_deadline_counts_the_write_budget_an_earlier_run_spent(tmp_path: Path) -> None:
    """A run right after one that spent the write budget: the ledger in the database still
    holds those slots, no dip could be sent within the deadline, so no probe starts (exit 4) instead of
    running an hour past the deadline."""
    specs = [listing("100.00", ["95.00"]) for _ in range(14)]
    world = SimWorld(specs)
    # 11 slots: the ten probes take ten (each dip also claims one for its exit while open).
    lim = limits(listing_writes=LimitSpec(11, 300.0))
    db = tmp_path / "p.db"
    first, _ = run_probes(world, db, [ProbeTarget(s.id, "fr-fr") for s in specs[:10]], limits=lim,
                          max_in_flight=4)
    assert [r.outcome for r in first.results] == ["won"] * 10
    warnings: list[str] = []
    with world.runtime(db, limits=lim) as runtime:
        start = world.clock.monotonic()
        targets = [ProbeTarget(s.id, "fr-fr") for s in specs[10:]]
        options = ProbeRunOptions(params=ProbeParams(settle=2.0), deadline=120.0)
        rows: list[dict] = []
        report = probe(CommandContext(runtime, warn=warnings.append, emit=rows.append),
                       ProbeRequest(ids=[t.listing_id for t in targets]),
                       targets, options)
        elapsed = world.clock.monotonic() - start
    assert report.exit_code == ExitCode.LIMITED
    assert report.summary.results == [] and len(report.summary.not_started) == 4
    # Every listing asked for is in the output, saying why it was left for the next run.
    assert [r["listing_id"] for r in rows] == [t.listing_id for t in targets]
    assert all(r["outcome"] == "not_started" and "deadline" in r["reason"] for r in rows)
    assert set(rows[0]) >= {"listing_id", "market", "outcome", "floor", "ceiling", "reason"}
    assert elapsed <= 120.0
    for spec in specs[10:]:
        assert world.price(spec.id, "fr-fr") == money("100.00")


def test_dip_windows_stay_short_when_competitor_reads_are_the_bottleneck(tmp_path: Path) -> None:
    """200 probes with drifting rivals: dips that must be restored are not kept waiting for
    their peek behind other probes' first reads (competitors 2/s is saturated)."""
    specs = generate_catalogue(200, seed=1)
    world = SimWorld(specs, settle=2.0, reveal=False, seed=1,
                     drift=Drift(interval=1.0, step=Decimal("0.02")))
    targets = [ProbeTarget(s.id, s.offers[0].market) for s in specs]
    summary, _ = run_probes(world, tmp_path / "p.db", targets, params=ProbeParams(settle=2.0))
    windows = sorted(r.dip_seconds for r in summary.results if r.dip_price is not None)
    assert sum(1 for w in windows if w > 0) >= 10  # restores happened
    p99 = windows[int(0.99 * (len(windows) - 1))]
    assert p99 <= 2.0 + 2 * 1.8 + 0.5, windows[-10:]


def test_a_slow_write_budget_still_lets_dips_through(tmp_path: Path) -> None:
    """A write budget of 50 an hour still lets a dip and its claimed exit through (it was a
    bug of the token buckets: a token slower than their reservation horizon stalled every dip)."""
    from bmctl.traffic.controller import TrafficStalled

    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec])
    lim = limits(listing_writes=LimitSpec(50, 3600.0))  # a token every 72 s
    try:
        summary, _ = run_probes(world, tmp_path / "p.db", [ProbeTarget(spec.id, "fr-fr")], limits=lim)
    except TrafficStalled:
        pytest.fail("TrafficStalled: the dip's exit can never be reserved")
    assert [r.outcome for r in summary.results] == ["won"]


def test_plan_of_a_price_file_counts_a_read_and_a_write_per_row() -> None:
    from bmctl.pricing.plan import plan_updates
    from bmctl.traffic.admission import hold_span

    plan = plan_updates(1000, DEFAULT_LIMITS)
    assert plan.requests == {"global": (2000.0, 2000.0), "listing_writes": (1000.0, 1000.0)}
    # 1,000 writes fit the hour's 2,000 slots at once; 2,000 requests need ten global windows.
    assert plan.bottleneck == "global"
    assert plan.seconds == pytest.approx(9 * hold_span(10.0))
    dry = plan_updates(1000, DEFAULT_LIMITS, dry_run=True)
    assert dry.requests["listing_writes"] == (0.0, 0.0) and dry.bottleneck == "global"
    assert "dry run" in dry.describe()


def test_deadline_bounded_runs_take_turns_over_the_whole_catalogue(tmp_path: Path) -> None:
    """`probe --all --deadline`: each run probes least-recently-probed listings first, so runs
    that each finish part of the catalogue cover all of it within ceil(catalogue / capacity)."""
    import math
    from functools import partial

    from bmctl.commands.run import execute

    specs = generate_catalogue(36, markets=("fr-fr",), seed=3)
    world = SimWorld(specs, settle=2.0, seed=3)
    probed: list[set[str]] = []
    for _ in range(6):
        with world.runtime(tmp_path / "cron.db") as runtime:
            rows: list[dict] = []
            options = ProbeRunOptions(params=ProbeParams(settle=2.0), deadline=25.0, max_in_flight=4)
            request = ProbeRequest(all_listings=True, market="fr-fr")
            execute(CommandContext(runtime, emit=rows.append),
                    partial(probe, request=request, targets=[], options=options), recover=True)
        probed.append({row["listing_id"] for row in rows if row["outcome"] != "not_started"})
        assert len(rows) == len(specs)  # every listing asked for is in the output
        world.clock.advance(900.0)  # the next cron slot
    capacity = min(len(run) for run in probed)
    assert 0 < capacity < len(specs), [len(run) for run in probed]  # the deadline cuts every run short
    needed = math.ceil(len(specs) / capacity)
    covered = set().union(*probed[:needed])
    assert covered == {s.id for s in specs}, (needed, [len(run) for run in probed])


def test_an_auth_failure_mid_batch_names_every_listing_left_open(tmp_path: Path) -> None:
    """The token stops working right after the dips: the restores are refused too, so the run
    ends (exit 3) naming each dipped listing, its price now and its original one."""
    from bmctl.errors import AuthError

    specs = [listing("100.00", ["95.00"]) for _ in range(2)]
    world = SimWorld(specs, settle=2.0)
    inner = world.transport

    class RevokedAfterTheDips:
        writes = 0

        def send(self, request: Any, timeout: float) -> Any:
            response = inner.send(request, timeout)
            if request.method == "POST":
                self.writes += 1
                if self.writes == len(specs):
                    world.app.token = "revoked"  # every later request: 401
            return response

    warnings: list[str] = []
    with pytest.raises(AuthError), world.runtime(tmp_path / "p.db") as runtime:
        runtime.transport = RevokedAfterTheDips()
        options = ProbeRunOptions(params=ProbeParams(settle=2.0))
        probe(CommandContext(runtime, warn=warnings.append), ProbeRequest(ids=[s.id for s in specs]),
              [ProbeTarget(s.id, "fr-fr") for s in specs], options)
    left = [w for w in warnings if "left open" in w]
    assert len(left) == 2
    for spec in specs:
        (line,) = [w for w in left if spec.id in w]
        assert "at 94.99 EUR" in line and "original 100.00 EUR" in line and "bmctl recover" in line
        assert world.price(spec.id, "fr-fr") == money("94.99")  # still dipped: the journal keeps it


def test_a_write_on_the_wire_when_the_run_stops_is_in_history(tmp_path: Path) -> None:
    """Ctrl-C while a dip is on the wire: the batch abandons the probe, the write lands while
    the run drains the wire, and the restore puts the price back — history has both, since
    every price bmctl changes is recorded (the soak found the dip missing)."""
    from bmctl.errors import Interrupted
    from bmctl.store.db import open_database

    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec], settle=2.0, latency=0.3)

    class StopWhileAWriteIsOut:
        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.capacity = inner.capacity
            self.write_out = False
            self.stopped = False

        def start(self, token: Any, request: Any, timeout: float) -> float:
            self.write_out = not self.stopped and request.method == "POST"
            return float(self.inner.start(token, request, timeout))

        def poll(self) -> Any:
            if self.write_out:
                self.write_out, self.stopped = False, True
                raise KeyboardInterrupt  # the signal handler's raise, with the dip on the wire
            return self.inner.poll()

        def wait(self, until: float) -> None:
            self.inner.wait(until)

        def close(self) -> None:
            self.inner.close()

    class Transport:
        def send(self, request: Any, timeout: float) -> Any:
            return world.transport.send(request, timeout)

        def wire(self, workers: int) -> StopWhileAWriteIsOut:
            return StopWhileAWriteIsOut(world.transport.wire(workers))

    with pytest.raises(Interrupted), world.runtime(tmp_path / "p.db", traffic_max_in_flight=8) as runtime:
        runtime.transport = Transport()
        options = ProbeRunOptions(params=ProbeParams(settle=2.0))
        probe(CommandContext(runtime), ProbeRequest(ids=[spec.id]), [ProbeTarget(spec.id, "fr-fr")], options)
    assert world.price(spec.id, "fr-fr") == money("100.00")
    rows = open_database(tmp_path / "p.db").execute(
        "select old_price, new_price, status from price_changes order by id").fetchall()
    assert [tuple(r) for r in rows] == [("100.00", "94.99", "updated"), ("94.99", "100.00", "updated")]
