"""The console script: ``bmctl --version`` answers before Typer is even imported (cron runs
hundreds of bmctl a day); everything else goes to the Typer application."""

import sys


def run() -> None:
    """Entry point of the ``bmctl`` console script and of ``python -m bmctl``."""
    if sys.argv[1:] == ["--version"]:
        from bmctl import __version__

        sys.stdout.write(f"bmctl {__version__}\n")
        return
    from bmctl.cli.main import run as run_app

    run_app()
