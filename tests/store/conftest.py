"""Store fixtures: a fresh database, a hand-moved clock, counting and commit-tracing helpers, and
a stand-in for the traffic package's AttemptRecord."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest

from bmctl.store.db import open_database

WALL0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def count(db, table: str = "rate_limit_logs") -> int:  # type: ignore[no-untyped-def]
    return db.conn.execute(f"select count(*) from {table}").fetchone()[0]


def commits(db) -> list[str]:  # type: ignore[no-untyped-def]
    """Trace the connection: the COMMIT statements it runs from now on."""
    seen: list[str] = []
    db.conn.set_trace_callback(lambda sql: seen.append(sql) if sql.strip().upper() == "COMMIT" else None)
    return seen


class Priority(IntEnum):
    CRITICAL = 0
    HIGH = 1
    NORMAL = 2
    LOW = 3


@dataclass(frozen=True)
class Request:
    method: str = "GET"
    path: str = "/ws/listings/abc"
    listing_id: str | None = "abc"
    market: str | None = "fr-fr"


@dataclass(frozen=True)
class Attempt:
    """Duck-typed like bmctl.traffic.controller.AttemptRecord."""

    request: Request = Request()
    call_id: int = 1
    priority: Priority = Priority.NORMAL
    attempt: int = 1
    buckets: tuple[str, ...] = ("global",)
    route: str = "listing_read"
    sent_wall: float = WALL0
    queue_wait_ms: float = 0.0
    latency_ms: float = 10.0
    status: int | None = 200
    outcome: str = "ok"
    retry_after: float | None = None
    error: str | None = None


def attempt(**fields: Any) -> Attempt:
    request_fields = {k: fields.pop(k) for k in ("method", "path", "listing_id", "market") if k in fields}
    return Attempt(request=Request(**request_fields), **fields)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "bmctl.db"


@pytest.fixture
def db(db_path: Path):  # type: ignore[no-untyped-def]
    database = open_database(db_path)
    yield database
    database.close()
