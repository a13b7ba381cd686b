"""The exclusive run lock: ``fcntl.flock`` on ``<db>.lock``, held by every writing command.

flock locks belong to the open file, so the kernel releases them when the holder dies, even by
SIGKILL: a crashed run never leaves a stale lock behind. The file records who holds it: the pid
on the first line, then what the holder said of itself (``bmctl probe, started ...``)."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType
from typing import Callable

from bmctl.errors import LockHeld

POLL_INTERVAL = 0.02
_HOLDER_BYTES = 256  # what is read of the lock file: a pid and one line about the holder

Say = Callable[[str], None]


class RunLock:
    """Context manager holding the run lock beside the database; ``LockHeld`` (exit 5) if taken.

    ``timeout`` seconds (0: one attempt, None: wait forever) are spent polling non-blocking
    attempts, so the wait uses the injected ``clock`` and ``sleep``. A wait is said once on
    ``notice`` when it starts (who holds the lock, how long we wait); ``debug`` hears how it
    ended and when the holder changed. ``holder`` is what this process writes about itself."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        timeout: float | None = 0.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        *,
        holder: str = "",
        notice: Say | None = None,
        debug: Say | None = None,
    ) -> None:
        self.db_path = str(db_path)
        self.path = Path(self.db_path + ".lock").expanduser()
        self.timeout = timeout
        self.sleep = sleep
        self.clock = clock
        self.holder = " ".join(holder.split())  # one line
        self.notice = notice
        self.debug = debug
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
        started = self.clock()
        deadline = None if self.timeout is None else started + max(0.0, self.timeout)
        tries = 0
        seen: tuple[str, str] | None = None  # the holder last told of
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    tries += 1
                    pid, about = _read_holder(fd)
                    remaining = None if deadline is None else deadline - self.clock()
                    if remaining is not None and remaining <= 0:
                        if tries > 1:
                            self._say_debug(f"bmctl: gave up on the lock after "
                                            f"{self.clock() - started:.1f} s ({tries} attempts)")
                        raise LockHeld(
                            f"another bmctl run holds the lock on {self.db_path}"
                            f" (pid {pid}{': ' + about if about else ''})",
                            detail=f"lock file: {self.path}; wait with --lock-timeout SECONDS",
                        ) from None
                    if seen is None:
                        self._say_notice(self._waiting_text(describe_holder(pid, about)))
                    elif (pid, about) != seen:
                        self._say_debug(f"bmctl: the lock is now held by {describe_holder(pid, about)}")
                    seen = (pid, about)
                    self.sleep(POLL_INTERVAL if remaining is None else min(POLL_INTERVAL, remaining))
            if tries:
                self._say_debug(f"bmctl: got the lock after {self.clock() - started:.1f} s "
                                f"({tries + 1} attempts)")
            # Record who holds it, for the message the next run prints. The file is never
            # deleted: unlinking a flock file lets two processes lock two different inodes.
            os.ftruncate(fd, 0)
            about_me = f"{self.holder}\n" if self.holder else ""
            os.pwrite(fd, f"{os.getpid()}\n{about_me}".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _waiting_text(self, who: str) -> str:
        if self.timeout is None:
            return f"bmctl: waiting for the lock on {self.db_path} held by {who} (no time limit)"
        return (f"bmctl: waiting up to {_seconds(self.timeout)} for the lock on {self.db_path} "
                f"held by {who}")

    def _say_notice(self, text: str) -> None:
        if self.notice is not None:
            self.notice(text)

    def _say_debug(self, text: str) -> None:
        if self.debug is not None:
            self.debug(text)

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


def read_holder(db_path: str | os.PathLike[str]) -> tuple[str, str] | None:
    """Who holds (or last held) the lock of ``db_path`` as its file records it: ``(pid, what
    the holder said of itself)``, ``"unknown"``/``""`` where unreadable; None when no file."""
    try:
        fd = os.open(str(db_path) + ".lock", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return _read_holder(fd)
    finally:
        os.close(fd)


def _read_holder(fd: int) -> tuple[str, str]:
    try:
        text = os.pread(fd, _HOLDER_BYTES, 0).decode("utf-8", "replace")
    except OSError:
        text = ""
    first, _, rest = text.partition("\n")
    pid = first.strip()
    about = "".join(ch for ch in rest.partition("\n")[0] if ch.isprintable()).strip()
    return (pid if pid.isdigit() else "unknown"), about


def describe_holder(pid: str, about: str) -> str:
    """``pid 1234 (bmctl probe, started ...)``, or ``pid 1234`` alone."""
    return f"pid {pid} ({about})" if about else f"pid {pid}"


def _seconds(value: float) -> str:
    return f"{value:g} s"
