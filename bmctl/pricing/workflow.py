"""The probe command's flow: validate input, recover, enumerate, plan, run, decide the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Callable, TextIO

from bmctl.errors import ExitCode, UsageError, items_exit_code
from bmctl.pricing.batch import BatchSummary
from bmctl.pricing.probe import ProbeParams, ProbeResult, ProbeTarget
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
        if self.file is not None:
            targets = probe_targets_from_file(self.file, self.market, stdin)
        else:
            # Validates --floor/--ceiling even for --all, whose ids come later.
            targets = probe_targets_from_ids(self.ids, self.market, self.floor, self.ceiling, stdin)
        if not targets and not self.all_listings:
            raise UsageError("no listing ids to probe")
        return targets


def probe_params(settings: Any, *, settle: float | None = None, max_raises: int | None = None,
                 step: str | None = None, dry_run: bool = False) -> ProbeParams:
    """Probe parameters: the ``[probe]`` settings, overridden by options."""
    probe = settings.probe
    # Every [probe] setting the probe itself uses, by name (the breaker is the run's, not its).
    shared = {f.name: getattr(probe, f.name) for f in fields(ProbeParams) if hasattr(probe, f.name)}
    options = {"settle": settle, "max_raises": max_raises, "step": step}
    shared.update({name: value for name, value in options.items() if value is not None})
    return ProbeParams(**shared, dry_run=dry_run)


@dataclass
class ProbeReport:
    """The end of a probe command: the batch summary and the exit code it means."""

    summary: BatchSummary
    exit_code: int


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


def run_probe_command(
    runtime: Any,
    request: ProbeRequest,
    targets: list[ProbeTarget],
    options: ProbeRunOptions,
    *,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[ProbeResult], None] | None = None,
    info: Callable[[str], None] = lambda text: None,
    warn: Callable[[str], None] = lambda text: None,
) -> ProbeReport:
    """Recover (writing runs), enumerate ``--all``, print the plan, run the batch."""
    from bmctl.pricing.targets import parse_bounds

    check_step(options.params, targets or [ProbeTarget("", request.market)])
    run = ProbeRun(runtime, options, on_result=on_result)
    client = runtime.client  # a missing token fails here, before anything is sent
    if not options.params.dry_run:
        for done in run.recover_first():
            warn(f"recovered {done.probe.listing_id} ({done.probe.market}) left open by run "
                 f"{done.probe.run_id}: {done.reason}")
    pages = 0
    if request.all_listings:
        listings = list(client.iter_listings(min_quantity=1, market=request.market))
        pages = max(1, -(-len(listings) // 50))
        floor, ceiling = parse_bounds(request.market, request.floor, request.ceiling)
        targets = [ProbeTarget(listing.id, request.market, floor, ceiling) for listing in listings]
    plan = run.plan(len(targets))
    info(plan.describe() + (f" (after {pages} listing page(s))" if pages else ""))
    if on_start is not None:
        on_start(len(targets))
    summary = run.run(targets)
    return ProbeReport(summary, exit_code_of(summary, warn))


def exit_code_of(summary: BatchSummary, warn: Callable[[str], None]) -> int:
    """4 when a deadline left probes unstarted or only rate limits failed them, 1 for the
    breaker or failed items, else 0."""
    if summary.stopped_by == "breaker":
        held = sum(1 for r in summary.results if r.outcome == "skipped" and "circuit breaker" in r.reason)
        warn(f"bmctl: circuit breaker: more than the allowed number of listings would go to their "
             f"floor; {len(summary.not_started)} probe(s) not started, {held} held back from their "
             "floor. Check the floors (breaker_floor_hits in the config).")
        return ExitCode.ITEMS_FAILED
    if summary.stopped_by == "deadline":
        warn(f"bmctl: deadline: {len(summary.not_started)} probe(s) not started; rerun to resume")
        return ExitCode.LIMITED
    code = items_exit_code([r.exit_code for r in summary.results if r.outcome == "error"])
    if code == ExitCode.LIMITED:
        warn("bmctl: rate limits: probes still refused after every retry; rerun to resume")
    return code
