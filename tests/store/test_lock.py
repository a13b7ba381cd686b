from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bmctl.errors import ExitCode, LockHeld
from bmctl.store.lock import RunLock, read_holder


class FakeTime:
    """Injected clock and sleep: waiting costs no real time and is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_lock_file_beside_database_and_folder_created(tmp_path: Path) -> None:
    db_path = tmp_path / "nested" / "bmctl.db"
    with RunLock(db_path) as lock:
        assert lock.held
        assert (tmp_path / "nested" / "bmctl.db.lock").read_text().strip() == str(os.getpid())
    assert not lock.held


def test_second_holder_gets_lock_held_with_pid(tmp_path: Path) -> None:
    db_path = str(tmp_path / "bmctl.db")
    with RunLock(db_path), pytest.raises(LockHeld) as info:
        RunLock(db_path).acquire()  # another open file: flock conflicts even in-process
    message = str(info.value)
    assert message == f"another bmctl run holds the lock on {db_path} (pid {os.getpid()})"
    assert info.value.exit_code == ExitCode.LOCKED == 5


def test_release_lets_the_next_run_in(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    first = RunLock(db_path)
    first.acquire()
    first.release()
    first.release()  # idempotent
    with RunLock(db_path):
        pass


def test_timeout_polls_then_fails(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    fake = FakeTime()
    with RunLock(db_path):
        waiting = RunLock(db_path, timeout=1.0, sleep=fake.sleep, clock=fake.clock)
        with pytest.raises(LockHeld):
            waiting.acquire()
    assert fake.now == pytest.approx(1.0)
    assert len(fake.sleeps) > 1 and max(fake.sleeps) <= 0.05
    assert not waiting.held


def test_timeout_succeeds_when_released_while_waiting(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    holder = RunLock(db_path)
    holder.acquire()
    fake = FakeTime()

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.sleeps) == 3:
            holder.release()

    with RunLock(db_path, timeout=10.0, sleep=sleep, clock=fake.clock) as waiting:
        assert waiting.held
    assert len(fake.sleeps) == 3


def test_zero_timeout_never_sleeps(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    fake = FakeTime()
    with RunLock(db_path), pytest.raises(LockHeld):
        RunLock(db_path, timeout=0, sleep=fake.sleep, clock=fake.clock).acquire()
    assert fake.sleeps == []


HOLDER = textwrap.dedent("""
    import sys, time
    from bmctl.store.lock import RunLock
    lock = RunLock(sys.argv[1])
    lock.acquire()
    print("held", flush=True)
    time.sleep(60)
""")

TRY = textwrap.dedent("""
    import sys
    from bmctl.errors import LockHeld
    from bmctl.store.lock import RunLock
    try:
        with RunLock(sys.argv[1]):
            print("acquired")
    except LockHeld as error:
        print(error)
        sys.exit(int(error.exit_code))
""")


def _holder(db_path: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db_path)], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_other_process_holds_then_sigkill_releases(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    proc = _holder(db_path)
    try:
        with pytest.raises(LockHeld) as info:
            RunLock(db_path).acquire()
        assert f"(pid {proc.pid})" in str(info.value)
        blocked = subprocess.run([sys.executable, "-c", TRY, str(db_path)], capture_output=True,
                                 text=True)
        assert blocked.returncode == 5
        assert f"pid {proc.pid}" in blocked.stdout
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # the kernel dropped the flock with the process: no stale lock
    with RunLock(db_path) as lock:
        assert lock.held


# -- saying that we wait ----------------------------------------------------------------------
ABOUT = "bmctl probe, started 2026-11-30 01:02:03 UTC"


def test_the_lock_file_records_the_pid_then_what_the_holder_is(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    with RunLock(db_path, holder=ABOUT):
        lines = (tmp_path / "bmctl.db.lock").read_text().splitlines()
        assert lines == [str(os.getpid()), ABOUT]
        assert read_holder(db_path) == (str(os.getpid()), ABOUT)
    assert read_holder(tmp_path / "other.db") is None


def test_a_lock_wait_is_said_once_with_the_holder_and_the_timeout(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    fake = FakeTime()
    notices: list[str] = []
    debug: list[str] = []
    with RunLock(db_path, holder=ABOUT):  # another open file: flock conflicts even in-process
        waiting = RunLock(db_path, timeout=30.0, sleep=fake.sleep, clock=fake.clock,
                          notice=notices.append, debug=debug.append)
        with pytest.raises(LockHeld) as info:
            waiting.acquire()
    assert len(fake.sleeps) > 100  # it polled all along: still one line
    (notice,) = notices
    assert "waiting up to 30 s for the lock" in notice
    assert f"held by pid {os.getpid()} ({ABOUT})" in notice
    assert str(info.value).endswith(f"(pid {os.getpid()}: {ABOUT})")
    (line,) = debug
    assert line.startswith("bmctl: gave up on the lock after 30.0 s")


def test_a_lock_released_while_waiting_tells_how_long_under_verbose(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    holder = RunLock(db_path)
    holder.acquire()
    fake = FakeTime()
    notices: list[str] = []
    debug: list[str] = []

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if len(fake.sleeps) == 50:
            holder.release()

    with RunLock(db_path, timeout=None, sleep=sleep, clock=fake.clock, notice=notices.append,
                 debug=debug.append):
        pass
    (notice,) = notices
    assert "no time limit" in notice and f"pid {os.getpid()}" in notice
    assert debug == ["bmctl: got the lock after 1.0 s (51 attempts)"]


def test_no_wait_no_notice(tmp_path: Path) -> None:
    db_path = tmp_path / "bmctl.db"
    notices: list[str] = []
    with RunLock(db_path, timeout=30.0, notice=notices.append):
        pass
    with RunLock(db_path), pytest.raises(LockHeld):  # --lock-timeout 0: refused at once
        RunLock(db_path, timeout=0, notice=notices.append).acquire()
    assert notices == []

