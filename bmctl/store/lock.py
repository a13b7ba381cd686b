"""The exclusive run lock: ``fcntl.flock`` on ``<db>.lock``, held by every writing command.

flock locks belong to the open file, so the kernel releases them when the holder dies, even by
SIGKILL: a crashed run never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Callable

from bmctl.errors import LockHeld

POLL_INTERVAL = 0.02


class RunLock:
    """Context manager holding the run lock beside the database; ``LockHeld`` (exit 5) if taken.

    ``timeout`` seconds (0: one attempt, None: wait forever) are spent polling non-blocking
    attempts, so the wait uses the injected ``clock`` and ``sleep``."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        timeout: float | None = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db_path = str(db_path)
        self.path = Path(self.db_path + ".lock").expanduser()
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock, polling up to ``timeout``; raises ``LockHeld`` naming the holder's pid."""
        if self._fd is not None:
            raise RuntimeError(f"lock {self.path} is already held by this RunLock")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_CLOEXEC: a child process (the sandbox server, a pager) must not inherit and keep
        # the lock after we exit.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = None if self.timeout is None else self.clock() + max(0.0, self.timeout)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    remaining = None if deadline is None else deadline - self.clock()
                    if remaining is not None and remaining <= 0:
                        raise LockHeld(
                            f"another bmctl run holds the lock on {self.db_path}"
                            f" (pid {self._holder(fd)})",
                            detail=f"lock file: {self.path}; wait with --lock-timeout SECONDS",
                        ) from None
                    self.sleep(POLL_INTERVAL if remaining is None else min(POLL_INTERVAL, remaining))
            # Record who holds it, for the message the next run prints. The file is never
            # deleted: unlinking a flock file lets two processes lock two different inodes.
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    @staticmethod
    def _holder(fd: int) -> str:
        try:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        except OSError:
            text = ""
        return text if text.isdigit() else "unknown"

    def release(self) -> None:
        """Let go of the lock (no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass  # the pid is only informative; releasing is what matters
        finally:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()
