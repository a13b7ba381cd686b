"""The sandbox over real HTTP: a stdlib ThreadingHTTPServer on loopback around one SandboxApp.

The app and its marketplace are not thread-safe, so every call into them holds one lock; the
latency and timeout faults sleep here, outside the lock, so slow answers do not serialise.
"""

from __future__ import annotations

import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Callable
from urllib.parse import parse_qsl, urlsplit

from bmctl.sandbox.app import SandboxApp
from bmctl.sandbox.faults import Faults
from bmctl.traffic.transport import HttpRequest

if TYPE_CHECKING:
    from bmctl.sandbox.model import Drift


class SandboxServer(ThreadingHTTPServer):
    """A threading HTTP server that serves one SandboxApp; ``stop()`` ends it cleanly."""

    daemon_threads = True
    block_on_close = False  # a request hanging on a timeout fault must not delay the stop
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: SandboxApp) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._serving = False
        super().__init__(address, _Handler)

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self._serving = True
        super().serve_forever(poll_interval)

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port!s}"

    def stop(self) -> None:
        """Stop serving, wake hanging requests and close the socket."""
        self.stopping.set()
        if self._serving:  # shutdown() waits for serve_forever and would hang without one
            self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections as with the real API
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every answer, capping one-at-a-time clients at ~14/s.
    disable_nagle_algorithm = True
    server: SandboxServer

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else None
        parts = urlsplit(self.path)
        host = self.headers.get("Host") or "%s:%s" % tuple(map(str, self.server.server_address[:2]))
        request = HttpRequest(
            method=self.command, path=parts.path,
            query=tuple(parse_qsl(parts.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()}, body=body,
            base_url=f"http://{host}",
        )
        app = self.server.app
        with self.server.lock:
            decision = app.decide(request)
        time.sleep(decision.latency / 2)
        if decision.fault in ("timeout", "drop"):
            if decision.fault == "timeout":
                self.server.stopping.wait(app.faults.hang if app.faults else 0)
            self._drop()
            return
        with self.server.lock:
            response = app.respond(request, decision)
        time.sleep(decision.latency / 2)
        self.send_response_only(response.status)
        self.send_header("Date", self.date_time_string())
        headers = dict(response.headers)
        headers.setdefault("server", "bmctl-sandbox")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        self.wfile.write(response.body)

    def _drop(self) -> None:
        """Close the connection without a byte of answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: the client's own request log is the record


def make_server(app: SandboxApp, port: int = 0, host: str = "127.0.0.1") -> SandboxServer:
    """Bind (port 0: any free port) without serving yet."""
    return SandboxServer((host, port), app)


def start_in_thread(app: SandboxApp, port: int = 0, host: str = "127.0.0.1") -> tuple[SandboxServer, str]:
    """Serve in a daemon thread; returns the server (``stop()`` it) and its base URL."""
    server = make_server(app, port, host)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              name="bmctl-sandbox", daemon=True)
    thread.start()
    return server, server.base_url


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _stop_on_sigterm() -> None:
    """Treat SIGTERM (service managers, ``kill``) like Ctrl-C: stop cleanly, exit 0."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def serve(port: int = 8765, seed_path: str | None = None, settle: float = 2.0, reveal: bool = True,
          token: str = "sandbox", faults: Faults | None = None, host: str = "127.0.0.1",
          announce: Callable[[str], None] = _stderr, *, seed: int = 7,
          limits: bool = True, drift: "Drift | None" = None) -> None:
    """Run the sandbox in the foreground until Ctrl-C (then return normally).

    Raises UsageError for a bad catalogue file or a port that cannot be bound."""
    from bmctl.errors import UsageError
    from bmctl.sandbox.catalogue import CatalogueError, demo_catalogue, load_catalogue
    from bmctl.sandbox.limits import DEFAULT_LIMITS
    from bmctl.sandbox.model import Marketplace

    try:
        specs = load_catalogue(seed_path) if seed_path else demo_catalogue(seed)
    except CatalogueError as error:
        raise UsageError(str(error)) from None
    marketplace = Marketplace(time.monotonic, settle=settle, reveal=reveal, drift=drift,
                              rng=random.Random(seed))
    try:
        marketplace.load(specs)
    except ValueError as error:
        raise UsageError(f"catalogue {seed_path}: {error}") from None
    app = SandboxApp(marketplace, token=token, faults=faults,
                     limits=DEFAULT_LIMITS if limits else None, rng=random.Random(seed))
    try:
        server = make_server(app, port, host)
    except OSError as error:
        raise UsageError(f"cannot listen on {host}:{port}: {error.strerror or error}") from None
    _stop_on_sigterm()
    try:
        source = seed_path or f"demo catalogue (seed {seed})"
        auth = "Basic sandbox" if token == "sandbox" else "Basic <the --token value>"
        announce(f"sandbox marketplace listening on {server.base_url} ({len(marketplace)} listings from "
                 f"{source}; settle {settle:g} s; reveal {'on' if reveal else 'off'}; "
                 f"{'drift every %g s; ' % drift.interval if drift else ''}"
                 f"Authorization: {auth}). Ctrl-C stops it.")
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        announce("sandbox stopped")
    finally:
        server.stopping.set()
        server.server_close()
