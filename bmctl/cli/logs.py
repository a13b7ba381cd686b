"""``bmctl logs``: the request log, per-bucket statistics, runs, the database path, pruning."""

from __future__ import annotations

from typing import Any, Optional

import typer

from bmctl.cli.common import DefaultListGroup, cli_env, run_id_option
from bmctl.cli.output import Output

app = typer.Typer(
    cls=DefaultListGroup,
    help="Inspect the request log (list is the default).\n\nExample: bmctl logs --since 2h --bucket competitors",
    rich_markup_mode=None,
)

LOG_COLUMNS = [
    "ts", "run_id", "method", "path", "buckets", "priority", "attempt", "status", "outcome",
    "queue_wait_ms", "latency_ms", "retry_after", "error",
]
STATS_LEDGER_COLUMNS = ["held_now", "holders"]
RUN_COLUMNS = ["id", "command", "started_at", "duration_s", "requests", "exit_code"]


def _open(ctx: typer.Context, readonly: bool = True):  # type: ignore[no-untyped-def]
    from bmctl.store.db import open_database

    env = cli_env(ctx)
    return env, open_database(env.settings.db_path, readonly=readonly)


def _since(env: Any, text: str) -> float:
    from bmctl.durations import parse_since

    return parse_since(text, env.now_wall())


@app.command("list")
def list_logs(
    ctx: typer.Context,
    n: int = typer.Option(50, "-n", "--limit", min=1, help="Rows to show."),
    since: Optional[str] = typer.Option(None, "--since", help="15m, 2h, 1h30m, 7d or an ISO date/time (UTC)."),
    bucket: Optional[str] = typer.Option(None, "--bucket", help="Only requests that spent this bucket (one of the configured limits)."),
    status: Optional[int] = typer.Option(None, "--status", help="Only this HTTP status."),
    listing: Optional[str] = typer.Option(None, "--listing", help="Only this listing id (a UUID)."),
    run: Optional[str] = typer.Option(None, "--run", callback=run_id_option, help="Only this run id."),
) -> None:
    """The request log, newest first.

    Example: bmctl logs list -n 20 --status 429
    """
    from bmctl.store.logs import list_logs as query

    env = cli_env(ctx)
    if listing is not None:
        from bmctl.api.client import validate_listing_id

        listing = validate_listing_id(listing)
    if bucket is not None and bucket not in env.settings.limits:
        from bmctl.errors import UsageError

        raise UsageError(f"unknown bucket {bucket!r}: use one of {', '.join(sorted(env.settings.limits))}")
    since_wall = _since(env, since) if since is not None else None
    env, db = _open(ctx)
    rows = query(db, limit=n, since_wall=since_wall, bucket=bucket, status=status, listing=listing, run=run)
    with Output(env, LOG_COLUMNS if env.format == "table" else None, title="Request log") as out:
        out.emit_all(rows)


@app.command("stats")
def stats(
    ctx: typer.Context,
    since: str = typer.Option("1h", "--since", metavar="WHEN", help="Window: 15m, 2h, 1h30m, 7d or an ISO date/time (UTC)."),
    run: Optional[str] = typer.Option(None, "--run", callback=run_id_option, help="Only this run id."),
    timeline: bool = typer.Option(False, "--timeline", help="Requests per minute per bucket against its limit: a chart under the table on a terminal; rows of bucket, minute, requests, limit_per_min otherwise."),
) -> None:
    """Per bucket: requests, 2xx, 429, other errors, latency and queue-wait percentiles, achieved
    rate against the limit, and the budget ledger now: slots held and by whom (run id, pid).
    --timeline adds each bucket's requests per minute against its limit (a chart on a terminal).

    Example: bmctl logs stats --since 15m --format json

    Example: bmctl logs stats --timeline --since 2h
    """
    from bmctl.runtime import ledger_holders
    from bmctl.store.logs import STATS_FIELDS, bucket_stats

    env = cli_env(ctx)
    since_wall = _since(env, since)
    env, db = _open(ctx)
    settings = env.settings
    limits = {name: (spec.limit, spec.window) for name, spec in settings.limits.items()}
    chart = timeline and env.format == "table" and env.stdout_is_tty
    if timeline and not chart:  # the data behind the chart, in the format asked for
        from bmctl.store.logs import TIMELINE_FIELDS, bucket_timeline

        with Output(env, TIMELINE_FIELDS, title=f"Requests per minute over {since}") as out:
            out.emit_all(bucket_timeline(db, since_wall, limits, run=run))
        return
    holders, where = ledger_holders(settings, env.system_clock())
    rows = bucket_stats(db, since_wall, limits, run=run, holders=holders)
    if env.format in ("table", "csv"):
        rows = [{**row, "holders": _holders_text(row["holders"])} for row in rows]
    columns = [*STATS_FIELDS, *STATS_LEDGER_COLUMNS]
    with Output(env, columns, title=f"Buckets over {since} · ledger: {where}") as out:
        out.emit_all(rows)
    if chart:
        from bmctl.cli.charts import draw_timeline
        from bmctl.store.logs import bucket_timeline

        draw_timeline(env, bucket_timeline(db, since_wall, limits, run=run), since_wall, env.now_wall(),
                      configured=list(limits))


def _holders_text(holders: list[dict]) -> str:  # type: ignore[type-arg]
    return "; ".join(
        f"{h['run_id'] or '?'} pid {h['pid']}: {h['slots']}" + (f" +{h['claims']} claimed" if h["claims"] else "")
        for h in holders)


@app.command("runs")
def runs(
    ctx: typer.Context,
    n: int = typer.Option(20, "-n", "--limit", min=1, help="Runs to show."),
) -> None:
    """One row per run: command, start, duration, requests, exit code.

    Example: bmctl logs runs -n 5
    """
    from bmctl.store.logs import list_runs

    env, db = _open(ctx)
    with Output(env, RUN_COLUMNS if env.format == "table" else None, title="Runs") as out:
        out.emit_all(list_runs(db, limit=n))


@app.command("path")
def path(ctx: typer.Context) -> None:
    """Print where the database is.

    Example: sqlite-utils tables "$(bmctl logs path)"
    """
    env = cli_env(ctx)
    env.stdout.write(f"{env.settings.db_path}\n")


@app.command("prune")
def prune(
    ctx: typer.Context,
    older_than: str = typer.Option(..., "--older-than", help="Delete rows older than this: 30d, 12h, 1d12h or an ISO date."),
) -> None:
    """Delete old log rows, finished runs and closed probes (open probes are always kept).

    Example: bmctl logs prune --older-than 30d
    """
    from bmctl.store.logs import prune as do_prune

    env, db = _open(ctx, readonly=False)
    cutoff = _since(env, older_than)
    deleted = do_prune(db, cutoff)
    with Output(env, None) as out:
        out.emit(dict(deleted))
