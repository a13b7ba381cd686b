"""The budget ledger in the run's SQLite database: one budget for every bmctl process on the host.

Tables (migration ``0002_budget_ledger`` in :mod:`bmctl.store.db`):

- ``budget_holds`` — one row per slot or claim: ``bucket``, ``kind`` (``claim``; ``sent``: a
  request on the wire, its expiry provisional; ``slot``: answered, its expiry final),
  ``expires`` on the ledger clock, ``boot`` (which clock that is), ``expires_wall`` (the same
  moment in UTC, for another boot), ``taken_at``, and the holder's ``run_id`` and ``pid``.
- ``budget_pauses`` — the end of the running 429 pause per bucket.

**The clock.** Expiries are read on the host's monotonic clock (``Clock.monotonic``; on Linux
CLOCK_MONOTONIC, one clock for every process of a boot), which wall-clock steps never move: an
NTP step, a DST change or an operator's ``date -s`` changes nothing in the ledger. A reboot
restarts that clock; rows written in an earlier boot are carried over once, when a process of
the new boot opens the ledger, through their wall-clock expiry, clamped to at most the longest
hold so that a wall clock stepped back meanwhile cannot hold a slot for longer than that.

**Transactions.** Every admission decision is one ``BEGIN IMMEDIATE`` transaction: it applies
this process's deferred writes (settled slots, released claims, pauses), reads the buckets it
needs (a count and the few earliest expiries, from the ``(bucket, expires)`` index), and inserts
the slots it takes. Writes made outside an admission (a slot settled when its answer arrives, a
claim released) wait for the next one, or for :meth:`flush`, which the controller calls before
it idles: one transaction per request, not two.

**Waiting.** A settled slot's expiry is final, so a process waiting for one sleeps exactly until
it. Another process's request on the wire or claim may free its slot sooner (an early answer,
a released claim): those count as freeing within ``poll_interval`` (50 ms), so a waiting
controller looks again that soon, and only then.

**A process that dies** leaves its in-flight slots at their provisional expiry (sent +
``in_flight_bound`` + window), which is what the anchored rule asks, and its claims until their
``claim_ttl``; a process of the same boot that opens the ledger drops the claims of holders whose
pid is gone at once.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping

from bmctl.errors import BudgetUnavailable
from bmctl.store.runs import process_alive
from bmctl.traffic.admission import hold_span
from bmctl.traffic.buckets import CLAIM, SLOT, LimitSpec
from bmctl.traffic.clock import Clock
from bmctl.traffic.ledger import Ledger

#: Longest wait for another process's transaction before the run stops (exit 4, rerun resumes).
BUSY_TIMEOUT_S = 30.0
#: While waiting for slots, look again this often: another process may settle one early.
POLL_INTERVAL = 0.05
#: Sleep between two attempts to start an admission while another process holds the database.
RETRY_SLEEP_S = 0.001
#: SQLite's own busy wait for statements inside a transaction (a checkpoint, rarely).
IN_TRANSACTION_BUSY_S = 5.0
#: ``kind`` of a slot whose request is on the wire (its expiry is provisional until settled).
SENT = "sent"
#: Expired rows are deleted at most this often (a filter hides them meanwhile).
PRUNE_EVERY_S = 1.0

class _BucketState:
    """What one admission transaction has read of a bucket (invalidated by its own writes)."""

    __slots__ = ("held", "earliest", "paused")

    def __init__(self) -> None:
        self.held: int | None = None
        self.earliest: list[float] | None = None
        self.paused: float | None = None


class SqliteBucketStore:
    """One bucket's rows in ``budget_holds`` (see :class:`~bmctl.traffic.buckets.BucketStore`)."""

    __slots__ = ("ledger", "name")

    def __init__(self, ledger: "SqliteLedger", name: str) -> None:
        self.ledger = ledger
        self.name = name

    def held(self, now: float) -> int:
        state = self.ledger._state(self.name)
        if state is not None and state.held is not None:
            return state.held
        held = self.ledger._scalar(
            "select count(*) from budget_holds where bucket = ? and expires > ?", (self.name, now))
        if state is not None:
            state.held = held
        return held

    def earliest(self, k: int, now: float) -> list[float]:
        if k <= 0:
            return []
        state = self.ledger._state(self.name)
        if state is not None and state.earliest is not None and len(state.earliest) >= k:
            return state.earliest[:k]
        ledger = self.ledger
        if ledger.poll_interval is None:
            rows = ledger._rows(
                "select expires from budget_holds where bucket = ? and expires > ?"
                " order by expires limit ?", (self.name, now, max(k, 4)))
        else:  # another holder's unsettled slot or claim may free by the next look
            rows = ledger._rows(
                "select case when kind != 'slot' and (run_id is not ? or pid is not ?)"
                " then min(expires, ?) else expires end as free_at from budget_holds"
                " where bucket = ? and expires > ? order by free_at limit ?",
                (ledger.run_id, ledger.pid, now + ledger.poll_interval, self.name, now, max(k, 4)))
        earliest = [row[0] for row in rows]
        if state is not None:
            state.earliest = earliest
        return earliest[:k]

    def paused_until(self) -> float:
        state = self.ledger._state(self.name)
        if state is not None and state.paused is not None:
            return state.paused
        until = self.ledger._scalar("select until from budget_pauses where bucket = ?", (self.name,))
        paused = float("-inf") if until is None else float(until)
        if state is not None:
            state.paused = paused
        return paused

    def take(self, kind: str, expires: float, now: float) -> int:
        return self.ledger._insert(self.name, SENT if kind == SLOT else kind, expires, now)

    def convert(self, key: int, expires: float, now: float) -> bool:
        return self.ledger._convert(self.name, key, expires, now)

    def is_live(self, key: int, now: float) -> bool:
        return self.ledger._scalar(
            "select 1 from budget_holds where id = ? and kind = ? and expires > ?", (key, CLAIM, now)) is not None

    def settle(self, key: int, expires: float) -> None:
        self.ledger._write(self.name, "update budget_holds set kind = 'slot', expires = ?,"
                           " expires_wall = ? where id = ?", expires, key)

    def drop(self, key: int) -> None:
        self.ledger._write(self.name, "delete from budget_holds where id = ?", None, key)

    def pause(self, until: float) -> None:
        self.ledger._write(
            self.name,
            "insert into budget_pauses (bucket, until, until_wall, boot) values (?, ?, ?, ?)"
            " on conflict (bucket) do update set until = max(until, excluded.until),"
            " until_wall = max(until_wall, excluded.until_wall), boot = excluded.boot",
            until, self.name, boot=True)


class SqliteLedger(Ledger):
    """The ledger in ``budget_holds`` / ``budget_pauses`` of the bmctl database at ``path``
    (already migrated by :func:`bmctl.store.db.open_database`), on its own connection."""

    def __init__(self, path: str | Path, specs: Mapping[str, LimitSpec], clock: Clock, *,
                 run_id: str = "", pid: int | None = None, boot: str | None = None,
                 poll_interval: float | None = POLL_INTERVAL, busy_timeout: float = BUSY_TIMEOUT_S,
                 **kw: Any) -> None:
        self.path = str(path)
        self.clock = clock
        self.run_id = run_id
        self.pid = os.getpid() if pid is None else pid
        self.boot = boot if boot is not None else _boot_of(clock)
        self.poll_interval = poll_interval
        # No busy handler of SQLite's own for `begin immediate`: its sleeps grow to 100 ms, so a
        # process that just committed wins again and again while the others sleep (measured:
        # one of four contending processes waited 1.5 s). _begin retries every millisecond or
        # so instead; the statements inside a transaction keep a short handler for the rare
        # checkpoint.
        self.busy_timeout = busy_timeout
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=busy_timeout,
                                     check_same_thread=False)
        self.read_only = False
        try:
            self._conn.execute("pragma synchronous = NORMAL")
        except sqlite3.OperationalError as error:
            self._read_only_after(error)
        self._rng = random.Random()
        self._in_transaction = False
        self._states: dict[str, _BucketState] = {}
        # Deferred writes: (sql, expires or None, key-or-bucket, wall-needed)
        self._pending: list[tuple[str, float | None, Any, bool]] = []
        self._next_prune = float("-inf")
        super().__init__(specs, clock.monotonic, **kw)
        self._longest_hold = max(
            [self.in_flight_bound + hold_span(s.window) for s in self.specs.values()]
            + [self.claim_ttl, *(s.penalty for s in self.specs.values())])
        if not self.read_only:
            try:
                self._adopt_other_boots_and_dead_claims()
            except sqlite3.OperationalError as error:
                self._read_only_after(error)

    def _read_only_after(self, error: sqlite3.OperationalError) -> None:
        """A database this process cannot write (`bmctl logs stats` on a read-only file): reopen
        it read-only and read the holds by their wall-clock expiry instead of carrying them onto
        this boot's clock. Admitting through it would fail at the first write."""
        from bmctl.store.db import connect_read_only, is_read_only_error

        if not is_read_only_error(error):
            raise error
        self._conn.close()
        self._conn = connect_read_only(self.path, int(self.busy_timeout * 1000))
        self.read_only = True

    def _store_for(self, name: str) -> SqliteBucketStore:
        return SqliteBucketStore(self, name)

    def describe(self) -> str:
        return f"sqlite {self.path} (shared by every bmctl process using this database)"

    # -- transactions -------------------------------------------------------------------------
    def transaction(self) -> "_Transaction":
        return _Transaction(self)

    def _begin(self) -> None:
        conn = self._conn
        conn.execute("pragma busy_timeout = 0")
        give_up = time.monotonic() + self.busy_timeout
        try:
            while True:
                try:
                    conn.execute("begin immediate")
                    break
                except sqlite3.OperationalError as error:
                    if "locked" not in str(error) and "busy" not in str(error):
                        raise
                    if time.monotonic() >= give_up:
                        raise BudgetUnavailable(
                            f"budget ledger {self.path} unavailable: {error} (another process "
                            f"held the database for more than {self.busy_timeout:g} s)") from None
                    time.sleep(RETRY_SLEEP_S * (0.5 + self._rng.random()))
        finally:
            conn.execute(f"pragma busy_timeout = {int(IN_TRANSACTION_BUSY_S * 1000)}")
        self._in_transaction = True
        self._states.clear()
        now = self.now()
        if self._pending:
            self._apply_pending(now)
        if now >= self._next_prune:
            self._conn.execute("delete from budget_holds where expires <= ?", (now,))
            self._next_prune = now + PRUNE_EVERY_S

    def _end(self, commit: bool) -> None:
        self._in_transaction = False
        self._states.clear()
        self._conn.execute("commit" if commit else "rollback")

    def flush(self) -> None:
        if self._pending and not self._in_transaction:
            with self.transaction():
                pass

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._conn.close()

    # -- store primitives ---------------------------------------------------------------------
    def _state(self, name: str) -> _BucketState | None:
        if not self._in_transaction:
            return None
        state = self._states.get(name)
        if state is None:
            state = self._states[name] = _BucketState()
        return state

    def _scalar(self, sql: str, params: tuple[Any, ...]) -> Any:
        row = self._read(sql, params).fetchone()
        return None if row is None else row[0]

    def _rows(self, sql: str, params: tuple[Any, ...]) -> list[Any]:
        return self._read(sql, params).fetchall()

    def _read(self, sql: str, params: tuple[Any, ...]) -> sqlite3.Cursor:
        if self._pending and not self._in_transaction:
            self.flush()  # a read outside an admission sees this process's own writes
        return self._conn.execute(sql, params)

    def _wall_of(self, expires: float) -> float:
        return expires - self.clock.monotonic() + self.clock.wall()

    def _insert(self, bucket: str, kind: str, expires: float, now: float) -> int:
        self._states.pop(bucket, None)
        cursor = self._conn.execute(
            "insert into budget_holds (bucket, kind, expires, expires_wall, boot, taken_at, run_id, pid)"
            " values (?, ?, ?, ?, ?, ?, ?, ?)",
            (bucket, kind, expires, self._wall_of(expires), self.boot, now, self.run_id, self.pid))
        return int(cursor.lastrowid)  # type: ignore[arg-type]

    def _convert(self, bucket: str, key: int, expires: float, now: float) -> bool:
        self._states.pop(bucket, None)
        cursor = self._conn.execute(
            "update budget_holds set kind = ?, expires = ?, expires_wall = ?, taken_at = ?"
            " where id = ? and kind = ? and expires > ?",
            (SENT, expires, self._wall_of(expires), now, key, CLAIM, now))
        return cursor.rowcount == 1

    def _write(self, bucket: str, sql: str, expires: float | None, key: Any, *, boot: bool = False) -> None:
        """Run now inside an admission, else defer to the next one (or :meth:`flush`)."""
        entry = (sql, expires, key, boot)
        if self._in_transaction:
            self._states.pop(bucket, None)
            self._execute_write(entry)
        else:
            self._pending.append(entry)

    def _apply_pending(self, now: float) -> None:
        pending, self._pending = self._pending, []
        for entry in pending:
            self._execute_write(entry)

    def _execute_write(self, entry: tuple[str, float | None, Any, bool]) -> None:
        sql, expires, key, boot = entry
        if boot:  # a pause: (bucket, until, until_wall, boot)
            self._conn.execute(sql, (key, expires, self._wall_of(expires), self.boot))  # type: ignore[arg-type]
        elif expires is None:
            self._conn.execute(sql, (key,))
        else:
            self._conn.execute(sql, (expires, self._wall_of(expires), key))

    # -- housekeeping and inspection ------------------------------------------------------------
    def _adopt_other_boots_and_dead_claims(self) -> None:
        """Carry rows of an earlier boot onto this boot's clock; drop dead holders' claims."""
        now, wall = self.now(), self.clock.wall()
        with self.transaction():
            self._conn.execute(
                "update budget_holds set expires = ? + min(max(expires_wall - ?, 0), ?), boot = ?"
                " where boot != ?", (now, wall, self._longest_hold, self.boot, self.boot))
            self._conn.execute(
                "update budget_pauses set until = ? + min(max(until_wall - ?, 0), ?), boot = ?"
                " where boot != ?", (now, wall, self._longest_hold, self.boot, self.boot))
            rows = self._conn.execute(
                "select distinct pid from budget_holds where kind = ? and expires > ? and pid != ?",
                (CLAIM, now, self.pid)).fetchall()
            dead = [pid for (pid,) in rows if pid is not None and not process_alive(pid)]
            for pid in dead:
                self._conn.execute("delete from budget_holds where kind = ? and pid = ?", (CLAIM, pid))

    def holders(self) -> list[dict[str, Any]]:
        self.flush()
        # Read-only: the rows' own clock may be another boot's, so compare their UTC moments.
        column, now = ("expires_wall", self.clock.wall()) if self.read_only else ("expires", self.now())
        rows = self._conn.execute(
            f"select bucket, run_id, pid, sum(kind != 'claim'), sum(kind = 'claim'), max({column})"
            f" from budget_holds where {column} > ? group by bucket, run_id, pid"
            " order by bucket, run_id", (now,)).fetchall()
        return [{"bucket": b, "run_id": r or None, "pid": p, "slots": int(s), "claims": int(c),
                 "until_s": round(max(0.0, e - now), 3)} for b, r, p, s, c, e in rows]

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Transaction:
    """``with ledger.transaction():`` — BEGIN IMMEDIATE … COMMIT (ROLLBACK on an exception)."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: SqliteLedger) -> None:
        self.ledger = ledger

    def __enter__(self) -> SqliteLedger:
        self.ledger._begin()
        return self.ledger

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.ledger._end(commit=exc_type is None)


def _boot_of(clock: Clock) -> str:
    boot = getattr(clock, "boot_id", None)
    return boot() if callable(boot) else "unknown"
