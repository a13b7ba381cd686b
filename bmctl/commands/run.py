"""What every command shares: its context, its outcome, recovering first, the exit code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, TextIO

from bmctl.errors import ExitCode, items_exit_code


def _quiet(_: str) -> None:
    return None


@dataclass
class CommandContext:
    """What a core function may use: the runtime (settings, client, controller, database), a
    sink for its result rows, and channels for messages; ``progress(total)`` returns the
    function to call as each item finishes (a live line on a terminal, nothing elsewhere)."""

    runtime: Any
    emit: Callable[[Mapping[str, Any]], None] = lambda row: None
    info: Callable[[str], None] = _quiet
    warn: Callable[[str], None] = _quiet
    stdin: TextIO | None = None
    progress: Callable[[int], Callable[[str], None]] = lambda total: _quiet
    table: Callable[[Sequence[Mapping[str, Any]], list[str], str], None] = lambda rows, columns, title: None

    @property
    def settings(self) -> Any:
        return self.runtime.settings


@dataclass
class Outcome:
    """How a command ended: the exit codes of its failed items, and ``stopped`` when the run
    ended early on purpose (a deadline: 4; the circuit breaker: 1)."""

    failures: list[int] = field(default_factory=list)
    stopped: ExitCode | None = None

    @property
    def exit_code(self) -> ExitCode:
        return self.stopped if self.stopped is not None else items_exit_code(self.failures)


Core = Callable[[CommandContext], Outcome]


def recover_first(ctx: CommandContext) -> list[Any]:
    """Put back what earlier (killed) runs left in open probes: every writing run starts so."""
    from bmctl.pricing.journal import Journal
    from bmctl.pricing.recovery import recover

    runtime = ctx.runtime
    journal = Journal(runtime.db, runtime.run_id, runtime.clock.wall)
    left_open = journal.open_probes()
    if not left_open:
        return []
    runs = sorted({probe.run_id for probe in left_open})
    # Said before the reads and writes it takes, which may wait on the limits.
    ctx.warn(f"restoring {len(left_open)} listing(s) left in open probes by run(s) "
             f"{', '.join(runs)} before anything else...")
    done = recover(runtime.client, journal)
    for item in done:
        ctx.warn(f"recovered {item.probe.listing_id} ({item.probe.market}) left open by run "
                 f"{item.probe.run_id}: {item.reason}")
    return done


def execute(ctx: CommandContext, core: Core, *, recover: bool) -> ExitCode:
    """Run one command's core — after recovering, for commands that write prices — and map its
    outcome to the process's exit code (also what its run record keeps)."""
    if recover:
        recover_first(ctx)
    code = core(ctx).exit_code
    ctx.runtime.exit_code = int(code)
    return code
