"""The request log's writer: one row per attempt into ``rate_limit_logs``, in batches, so that
logging never slows the traffic it records."""

from __future__ import annotations

import sqlite3
import time
from types import TracebackType
from typing import Any, Callable

from bmctl.store.db import utc_iso

LOG_FIELDS = (
    "run_id", "ts", "method", "route", "path", "listing_id", "market", "buckets", "priority",
    "attempt", "status", "outcome", "queue_wait_ms", "latency_ms", "retry_after", "error",
)
_INSERT = (
    f"insert into rate_limit_logs ({', '.join(LOG_FIELDS)})"
    f" values ({', '.join('?' for _ in LOG_FIELDS)})"
)


class LogWriter:
    """Buffers one row per attempt and writes them in batches: one transaction per flush.

    Flushes when ``flush_rows`` rows are waiting, when the oldest waiting row is ``flush_seconds``
    old (checked on ``record``: there is no background thread), on ``flush()`` and on ``close()``.
    A crash loses at most the rows still in the buffer. A database that stays busy is said once
    on ``warn`` (and again when it recovers); past ``max_rows`` waiting, the oldest rows are
    dropped (and counted) rather than memory growing without bound."""

    def __init__(
        self,
        db: Any,
        run_id: str,
        flush_rows: int = 500,
        flush_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        warn: Callable[[str], None] | None = None,
        max_rows: int = 100_000,
    ) -> None:
        self.db = db
        self.run_id = run_id
        self.flush_rows = max(1, int(flush_rows))
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.rows_written = 0
        self.flushes = 0
        self.last_error: BaseException | None = None
        self.warn = warn
        self.max_rows = max(self.flush_rows, int(max_rows))
        self.dropped = 0
        self._rows: list[tuple[Any, ...]] = []
        self._due = 0.0  # monotonic time by which the buffered rows must be written
        self._closed = False

    def record(self, attempt: Any) -> None:
        """Buffer one ``AttemptRecord`` (duck-typed) and flush if the batch is full or due."""
        if self._closed:
            raise RuntimeError("LogWriter is closed")
        request = attempt.request
        priority = attempt.priority
        rows = self._rows
        rows.append((
            self.run_id,
            utc_iso(attempt.sent_wall),
            request.method,
            attempt.route,
            request.path,
            request.listing_id,
            request.market,
            ",".join(attempt.buckets),
            getattr(priority, "name", priority),
            attempt.attempt,
            attempt.status,
            attempt.outcome,
            attempt.queue_wait_ms,
            attempt.latency_ms,
            attempt.retry_after,
            attempt.error,
        ))
        now = self.clock()
        if len(rows) == 1:
            self._due = now + self.flush_seconds
        if len(rows) >= self.flush_rows or now >= self._due:
            self._try_flush(now)

    def flush_if_due(self, *, force: bool = False) -> bool:
        """Flush if the oldest buffered row is ``flush_seconds`` old (or at once with ``force``);
        for callers about to idle. A busy database keeps the rows for later."""
        now = self.clock()
        if self._rows and (force or now >= self._due):
            return self._try_flush(now)
        return False

    def _try_flush(self, now: float) -> bool:
        try:
            self.flush()
        except sqlite3.OperationalError as error:
            # A locked or busy database must not crash the traffic it describes: keep the rows
            # and try again when next due (close() flushes and raises if it still fails).
            if self.last_error is None and self.warn is not None:
                self.warn(f"warning: the request log cannot be written ({error}); "
                          f"{len(self._rows)} row(s) kept, retrying")
            self.last_error = error
            self._due = now + self.flush_seconds
            self._cap()
            return False
        if self.last_error is not None and self.warn is not None:
            self.warn("the request log is written again" + (
                f" ({self.dropped} oldest row(s) were dropped meanwhile)" if self.dropped else ""))
        self.last_error = None
        return True

    def _cap(self) -> None:
        excess = len(self._rows) - self.max_rows
        if excess > 0:
            del self._rows[:excess]
            self.dropped += excess

    def flush(self) -> int:
        """Write the buffered rows in one transaction; returns how many were written."""
        rows = self._rows
        if not rows:
            return 0
        with self.db.atomic():
            self.db.conn.executemany(_INSERT, rows)
        self._rows = []
        self.rows_written += len(rows)
        self.flushes += 1
        return len(rows)

    @property
    def pending(self) -> int:
        """Rows recorded but not yet written."""
        return len(self._rows)

    def close(self) -> None:
        """Write what is left; further ``record`` calls are an error. Safe to call twice."""
        if not self._closed:
            self.flush()
            self._closed = True

    def __enter__(self) -> "LogWriter":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
