"""A probe run: automatic recovery, the plan, the batch, the breaker, and restoring on signals."""

from __future__ import annotations

import math
import signal
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from bmctl.api.money import Money
from bmctl.errors import BmctlError, Interrupted, RunStopped
from bmctl.pricing.batch import Batch, BatchSummary
from bmctl.pricing.cooldown import CooldownRules, PricingMemory
from bmctl.pricing.guardrails import Bounds
from bmctl.pricing.journal import Journal
from bmctl.pricing.own import OwnOffers
from bmctl.pricing.plan import Plan, ProbeCost, plan_probes, probe_cost
from bmctl.pricing.probe import Probe
from bmctl.pricing.probe_types import ProbeParams, ProbeResult, ProbeTarget
from bmctl.pricing.recovery import Recovery, recover, restore_seconds, restored_text
from bmctl.traffic.waits import duration_text


class Breaker:
    """Counts listings a run would set to their floor; opens past ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.hits = 0
        self.tripped = False

    def hit(self) -> bool:
        """Record one floor hit; False once the breaker is open (that write must not happen)."""
        if self.tripped:
            return False
        self.hits += 1
        if self.hits > self.limit:
            self.tripped = True
            return False
        return True


class JournalHooks:
    """The probe's side effects: journal, price history, breaker and the controller's clock."""

    def __init__(self, journal: Journal, controller: Any, breaker: Breaker,
                 memory: PricingMemory | None = None, own: OwnOffers | None = None) -> None:
        self.journal = journal
        self.controller = controller
        self.breaker = breaker
        self.memory = memory
        self.own = own
        self.revealed = False

    def now(self) -> float:
        return float(self.controller.now())

    def open_probe(self, target: ProbeTarget, original: Money, bounds: Bounds) -> int:
        return self.journal.open_probe(listing_id=target.listing_id, market=target.market,
                                       original_price=original, floor=bounds.floor,
                                       ceiling=bounds.ceiling)

    def step(self, probe_id: int, **fields: Any) -> None:
        self.journal.update(probe_id, **fields)

    def change(self, probe_id: int | None, target: ProbeTarget, old: Money | None, new: Money,
               reason: str, snapshot: Any, request_id: str | None, status: str) -> None:
        self.journal.record_change(listing_id=target.listing_id, market=target.market,
                                   old_price=old, new_price=new, reason=reason, status=status,
                                   probe_id=probe_id, snapshot=snapshot, request_id=request_id)

    def floor_hit(self, target: ProbeTarget) -> bool:
        return self.breaker.hit()

    def headroom_revealed(self) -> bool:
        return self.revealed

    def saw_revealed_headroom(self) -> None:
        self.revealed = True

    def hold(self, target: ProbeTarget) -> str | None:
        if self.memory is None:
            return None
        held = self.memory.hold(target.listing_id, target.market, self.journal.wall())
        return held.text() if held is not None else None

    def raise_back_wait(self, target: ProbeTarget) -> str | None:
        if self.memory is None:
            return None
        return self.memory.raise_back_wait(target.listing_id, target.market, self.journal.wall())


def probe_time_estimate(controller: Any, cost: ProbeCost, settle: float) -> Callable[[int], float]:
    """Seconds until one more probe started now would finish, with ``in_flight`` probes ahead of
    it: two settles, plus the time the ledger needs to let its writes and reads through after
    theirs, from what every process holds now (claims for open dips and a 429 pause included):
    a batch right after a run that spent the hourly budget starts nothing it cannot finish."""
    buckets = getattr(controller, "buckets", {})

    def bucket_wait(name: str, per: float, in_flight: int) -> float | None:
        bucket = buckets.get(name)
        if bucket is None:
            return None
        return float(bucket.time_to_send(math.ceil((in_flight + 1) * per)))

    def estimate(in_flight: int) -> float:
        # A dip is sent only with its exit claimed: one more write slot per probe.
        waits = [bucket_wait("listing_writes", cost.writes + 1, in_flight),
                 bucket_wait("competitors", cost.competitor_reads, in_flight)]
        known = [w for w in waits if w is not None]
        return 2 * settle + (max(known) if known else 0.0)

    return estimate


@dataclass
class ProbeRunOptions:
    """Options of one probe run."""

    params: ProbeParams
    deadline: float | None = None  # seconds from the start of the batch
    max_in_flight: int = 16
    breaker_floor_hits: int = 5
    cooldown: CooldownRules | None = None  # [pricing] cooldown and raise back (None: the settings')


@contextmanager
def stop_signals_as_interrupt() -> Iterator[None]:
    """Deliver SIGTERM (a service manager, `kill`) and SIGHUP (an SSH session dropping) like
    Ctrl-C, so that open probes are restored before exiting."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    installed: dict[int, Any] = {}
    try:
        for name in ("SIGTERM", "SIGHUP"):
            number = getattr(signal, name, None)  # no SIGHUP on Windows
            # Under `nohup` SIGHUP is ignored on purpose: the run must outlive the terminal.
            if number is not None and signal.getsignal(number) is not signal.SIG_IGN:
                installed[number] = signal.signal(number, handler)
    except ValueError:  # not the main thread (some test runners): nothing to install
        pass
    try:
        yield
    finally:
        for number, previous in installed.items():
            signal.signal(number, previous)


class ProbeRun:
    """One run of probes over a runtime (controller, client, database, run id)."""

    def __init__(self, runtime: Any, options: ProbeRunOptions,
                 on_result: Callable[[ProbeResult], None] | None = None) -> None:
        self.runtime = runtime
        self.options = options
        self.on_result = on_result
        self.journal = Journal(runtime.db, runtime.run_id, runtime.clock.wall)
        self.breaker = Breaker(options.breaker_floor_hits)
        self.own = OwnOffers()  # our listings' products and prices: never dip against ourselves
        self._memory: PricingMemory | None = None
        self._probed_before: dict[tuple[str, str], str] | None = None

    @property
    def memory(self) -> PricingMemory:
        """Price-war rounds and last changes from the database, read once."""
        if self._memory is None:
            rules = self.options.cooldown
            if rules is None:
                rules = CooldownRules.from_settings(self.runtime.settings.pricing)
            self._memory = PricingMemory.load(self.runtime.db, rules, self.runtime.clock.wall())
        return self._memory

    @property
    def probed_before(self) -> dict[tuple[str, str], str]:
        """(listing, market) -> when it was last probed, as the journal said before this run's
        probes (read once: the plan, the order and the rows of probes not started share it)."""
        if self._probed_before is None:
            self._probed_before = self.journal.last_probed()
        return self._probed_before

    def held(self, listing_id: str, market: str) -> bool:
        """Whether the price-war cooldown holds this (listing, market) now."""
        return self.memory.hold(listing_id, market, self.runtime.clock.wall()) is not None

    def expand_held(self, targets: Sequence[ProbeTarget]) -> list[ProbeTarget]:
        """A listing whose markets must be discovered, and whose every market probed before is
        held, becomes one target per such market: each is ``held`` without a request."""
        known: dict[str, list[str]] = {}
        for listing, market in self.probed_before:
            known.setdefault(listing, []).append(market)
        out: list[ProbeTarget] = []
        for target in targets:
            markets = sorted(m for m in known.get(target.listing_id.lower(), ()) if m in target.discover)
            if target.discover and markets and all(self.held(target.listing_id, m) for m in markets):
                out.extend(ProbeTarget(target.listing_id, m, target.floor, target.ceiling) for m in markets)
            else:
                out.append(target)
        return out

    def recover_first(self) -> list[Recovery]:
        """Restore what earlier (killed) runs left open; every writing run starts with this."""
        return recover(self.runtime.client, self.journal)

    def plan(self, probes: int, listing_pages: int = 0, markets: int = 1) -> Plan:
        """The plan of ``probes`` probes (over ``markets`` markets, after ``listing_pages``)."""
        settings = self.runtime.settings
        params = self.options.params
        return plan_probes(probes, settings.limits, settle=params.settle,
                           max_raises=params.max_raises, peek_retries=params.peek_retries,
                           deadline=self.options.deadline, listing_pages=listing_pages,
                           buckets=self.runtime.ledger.buckets, markets=markets,
                           dry_run=params.dry_run)

    def run(self, targets: Sequence[ProbeTarget]) -> BatchSummary:
        """Probe the targets; on Ctrl-C or SIGTERM restore this run's open probes, then raise
        Interrupted (exit 130)."""
        from bmctl.api.errors import error_from_transport

        controller = self.runtime.controller
        client = self.runtime.client
        memory = self.memory
        hooks = JournalHooks(self.journal, controller, self.breaker, memory, self.own)
        params = self.options.params
        cost = probe_cost(params.max_raises, params.peek_retries, params.dry_run)
        estimate = probe_time_estimate(controller, cost, params.settle)
        deadline = controller.now() + self.options.deadline if self.options.deadline is not None else None

        def make_probe(target: ProbeTarget) -> Probe:
            return Probe(target, client, hooks, params, error_from_transport)

        def finished(result: ProbeResult, probe: Probe) -> None:
            if not params.dry_run:
                hold = memory.record(result.to_json(), self.journal.wall())
                if hold is not None:
                    result.reason += f"; price war: {hold.text()}"
            if result.outcome == "held":
                pass  # not a probe: nothing was read or written, nothing to keep
            elif probe.probe_id is not None and not probe.keep_open:
                self.journal.close(probe.probe_id, result.to_json())
            elif probe.probe_id is None and not params.dry_run:
                self.journal.record_result(result.to_json())
            if self.on_result is not None:
                self.on_result(result)

        batch = Batch(
            controller, make_probe, on_result=finished, max_in_flight=self.options.max_in_flight,
            deadline=deadline,
            estimate_seconds=estimate,
            breaker_open=lambda: self.breaker.tripped,
        )
        try:
            with stop_signals_as_interrupt():
                return batch.run(self.expand_held(targets))
        except KeyboardInterrupt:
            self.restore_open_probes(batch, why="interrupted")
            raise Interrupted("interrupted: open probes were restored") from None
        except BrokenPipeError:
            # The reader of our output went away (`| head -1`): nobody wants the rest, and no
            # listing may stay dipped because of it. Stop like SIGTERM.
            self.restore_open_probes(batch, why="output closed")
            raise Interrupted("output closed (broken pipe): open probes were restored") from None
        except RunStopped:
            # One refused request (a 401, the WAF) or a host that refuses connections ends the
            # run; the other probes in flight must not stay dipped until the next run. If
            # authentication is really gone, or the host is down, the restore fails the same way
            # and the journal keeps them for recovery.
            try:
                self.restore_open_probes(batch, why="run stopped")
            except RunStopped:
                pass
            raise

    def restore_open_probes(self, batch: Batch | None = None, why: str = "") -> list[Recovery]:
        """Abandon queued work and put this run's open probes back — after Ctrl-C, SIGTERM, an
        authentication failure or an unreachable host (a second Ctrl-C is ignored while this runs: an interrupted
        restore would leave the work to the next run). With ``why``, the runtime's ``warn``
        hears what is restored and about how long it takes (the operator waits for it), then
        how it went."""
        previous = signal.getsignal(signal.SIGINT)
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:
            previous = None
        warn = getattr(self.runtime, "warn", None) if why else None
        try:
            controller = self.runtime.controller
            controller.cancel_all()
            count = 0
            if warn is not None:
                run_id = self.runtime.run_id
                count = sum(1 for p in self.journal.open_probes() if p.run_id == run_id)
            if warn is not None and count:
                seconds = restore_seconds(controller.buckets, count)
                warn(f"bmctl: {why}: restoring {count} listing(s) to their original price "
                     f"(about {duration_text(seconds)} at the limits)...")
            # A write still on the wire could land after the read that decides the restore.
            controller.drain(limit=controller.now() + self.runtime.settings.timeout)
            for probe in batch.running if batch is not None else ():
                probe.abandoned_write()  # every price bmctl changed is in history
            try:
                done = recover(self.runtime.client, self.journal, run_id=self.runtime.run_id)
            except BmctlError as error:
                if warn is not None and count:
                    warn(f"bmctl: restoring stopped ({error.message}): the listings stay open "
                         "for `bmctl recover`")
                raise
            if warn is not None and count:
                warn(f"bmctl: {restored_text(done)}")
            return done
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
