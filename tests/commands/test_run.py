"""The command layer's shared path: outcomes to exit codes, recovering first, the run record."""

from __future__ import annotations

from pathlib import Path

import pytest

from bmctl.commands.market import competitors
from bmctl.commands.run import CommandContext, Outcome, execute
from bmctl.errors import ExitCode
from bmctl.pricing.journal import Journal
from bmctl.sandbox.world import SimWorld
from tests.pricing.harness import listing, money


@pytest.mark.parametrize(("outcome", "code"), [
    (Outcome(), ExitCode.OK),
    (Outcome(failures=[1]), ExitCode.ITEMS_FAILED),
    (Outcome(failures=[4, 4]), ExitCode.LIMITED),  # only rate limits: rerunning resumes
    (Outcome(failures=[4, 1]), ExitCode.ITEMS_FAILED),
    (Outcome(stopped=ExitCode.LIMITED), ExitCode.LIMITED),  # a deadline
    (Outcome(failures=[1], stopped=ExitCode.LIMITED), ExitCode.LIMITED),
])
def test_an_outcome_says_its_exit_code(outcome: Outcome, code: ExitCode) -> None:
    assert outcome.exit_code == code


def test_execute_recovers_first_for_writing_commands_and_records_the_code(tmp_path: Path) -> None:
    spec = listing("100.00", ["95.00"])
    world = SimWorld([spec])
    with world.runtime(tmp_path / "b.db") as killed:  # a run that died with a dip open
        journal = Journal(killed.db, killed.run_id, killed.clock.wall)
        journal.open_probe(listing_id=spec.id, market="fr-fr", original_price=money("100.00"),
                           floor=money("50.00"), ceiling=money("200.00"))
        killed.client.update_listing(spec.id, market="fr-fr", price=money("94.99"))
    warnings: list[str] = []
    rows: list[dict] = []
    with world.runtime(tmp_path / "b.db", command="competitors") as runtime:
        context = CommandContext(runtime, emit=rows.append, warn=warnings.append)
        code = execute(context, lambda ctx: competitors(ctx, [spec.id]), recover=True)
        assert runtime.exit_code == code == ExitCode.OK
    assert world.price(spec.id, "fr-fr") == money("100.00")  # put back before the command ran
    assert any(spec.id in w and "recovered" in w for w in warnings)
    # Said once, before the restore's requests (which may wait on the limits).
    assert warnings[0].startswith(f"restoring 1 listing(s) left in open probes by run(s) {killed.run_id}")
    assert rows and rows[0]["price"] == "100.00"
