"""The crash-safe probe journal (``probes``) and the price history (``price_changes``).

Every call commits before it returns: a probe is on disk before its dip is sent, so a run
killed at any point (SIGKILL included) leaves what ``bmctl recover`` needs."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from bmctl.api.money import Money, money_text

_text = money_text


@dataclass(frozen=True)
class OpenProbe:
    """A probe the journal holds open: what recovery needs to put the listing back."""

    id: int
    run_id: str
    listing_id: str
    market: str
    currency: str
    original_price: Money
    state: str
    floor: Money | None = None
    ceiling: Money | None = None
    current_price: Money | None = None  # the last price the probe wrote (or was about to)


class Journal:
    """Writes the ``probes`` journal and ``price_changes`` history of one run."""

    def __init__(self, db: Any, run_id: str, wall: Callable[[], float]) -> None:
        self.db = db
        self.run_id = run_id
        self.wall = wall

    def _now(self) -> str:
        from bmctl.store.db import utc_iso

        return utc_iso(self.wall())

    def _execute(self, sql: str, params: tuple[Any, ...]) -> int:
        with self.db.conn:  # one committed transaction per journal step
            cursor = self.db.conn.execute(sql, params)
        return int(cursor.lastrowid or 0)

    def open_probe(
        self,
        *,
        listing_id: str,
        market: str,
        original_price: Money,
        floor: Money | None,
        ceiling: Money | None,
    ) -> int:
        """Commit a new open probe; call before the first write is sent."""
        now = self._now()
        return self._execute(
            "insert into probes (run_id, listing_id, market, currency, state, original_price, floor,"
            " ceiling, start_price, current_price, writes, started_at, updated_at)"
            " values (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?, 0, ?, ?)",
            (self.run_id, listing_id, market, original_price.currency, original_price.to_api(),
             _text(floor), _text(ceiling), original_price.to_api(), original_price.to_api(), now, now),
        )

    def update(self, probe_id: int, **fields: Any) -> None:
        """Record a step of an open probe (prices as Money, anything else as is)."""
        allowed = {"state", "dip_price", "current_price", "writes", "dip_seconds", "reason"}
        unknown = set(fields) - allowed
        if unknown:
            raise ValueError(f"unknown journal fields: {sorted(unknown)}")
        values = {k: (_text(v) if isinstance(v, Money) else v) for k, v in fields.items()}
        values["updated_at"] = self._now()
        assignments = ", ".join(f"{name} = ?" for name in values)
        self._execute(f"update probes set {assignments} where id = ?", (*values.values(), probe_id))

    def close(self, probe_id: int, result: Mapping[str, Any]) -> None:
        """Close a probe with its result (a ProbeResult's JSON fields)."""
        now = self._now()
        self._execute(
            "update probes set state = 'closed', outcome = ?, reason = ?, dip_price = ?,"
            " final_price = ?, current_price = coalesce(?, current_price), writes = coalesce(?, writes),"
            " dip_seconds = ?, updated_at = ?, finished_at = ? where id = ?",
            (result.get("outcome"), result.get("reason"), result.get("dip_price"),
             result.get("final_price"), result.get("final_price"), result.get("writes", 0),
             result.get("dip_seconds"), now, now, probe_id),
        )

    def record_result(self, result: Mapping[str, Any]) -> None:
        """Keep the result of a probe that never opened (no write): skipped, kept, unwinnable."""
        now = self._now()
        self._execute(
            "insert into probes (run_id, listing_id, market, currency, state, original_price, floor,"
            " ceiling, start_price, dip_price, current_price, final_price, outcome, reason, writes,"
            " dip_seconds, started_at, updated_at, finished_at)"
            " values (?, ?, ?, ?, 'closed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, result.get("listing_id"), result.get("market"), result.get("currency"),
             result.get("start_price"), result.get("floor"), result.get("ceiling"),
             result.get("start_price"), result.get("dip_price"), result.get("final_price"),
             result.get("final_price"), result.get("outcome"), result.get("reason"),
             result.get("writes", 0), result.get("dip_seconds"), now, now, now),
        )

    def last_probed(self) -> dict[tuple[str, str], str]:
        """When each (listing, market) was last probed to the end (its latest such probe's end,
        UTC text). A probe cut short (``error``: a failure, an interruption, a killed run's probe
        closed by recovery) or still open is not a turn: the listing is still owed one."""
        rows = self.db.conn.execute(
            "select listing_id, market, max(coalesce(finished_at, updated_at, started_at)) from probes"
            " where state = 'closed' and outcome is not null and outcome != 'error'"
            " group by listing_id, market")
        return {(lid.lower(), market): ts for lid, market, ts in rows if lid and ts}

    def open_probes(self) -> list[OpenProbe]:
        """Every probe left open, by this run or a killed one, oldest first."""
        rows = self.db.conn.execute(
            "select id, run_id, listing_id, market, currency, original_price, state, floor, ceiling,"
            " current_price from probes where state != 'closed' order by id"
        ).fetchall()

        def money(text: str | None, currency: str) -> Money | None:
            return Money.parse(text, currency) if text is not None else None

        return [
            OpenProbe(id=r[0], run_id=r[1], listing_id=r[2], market=r[3], currency=r[4],
                      original_price=Money.parse(r[5], r[4]), state=r[6],
                      floor=money(r[7], r[4]), ceiling=money(r[8], r[4]),
                      current_price=money(r[9], r[4]))
            for r in rows
        ]

    def record_change(
        self,
        *,
        listing_id: str,
        market: str,
        old_price: Money | None,
        new_price: Money,
        reason: str,
        status: str = "sent",
        probe_id: int | None = None,
        snapshot: Any = None,
        request_id: str | None = None,
    ) -> int:
        """Record one price bmctl changed (or tried to), with the Backbox snapshot behind it."""
        return self._execute(
            "insert into price_changes (run_id, probe_id, ts, listing_id, market, currency,"
            " old_price, new_price, reason, snapshot, request_id, status)"
            " values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (self.run_id, probe_id, self._now(), listing_id, market, new_price.currency,
             _text(old_price), new_price.to_api(), reason,
             json.dumps(snapshot, default=str) if snapshot is not None else None, request_id, status),
        )


#: The fields of a ``history`` row, in order (``backbox`` and ``snapshot`` are parsed JSON).
HISTORY_FIELDS = (
    "ts", "listing_id", "market", "currency", "old_price", "new_price", "reason", "status",
    "request_id", "run_id", "probe_id", "backbox", "snapshot",
)
#: How many changes ``history`` shows by default when neither an id, --since nor --run narrow it.
DEFAULT_RECENT = 50


def history(
    db: Any,
    listing_id: str | None = None,
    limit: int | None = None,
    *,
    since: str | None = None,
    run: str | None = None,
    market: str | None = None,
) -> list[dict[str, Any]]:
    """The price changes bmctl made, newest first: of one listing or every listing, since a UTC
    time (``since``, the store's text form), of one run and of one market.

    ``snapshot`` is what was stored with the change, parsed (the competitors records of every
    market the decision was taken on; ``update-price`` stores its ``min_price``), ``backbox`` the
    record of the change's own market in it (None when the change was not decided on a Backbox
    read)."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (("listing_id = ?", listing_id), ("ts >= ?", since), ("run_id = ?", run),
                          ("market = ?", market)):
        if value is not None:
            where.append(clause)
            params.append(value)
    sql = (
        "select ts, listing_id, market, currency, old_price, new_price, reason, status, request_id,"
        " run_id, probe_id, snapshot from price_changes"
    )
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by ts desc, id desc"
    if limit:
        sql += " limit ?"
        params.append(int(limit))
    rows = []
    for row in db.conn.execute(sql, params):
        change = dict(zip(HISTORY_FIELDS[:-2], row[:-1]))
        snapshot = _parsed(row[-1])
        change["backbox"] = backbox_record(snapshot, change["market"])
        change["snapshot"] = snapshot
        rows.append(change)
    return rows


def _parsed(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text  # written by hand or by an older bmctl: shown as it is


def backbox_record(snapshot: Any, market: str | None) -> dict[str, Any] | None:
    """The competitors record of ``market`` in a stored snapshot (a list of per-market records), or None."""
    if isinstance(snapshot, list):
        for record in snapshot:
            if isinstance(record, dict) and record.get("market") == market:
                return record
    return None


@dataclass(frozen=True)
class PricePoint:
    """One price a listing had in one market, for the history chart: when, how much, and what
    the Backbox made of it (``won``, ``lost``, ``restore`` for a price put back, else None)."""

    ts: str
    price: str
    currency: str
    mark: str | None


#: Reasons that put a price back rather than try a new one.
RESTORING = frozenset({"restore", "undo"})
#: Statuses of a change that reached the listing (an ``error`` may not have).
APPLIED = ("updated", "sent")


def price_series(db: Any, rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], list[PricePoint]]:
    """Per (listing, market) of history ``rows``, the prices over time, oldest first: the price
    before the first change, then each applied change, marked.

    A price is ``won`` or ``lost`` by what the Backbox showed at that price: the snapshot of
    the same probe's next change, when it shows our price; else, for a probe's last change, the
    probe's outcome (``won`` or ``lost``)."""
    applied = [r for r in reversed(rows) if r.get("status") in APPLIED and r.get("new_price")]
    probe_ids = sorted({r["probe_id"] for r in applied if r.get("probe_id") is not None})
    outcomes: dict[int, str | None] = {}
    if probe_ids:
        marks = ",".join("?" * len(probe_ids))
        outcomes = dict(db.conn.execute(f"select id, outcome from probes where id in ({marks})", probe_ids))
    series: dict[tuple[str, str], list[PricePoint]] = {}
    for index, row in enumerate(applied):
        key = (row["listing_id"], row["market"])
        points = series.setdefault(key, [])
        if not points and row.get("old_price"):
            points.append(PricePoint(row["ts"], row["old_price"], row["currency"], None))
        mark = _mark(row, applied[index + 1:], outcomes)
        points.append(PricePoint(row["ts"], row["new_price"], row["currency"], mark))
    return series


def _mark(row: Mapping[str, Any], later: Sequence[Mapping[str, Any]], outcomes: Mapping[int, str | None]) -> str | None:
    if row.get("reason") in RESTORING:
        return "restore"
    probe_id = row.get("probe_id")
    if probe_id is None:
        return None
    following = next((r for r in later if r.get("probe_id") == probe_id), None)
    if following is not None:
        seen = following.get("backbox") or {}
        if seen.get("price") == row["new_price"] and isinstance(seen.get("is_winning"), bool):
            return "won" if seen["is_winning"] else "lost"
        return None
    outcome = outcomes.get(probe_id)
    return outcome if outcome in ("won", "lost") else None
