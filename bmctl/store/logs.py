"""The queries behind ``bmctl logs``: the request log (list), per-bucket statistics, runs, and
pruning. The writer is :mod:`bmctl.store.log_writer`."""

from __future__ import annotations

from typing import Any, Mapping

from bmctl.store.db import parse_utc, utc_iso
from bmctl.store.log_writer import LOG_FIELDS

# --- queries for the CLI -----------------------------------------------------------------------

_LIST_COLUMNS = ("id",) + LOG_FIELDS


def _bucket_clause(bucket: str) -> tuple[str, str]:
    # Buckets are stored comma-joined; match a whole name, not a substring ("catalog" must not
    # match a hypothetical "catalog_writes").
    return "(',' || buckets || ',') like ? escape '\\'", "%," + _escape_like(bucket) + ",%"


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_logs(
    db: Any,
    limit: int | None = 50,
    since_wall: float | None = None,
    bucket: str | None = None,
    status: int | None = None,
    listing: str | None = None,
    run: str | None = None,
) -> list[dict[str, Any]]:
    """Request log rows, newest first, filtered by time, bucket, HTTP status, listing id and run id."""
    where: list[str] = []
    params: list[Any] = []
    if since_wall is not None:
        where.append("ts >= ?")
        params.append(utc_iso(since_wall))
    if bucket:
        clause, value = _bucket_clause(bucket)
        where.append(clause)
        params.append(value)
    if status is not None:
        where.append("status = ?")
        params.append(int(status))
    if listing:
        where.append("listing_id = ?")
        params.append(listing)
    if run:
        where.append("run_id = ?")
        params.append(run)
    sql = f"select {', '.join(_LIST_COLUMNS)} from rate_limit_logs"
    if where:
        sql += " where " + " and ".join(where)
    sql += " order by ts desc, id desc"
    if limit is not None:
        sql += " limit ?"
        params.append(int(limit))
    cursor = db.conn.execute(sql, params)
    rows = [dict(zip(_LIST_COLUMNS, row)) for row in cursor]
    for row in rows:  # the clock's nanoseconds are noise: 0.01 ms is what a reader can use
        for key in _MILLISECONDS:
            row[key] = _round(row[key], 2)
    return rows


_MILLISECONDS = ("queue_wait_ms", "latency_ms")


def percentile(sorted_values: list[float], fraction: float) -> float | None:
    """Linear-interpolation percentile (like numpy's default) of already sorted values; None if empty."""
    if not sorted_values:
        return None
    rank = fraction * (len(sorted_values) - 1)
    low = int(rank)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


class _BucketAcc:
    __slots__ = ("requests", "ok", "rate_limited", "errors", "latencies", "waits", "first", "last")

    def __init__(self) -> None:
        self.requests = self.ok = self.rate_limited = self.errors = 0
        self.latencies: list[float] = []
        self.waits: list[float] = []
        self.first: str | None = None
        self.last: str | None = None


#: The fields of a ``bucket_stats`` row (``held_now`` and ``holders`` follow with the ledger's).
STATS_FIELDS = (
    "bucket", "requests", "ok", "rate_limited", "errors", "p50_ms", "p95_ms", "p50_wait_ms",
    "p95_wait_ms", "rate_per_s", "limit_per_s",
)


def bucket_stats(
    db: Any,
    since_wall: float,
    limits: Mapping[str, tuple[float, float]],
    run: str | None = None,
    holders: list[dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Per bucket, over the attempts logged since ``since_wall`` (optionally of one run).

    A row counts once for each bucket it spent. ``ok`` = HTTP 2xx/3xx (the controller's ``ok``),
    ``rate_limited`` = 429, ``errors`` = everything else (other 4xx/5xx, timeouts, connection
    errors), so ``requests = ok + rate_limited + errors``. Percentiles interpolate linearly.
    ``rate_per_s`` = sends / (last send − first send + window): the rate at which the bucket was
    spent, on the same footing as the limit — sends in bursts of ``limit`` a window apart, the
    most the limit allows, give ``limit/window`` and never more (without a configured window:
    (sends − 1) / span); None with fewer than two sends. ``limit_per_s`` = limit / window.
    One object per bucket that has rows or a configured limit: configured ones first, in order.
    With ``holders`` (the budget ledger's, ``Ledger.holders()``): ``held_now``, the slots and
    claims every process holds now, and ``holders``, who holds them (run id, pid, slots,
    claims)."""
    sql = (
        "select buckets, status, latency_ms, queue_wait_ms, ts from rate_limit_logs where ts >= ?"
    )
    params: list[Any] = [utc_iso(since_wall)]
    if run:
        sql += " and run_id = ?"
        params.append(run)
    acc: dict[str, _BucketAcc] = {name: _BucketAcc() for name in limits}
    for buckets, status, latency, wait, ts in db.conn.execute(sql, params):
        if not buckets:
            continue
        for name in buckets.split(","):
            a = acc.get(name)
            if a is None:
                a = acc[name] = _BucketAcc()
            a.requests += 1
            if status is None or status >= 400:
                if status == 429:
                    a.rate_limited += 1
                else:
                    a.errors += 1
            else:
                a.ok += 1
            if latency is not None:
                a.latencies.append(latency)
            if wait is not None:
                a.waits.append(wait)
            # Fixed-width UTC text sorts like time: compare strings, parse only the two ends.
            if a.first is None or ts < a.first:
                a.first = ts
            if a.last is None or ts > a.last:
                a.last = ts
    configured = [name for name in limits]
    others = sorted(name for name in acc if name not in limits)
    result: list[dict[str, Any]] = []
    for name in configured + others:
        a = acc[name]
        a.latencies.sort()
        a.waits.sort()
        rate = None
        limit = limits.get(name)
        if a.requests >= 2 and a.first is not None and a.last is not None:
            span = parse_utc(a.last) - parse_utc(a.first)
            if limit and limit[1]:
                rate = a.requests / (span + float(limit[1]))
            elif span > 0:
                rate = (a.requests - 1) / span
        limit_per_s = (float(limit[0]) / float(limit[1])) if limit and limit[1] else None
        result.append({
            "bucket": name,
            "requests": a.requests,
            "ok": a.ok,
            "rate_limited": a.rate_limited,
            "errors": a.errors,
            "p50_ms": _round(percentile(a.latencies, 0.50), 2),
            "p95_ms": _round(percentile(a.latencies, 0.95), 2),
            "p50_wait_ms": _round(percentile(a.waits, 0.50), 2),
            "p95_wait_ms": _round(percentile(a.waits, 0.95), 2),
            "rate_per_s": _round(rate, 4),
            "limit_per_s": _round(limit_per_s, 4),
        })
    if holders is not None:
        for row in result:
            mine = [{k: h[k] for k in ("run_id", "pid", "slots", "claims")}
                    for h in holders if h["bucket"] == row["bucket"]]
            row["held_now"] = sum(h["slots"] + h["claims"] for h in mine)
            row["holders"] = mine
    return result


#: The fields of a ``bucket_timeline`` row.
TIMELINE_FIELDS = ("bucket", "minute", "requests", "limit_per_min")


def bucket_timeline(
    db: Any,
    since_wall: float,
    limits: Mapping[str, tuple[float, float]],
    run: str | None = None,
) -> list[dict[str, Any]]:
    """Per bucket and UTC minute since ``since_wall``: the attempts logged in that minute
    (a row counts once for each bucket it spent) and the bucket's limit as a per-minute rate
    (limit / window × 60; None for a bucket without a configured limit). Minutes without a
    request are left out. Configured buckets first, in order, then the others by name; each
    bucket's minutes oldest first."""
    # The minute is the text's first 16 characters (2026-11-30T01:02): fixed-width UTC text.
    sql = "select substr(ts, 1, 16), buckets, count(*) from rate_limit_logs where ts >= ?"
    params: list[Any] = [utc_iso(since_wall)]
    if run:
        sql += " and run_id = ?"
        params.append(run)
    sql += " group by 1, 2"
    counts: dict[str, dict[str, int]] = {}
    for minute, buckets, count in db.conn.execute(sql, params):
        if not buckets:
            continue
        for name in buckets.split(","):
            per_minute = counts.setdefault(name, {})
            per_minute[minute] = per_minute.get(minute, 0) + int(count)
    order = [name for name in limits if name in counts] + sorted(set(counts) - set(limits))
    rows: list[dict[str, Any]] = []
    for name in order:
        limit = limits.get(name)
        per_min = _round(float(limit[0]) / float(limit[1]) * 60.0, 4) if limit and limit[1] else None
        for minute in sorted(counts[name]):
            rows.append({"bucket": name, "minute": f"{minute}:00Z", "requests": counts[name][minute],
                         "limit_per_min": per_min})
    return rows


_RUN_COLUMNS = (
    "id", "command", "argv", "started_at", "finished_at", "duration_s", "exit_code", "requests",
    "pid", "version",
)


def list_runs(db: Any, limit: int | None = 20) -> list[dict[str, Any]]:
    """Runs, newest first. ``requests`` of a run still going (or killed) is counted from the log."""
    sql = (
        "select id, command, argv, started_at, finished_at, duration_s, exit_code,"
        " coalesce(requests, (select count(*) from rate_limit_logs l where l.run_id = runs.id)),"
        " pid, version from runs order by started_at desc, id desc"
    )
    params: list[Any] = []
    if limit is not None:
        sql += " limit ?"
        params.append(int(limit))
    rows = [dict(zip(_RUN_COLUMNS, row)) for row in db.conn.execute(sql, params)]
    for row in rows:
        row["argv"] = _argv_list(row["argv"])
        row["duration_s"] = _round(row["duration_s"], 3)
    return rows


def _argv_list(stored: str | None) -> list[str] | None:
    """The stored argv (a JSON array since the first version; plain text is kept as one word)."""
    if stored is None:
        return None
    import json

    try:
        value = json.loads(stored)
    except ValueError:
        return [stored]
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def prune(db: Any, older_than_wall: float) -> dict[str, int]:
    """Delete log rows, finished runs and closed probes older than the cutoff; returns counts.

    Kept whatever their age: open probes (recovery needs them), runs that never finished (still
    going, or evidence of a crash) and ``price_changes`` (the audit trail behind ``bmctl history``)."""
    cutoff = utc_iso(older_than_wall)
    with db.atomic():
        conn = db.conn
        logs = conn.execute("delete from rate_limit_logs where ts < ?", (cutoff,)).rowcount
        runs = conn.execute(
            "delete from runs where finished_at is not null and finished_at < ?", (cutoff,)
        ).rowcount
        probes = conn.execute(
            "delete from probes where state = 'closed' and coalesce(finished_at, updated_at) < ?",
            (cutoff,),
        ).rowcount
    return {"rate_limit_logs": logs, "runs": runs, "probes": probes}
