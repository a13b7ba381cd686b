"""Running the real CLI in-process with Typer's CliRunner."""

from __future__ import annotations

from typing import Any, Mapping

from typer.testing import CliRunner

from bmctl.cli.env import CliEnv
from bmctl.cli.main import app


def invoke(args: list[str], env: Mapping[str, str] | None = None, input: str | None = None, *,
           clock: Any = None, transport: Any = None):  # type: ignore[no-untyped-def]
    """Run ``bmctl ARGS``; the result has exit_code, stdout and stderr kept apart. ``clock`` and
    ``transport`` (a simulated world's) replace the system clock and real HTTP."""
    runner = CliRunner()
    obj = CliEnv(clock=clock, transport=transport) if clock is not None or transport is not None else None
    return runner.invoke(app, args, env=dict(env or {}), input=input, catch_exceptions=False, obj=obj)
