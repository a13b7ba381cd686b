"""``probe`` and ``recover``: the probe command's flow (validate the input, enumerate ``--all``,
plan, run the batch, decide the outcome) and putting back what killed runs left open."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, TextIO

from bmctl.commands.run import CommandContext, Outcome
from bmctl.errors import ExitCode, RunStopped, UsageError
from bmctl.pricing.batch import BatchSummary
from bmctl.pricing.probe_types import ProbeParams, ProbeResult, ProbeTarget
from bmctl.pricing.runner import ProbeRun, ProbeRunOptions


@dataclass
class ProbeRequest:
    """What the operator asked to probe: ids (``-`` for stdin), a CSV file, or ``--all``."""

    ids: list[str] = field(default_factory=list)
    file: str | None = None
    all_listings: bool = False
    floor: str | None = None
    ceiling: str | None = None
    market: str = "fr-fr"
    every_market: bool = False  # --all without --market: every market of ``market``'s platform

    def markets(self) -> tuple[str, ...]:
        """The markets ``--all`` walks: every market of the platform, or ``market`` alone."""
        from bmctl.api.markets import get_market, platform_markets

        return platform_markets(self.market) if self.every_market else (get_market(self.market).code,)

    def validate(self, stdin: TextIO) -> list[ProbeTarget]:
        """Every target, checked before anything is sent (``--all`` is enumerated later)."""
        from bmctl.pricing.targets import probe_targets_from_file, probe_targets_from_ids

        sources = sum([bool(self.ids), self.file is not None, self.all_listings])
        if sources == 0:
            raise UsageError("nothing to probe: give listing ids, '-' for stdin, --file or --all")
        if sources > 1:
            raise UsageError("give listing ids, --file or --all, not several")
        if self.file is not None and (self.floor or self.ceiling):
            raise UsageError("--floor/--ceiling apply to ids and --all; put bounds in the file's columns")
        if self.all_listings and self.every_market and (self.floor or self.ceiling):
            # One amount in EUR, GBP and SEK alike would be a wrong bound in all but one.
            raise UsageError("--floor/--ceiling with --all need --market: the bounds are amounts "
                             "in one market's currency, and --all probes every market otherwise")
        if self.file is not None:
            targets = probe_targets_from_file(self.file, self.market, stdin)
        else:
            # Validates --floor/--ceiling even for --all, whose ids come later.
            targets = probe_targets_from_ids(self.ids, self.market, self.floor, self.ceiling, stdin)
        if not targets and not self.all_listings:
            raise UsageError("no listing ids to probe")
        return targets


def probe_params(settings: Any, *, settle: float | None = None, max_raises: int | None = None,
                 step: str | None = None, dry_run: bool = False, costs: str | None = None,
                 stdin: TextIO | None = None) -> ProbeParams:
    """Probe parameters: the ``[probe]`` settings, overridden by options, and the ``[pricing]``
    rules with the costs file (``--costs``, else ``[pricing] costs``), read and checked whole
    before any request (exit 2 when malformed)."""
    probe = settings.probe
    # Every [probe] setting the probe itself uses, by name (the breaker is the run's, not its).
    shared = {f.name: getattr(probe, f.name) for f in fields(ProbeParams) if hasattr(probe, f.name)}
    options = {"settle": settle, "max_raises": max_raises, "step": step}
    shared.update({name: value for name, value in options.items() if value is not None})
    rules = None
    pricing = getattr(settings, "pricing", None)
    if pricing is not None:
        from pathlib import Path

        from bmctl.pricing.costs import rules_from_settings

        base = Path(settings.config_path).parent if settings.config_path else None
        rules = rules_from_settings(pricing, costs, base=base, stdin=stdin)
        rules = rules if rules.active else None
    return ProbeParams(**shared, dry_run=dry_run, rules=rules)


def check_step(params: ProbeParams, targets: list[ProbeTarget]) -> None:
    """A bad ``--step`` is bad input, found before any request."""
    from bmctl.api.markets import get_market
    from bmctl.api.money import MoneyError
    from bmctl.pricing.guardrails import parse_step

    for market in {t.market for t in targets}:
        try:
            parse_step(params.step, get_market(market).currency)
        except MoneyError as error:
            raise UsageError(str(error)) from None


@dataclass
class ProbeOutcome(Outcome):
    """A probe command's outcome, with the batch it ran (results, probes not started, why)."""

    summary: BatchSummary | None = None


def probe(ctx: CommandContext, request: ProbeRequest, targets: list[ProbeTarget],
          options: ProbeRunOptions) -> ProbeOutcome:
    """Enumerate ``--all``, print the plan, run the batch with live progress; the outcome says
    which probes failed, or why the run stopped early (deadline: 4, circuit breaker: 1)."""
    from bmctl.api.markets import get_market
    from bmctl.pricing.targets import listing_targets, parse_bounds

    markets = request.markets() if request.all_listings else (request.market,)
    check_step(options.params, targets or [ProbeTarget("", market) for market in markets])
    advance: list[Callable[[str], None]] = []  # the progress line, once the batch size is known

    def on_result(result: ProbeResult) -> None:
        ctx.emit(result.to_json())
        for step in advance:
            step(result.outcome)

    run = ProbeRun(ctx.runtime, options, on_result=on_result)
    client = ctx.runtime.client  # a missing token fails here, before anything is sent
    pages = 0
    listed_in: dict[str, set[str]] = {}
    if request.all_listings:
        floor, ceiling = parse_bounds(request.market, request.floor, request.ceiling)
        targets, pages, listed_in = listing_targets(client, markets, floor, ceiling, own=run.own)
    expected = expected_probes(run.probed_before, targets, listed_in)
    if request.all_listings or request.file is not None:
        targets = least_recently_probed_first(run.probed_before, targets)
    # Listings the price-war cooldown holds cost no request: the plan leaves them out.
    held = sum(1 for listing, market in expected if run.held(listing, market))
    plan = run.plan(len(expected) - held, listing_pages=pages, markets=len({m for _, m in expected}))
    ctx.info(plan.describe())
    if held:
        ctx.info(f"{held} held by the price-war cooldown ([pricing] war_rounds): nothing sent for them")
    advance.append(ctx.progress(len(expected)))  # a row per (listing, market) expected
    try:
        summary = run.run(targets)
    except RunStopped:
        # Refused mid-batch (a 401, the WAF) or the host went down: the restores the run tried
        # may have failed too. Whatever is still open is named, with where it stands and how it
        # gets back.
        for left in run.journal.open_probes():
            now = left.current_price if left.current_price is not None else "unknown"
            ctx.warn(f"bmctl: left open: {left.listing_id} ({left.market}) at {now}, original "
                     f"{left.original_price}: `bmctl recover` puts it back (the next writing run "
                     "does it first by itself)")
        raise
    outcome = outcome_of(summary, ctx.warn)
    why = {"deadline": "not started: the deadline leaves too little time; the next run starts "
                       "with it (rerun to resume)",
           "breaker": f"not started: the circuit breaker opened (more than "
                      f"{options.breaker_floor_hits} listings would go to their floor)"}
    for target in summary.not_started:  # every listing asked for appears in the output
        for _, market in expected_probes(run.probed_before, [target], listed_in):
            row = ProbeResult(target.listing_id, market, get_market(market).currency,
                              outcome="not_started", floor=target.floor, ceiling=target.ceiling,
                              reason=why.get(summary.stopped_by or "", "not started"),
                              floor_source=target.source if target.floor is not None else None,
                              ceiling_source=target.source if target.ceiling is not None else None,
                              ).to_json()
            ctx.emit(row)
    return outcome


def least_recently_probed_first(last: dict[tuple[str, str], str],
                                targets: list[ProbeTarget]) -> list[ProbeTarget]:
    """Never probed first, then the longest ago, per (listing, market): successive runs cut
    short by ``--deadline`` take turns over the whole catalogue instead of probing its head
    again and again. The order is stable, so pairs probed at the same moment keep theirs. A
    target whose markets its probe will discover counts as its least recently probed market.
    ``last``: (listing, market) -> when it was last probed (``Journal.last_probed``)."""
    markets_of = _markets_probed(last)

    def key(target: ProbeTarget) -> str:
        listing = target.listing_id.lower()
        if not target.discover:
            return last.get((listing, target.market), "")
        known = markets_of.get(listing)
        return min((last[(listing, m)] for m in known), default="") if known else ""

    return sorted(targets, key=key)


def expected_probes(last: dict[tuple[str, str], str], targets: list[ProbeTarget],
                    listed_in: dict[str, set[str]]) -> list[tuple[str, str]]:
    """The (listing, market) probes a batch is expected to run, for its plan: a target whose
    markets its probe discovers counts once per market it was probed in before, else once per
    market whose pages showed it in their currency (at least once)."""
    markets_of = _markets_probed(last)
    expected: list[tuple[str, str]] = []
    for target in targets:
        listing = target.listing_id.lower()
        markets = {target.market}
        if target.discover:
            markets = markets_of.get(listing) or listed_in.get(listing) or markets
        expected.extend((listing, market) for market in sorted(markets))
    return expected


def _markets_probed(last: dict[tuple[str, str], str]) -> dict[str, set[str]]:
    markets: dict[str, set[str]] = {}
    for listing, market in last:
        markets.setdefault(listing, set()).add(market)
    return markets


def outcome_of(summary: BatchSummary, warn: Callable[[str], None]) -> ProbeOutcome:
    """The breaker stopped the run (exit 1), a deadline left probes unstarted (4), or the
    failed probes decide (4 when only rate limits failed them); each said on ``warn``."""
    if summary.stopped_by == "breaker":
        held = sum(1 for r in summary.results if r.outcome == "skipped" and "circuit breaker" in r.reason)
        warn(f"bmctl: circuit breaker: more than breaker_floor_hits listings would go to their "
             f"floor; {len(summary.not_started)} probe(s) not started, {held} held back from their "
             "floor. Check the floors (breaker_floor_hits in the config).")
        return ProbeOutcome(stopped=ExitCode.ITEMS_FAILED, summary=summary)
    if summary.stopped_by == "deadline":
        warn(f"bmctl: deadline: {len(summary.not_started)} probe(s) not started; rerun to resume")
        return ProbeOutcome(stopped=ExitCode.LIMITED, summary=summary)
    outcome = ProbeOutcome(failures=[r.exit_code for r in summary.results if r.outcome == "error"],
                           summary=summary)
    if outcome.exit_code == ExitCode.LIMITED:
        warn("bmctl: rate limits: probes still refused after every retry; rerun to resume")
    return outcome


def recover(ctx: CommandContext, *, dry_run: bool = False) -> Outcome:
    """Put every listing a killed run left in an open probe back at its original price and
    close the probe; one row per probe handled (none when nothing was open). ``dry_run``: one
    row per open probe, read from the local journal; nothing sent, no token needed."""
    from bmctl.api.money import money_text
    from bmctl.pricing.journal import Journal
    from bmctl.pricing.recovery import recover as put_back

    runtime = ctx.runtime
    journal = Journal(runtime.db, runtime.run_id, runtime.clock.wall)
    open_probes = journal.open_probes()
    if dry_run:
        if not open_probes:
            ctx.info("no open probes: nothing to recover")
        for probe in open_probes:
            ctx.emit({"probe_id": probe.id, "run_id": probe.run_id, "listing_id": probe.listing_id,
                      "market": probe.market, "currency": probe.currency,
                      "original_price": probe.original_price.to_api(),
                      "current_price": money_text(probe.current_price), "state": probe.state})
        return Outcome()
    done = put_back(runtime.client, journal) if open_probes else []
    if not done:
        ctx.info("no open probes: nothing to recover")
    for item in done:
        ctx.emit(item.to_json())
    return Outcome(failures=[1 for item in done if item.status == "error"])
