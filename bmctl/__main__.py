"""Allow ``python -m bmctl``."""

from bmctl.cli.main import run

if __name__ == "__main__":
    run()
