"""Helper process for bench/carryover.py: the sandbox on a free loopback port with tight limits.

Prints ``READY <base_url> <id> <id> ...`` on stdout once serving, appends one line per request
that reached the marketplace to LOGFILE (``<monotonic> <wall> <status> <path>``), and stops
when stdin closes.

    python bench/_sandbox_server.py LOGFILE COMPETITORS_LIMIT COMPETITORS_WINDOW
"""

from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bmctl.sandbox.app import SandboxApp  # noqa: E402
from bmctl.sandbox.catalogue import generate_catalogue  # noqa: E402
from bmctl.sandbox.model import Marketplace  # noqa: E402
from bmctl.sandbox.server import start_in_thread  # noqa: E402


class LoggingApp:
    def __init__(self, app: SandboxApp, path: str) -> None:
        self.app = app
        self.file = open(path, "a", buffering=1)

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    def respond(self, request, decision):
        response = self.app.respond(request, decision)
        self.file.write(f"{time.monotonic():.6f} {time.time():.6f} {response.status} {request.path}\n")
        return response


def main() -> None:
    logfile, limit, window = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    specs = generate_catalogue(40, seed=5)
    marketplace = Marketplace(time.monotonic, rng=random.Random(5))
    marketplace.load(specs)
    limits = {"global": (200, 10.0), "competitors": (limit, window), "listing_writes": (2000, 3600.0)}
    app = LoggingApp(SandboxApp(marketplace, token="sandbox", limits=limits, rng=random.Random(5)), logfile)
    server, url = start_in_thread(app)  # type: ignore[arg-type]
    print("READY", url, *(s.id for s in specs), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


if __name__ == "__main__":
    main()
