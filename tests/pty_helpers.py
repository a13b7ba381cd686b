"""Running a command in a pseudo-terminal of a given size, and reading what a screen shows."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import subprocess
import termios
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass
class Screen:
    """What a command wrote to its terminal: ``raw`` bytes as text, and its exit code."""

    raw: str
    exit_code: int

    def lines(self) -> list[str]:
        """The lines a terminal shows: escape codes removed, each carriage return writing over
        the line from its first column, as a terminal does."""
        shown: list[str] = []
        for line in ANSI.sub("", self.raw).replace("\r\n", "\n").split("\n"):
            cells: list[str] = []
            for segment in line.split("\r"):
                cells[: len(segment)] = list(segment)
            shown.append("".join(cells).rstrip())
        while shown and not shown[-1]:
            shown.pop()
        return shown


def run_in_terminal(args: Sequence[str], *, columns: int, env: Mapping[str, str],
                    timeout: float = 60, rows: int = 50) -> Screen:
    """Run ``args`` with stdin, stdout and stderr on one pseudo-terminal ``columns`` wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    clean = {k: v for k, v in env.items() if k not in ("COLUMNS", "LINES")}
    process = subprocess.Popen(list(args), stdin=slave, stdout=slave, stderr=slave, env=clean,
                               close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the slave side closed: the process is gone
                    break
                if not data:
                    break
                chunks.append(data)
            elif process.poll() is not None:
                break
        else:
            process.kill()
            raise TimeoutError(f"{args} still running after {timeout} s")
    finally:
        os.close(master)
    return Screen(b"".join(chunks).decode("utf-8", "replace"), process.wait(timeout=10))
