"""Live progress on stderr for batch commands (only on a terminal, never with --quiet)."""

from __future__ import annotations

from typing import Any

from bmctl.cli.env import CliEnv


class Progress:
    """A rich progress bar counting outcomes; a no-op when stderr is not a terminal."""

    def __init__(self, env: CliEnv, total: int, label: str) -> None:
        self.enabled = env.stderr_is_tty and not env.quiet and total > 0
        self.total = total
        self.counts: dict[str, int] = {}
        self._progress: Any = None
        self._task: Any = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            console = Console(file=env.stderr, no_color=not env.color)
            self._progress = RichProgress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeElapsedColumn(), TextColumn("{task.fields[counts]}"), console=console,
                transient=False,
            )
            self._task = self._progress.add_task(label, total=total, counts="")
            self._progress.start()

    def advance(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        # The total is an estimate when probes find more markets than expected: grow with it.
        self.total = max(self.total, sum(self.counts.values()))
        if self.enabled:
            summary = " ".join(f"{name} {count}" for name, count in sorted(self.counts.items()))
            self._progress.update(self._task, advance=1, total=self.total, counts=summary)

    def close(self) -> None:
        if self.enabled and self._progress is not None:
            self._progress.stop()
            self._progress = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
