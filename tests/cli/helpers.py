"""Running the real CLI in-process with Typer's CliRunner."""

from __future__ import annotations

from typing import Mapping

from typer.testing import CliRunner

from bmctl.cli.main import app


def invoke(args: list[str], env: Mapping[str, str] | None = None, input: str | None = None):  # type: ignore[no-untyped-def]
    """Run ``bmctl ARGS``; the result has exit_code, stdout and stderr kept apart."""
    runner = CliRunner()
    return runner.invoke(app, args, env=dict(env or {}), input=input, catch_exceptions=False)
