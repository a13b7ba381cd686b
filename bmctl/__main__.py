"""Allow ``python -m bmctl``."""

from bmctl.cli.entry import run

if __name__ == "__main__":
    run()
