"""The progress line of batch commands."""

from __future__ import annotations

import io

from bmctl.cli.env import CliEnv
from bmctl.cli.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_total_grows_when_probes_find_more_markets_than_expected() -> None:
    """``probe --all`` over every market expects a row per market a listing was probed in
    before; a listing found in one more market adds a row: the bar never shows 5/4."""
    stderr = Terminal()
    bar = Progress(CliEnv(stderr=stderr), 2, "probing")
    for outcome in ("won", "kept", "won"):
        bar.advance(outcome)
    bar.close()
    assert bar.total == 3
    assert "3/3" in stderr.getvalue() and "3/2" not in stderr.getvalue()
