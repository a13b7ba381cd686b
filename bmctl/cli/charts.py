"""Charts drawn under a table on a terminal: a listing's price over time (``history``) and each
bucket's requests per minute against its limit (``logs stats --timeline``).

Rendering only: the data comes from the pricing and store layers. Plain text with box-drawing
and block characters, coloured with SGR codes unless NO_COLOR is set; every line fits the
terminal. Imported only by those two commands."""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping, Sequence

from bmctl.cli.env import sgr
from bmctl.cli.layout import compact, short_ids

#: How each Backbox outcome is marked on the price chart, and its colour.
MARKS: dict[str | None, tuple[str, str]] = {
    "won": ("●", "green"),
    "lost": ("✗", "red"),
    "restore": ("↺", "yellow"),
    None: ("•", ""),
}
LEGEND = (("won", "won"), ("lost", "lost"), ("restore", "restore"), (None, "other"))
MAX_PRICE_ROWS = 8
TIMELINE_ROWS = 4
MAX_CHARTS = 3  # one per market of the listing; more would push the table off the screen
MIN_PLOT = 10  # narrower than this, a chart says nothing: none is drawn
_SGR = {"green": "32", "red": "31", "yellow": "33", "dim": "2", "bold": "1"}
_EIGHTHS = " ▁▂▃▄▅▆▇█"

Cell = tuple[str, str]  # (character, style)


def _render(cells: Iterable[Cell], colour: bool) -> str:
    """One line of cells as text; styled runs wrapped in SGR codes only when ``colour``."""
    out: list[str] = []
    run_style, run = "", ""
    for char, style in [*cells, ("", "")]:
        if style != run_style or not char:
            if run:
                out.append(sgr(run, _SGR[run_style]) if colour and run_style else run)
            run_style, run = style, ""
        run += char
    return "".join(out).rstrip()


def _text(text: str, style: str = "") -> list[Cell]:
    return [(char, style) for char in text]


def _write(env: Any, lines: list[list[Cell]], width: int) -> None:
    """One chart, after a blank line under what came before."""
    if not env.unicode():  # box and block characters only: a latin-1 terminal gets none
        env.info("(no chart: this terminal's encoding cannot draw it)")
        return
    colour = bool(env.stdout_color)
    env.stdout.write("\n" + "".join(_render(line[:width], colour) + "\n" for line in lines))
    env.stdout.flush()


# --- history ------------------------------------------------------------------------------------


def _places(prices: Sequence[Decimal]) -> int:
    exponents = [p.as_tuple().exponent for p in prices]
    return max([0, *(-e for e in exponents if isinstance(e, int))])


def _time_label(ts: str, same_day: bool) -> str:
    # Stored as 2026-11-30T01:02:03.123456Z (UTC).
    return ts[11:19] if same_day else f"{ts[5:10]} {ts[11:16]}"


def _axis_labels(columns: Sequence[int], labels: Sequence[str], plot: int) -> list[Cell]:
    """Labels under their columns where they fit: the first and last always, others if room."""
    line = [" "] * plot
    order = [0, len(columns) - 1] + list(range(1, len(columns) - 1)) if len(columns) > 1 else [0]
    taken: list[tuple[int, int]] = []
    for index in order:
        text = labels[index]
        if not text:
            continue
        start = min(max(0, columns[index] - len(text) // 2), plot - len(text))
        if index == 0:
            start = 0
        elif index == len(columns) - 1:
            start = plot - len(text)
        start = max(0, start)
        end = start + len(text)
        if any(start < e + 2 and s < end + 2 for s, e in taken):
            continue
        taken.append((start, end))
        line[start:end] = list(text)
    return _text("".join(line)[:plot])


def price_chart(title: str, points: Sequence[Any], width: int) -> list[list[Cell]]:
    """The lines of one price-over-time chart: a step line through ``points`` (PricePoint:
    ``ts``, ``price`` as a decimal string, ``mark``), evenly spaced, newest on the right;
    prices on the y axis, UTC times on the x axis, then the legend. Empty when it cannot fit."""
    prices = [Decimal(p.price) for p in points]
    quantum = Decimal(1).scaleb(-_places(prices))
    label_width = max(len(str(price.quantize(quantum))) for price in prices)
    plot = width - label_width - 2
    if plot < MIN_PLOT:
        return []
    if len(points) > plot:  # one column per change at least: the newest that fit
        title += f" (last {plot} prices)"
        points, prices = points[-plot:], prices[-plot:]
    low, high = min(prices), max(prices)
    distinct = len(set(prices))
    rows = 1 if distinct == 1 else 3 if distinct == 2 else MAX_PRICE_ROWS

    def row_of(price: Decimal) -> int:
        if high == low:
            return 0
        return int(((price - low) / (high - low) * (rows - 1)).to_integral_value(rounding=ROUND_HALF_UP))

    # The y axis names the prices the chart shows, exactly: the lowest, the highest and, on
    # each row between, the latest price drawn on it (a row without a point has no label).
    labels = [""] * rows
    for price in prices:
        labels[row_of(price)] = str(price.quantize(quantum))
    labels[0], labels[-1] = str(low.quantize(quantum)), str(high.quantize(quantum))
    n = len(points)
    columns = [round(i * (plot - 1) / (n - 1)) if n > 1 else 0 for i in range(n)]
    grid: list[list[Cell]] = [[(" ", "")] * plot for _ in range(rows)]
    levels_of = [row_of(p) for p in prices]
    for i in range(n - 1):
        here, there = levels_of[i], levels_of[i + 1]
        for x in range(columns[i] + 1, columns[i + 1]):
            grid[here][x] = ("─", "dim")
        for r in range(min(here, there) + 1, max(here, there)):
            grid[r][columns[i + 1]] = ("│", "dim")
    for i, point in enumerate(points):
        grid[levels_of[i]][columns[i]] = MARKS.get(point.mark, MARKS[None])
    lines: list[list[Cell]] = [_text(title[:width], "bold")]
    for r in range(rows - 1, -1, -1):
        lines.append(_text(labels[r].rjust(label_width) + " ┤") + grid[r])
    axis = ["─"] * plot
    for x in columns:
        axis[x] = "┬"
    lines.append(_text(" " * label_width + " └" + "".join(axis)))
    same_day = points[0].ts[:10] == points[-1].ts[:10]
    times = [_time_label(p.ts, same_day) for p in points]
    times = [t if i == 0 or t != times[i - 1] else "" for i, t in enumerate(times)]  # said once
    lines.append(_text(" " * (label_width + 2)) + _axis_labels(columns, times, plot))
    legend: list[Cell] = []
    for mark, name in LEGEND:
        char, style = MARKS[mark]
        legend += [(char, style)] + _text(f" {name}  ")
    lines.append(legend[:width])
    return lines


def draw_history(env: Any, series: Mapping[tuple[str, str], Sequence[Any]], name: str = "history") -> None:
    """Draw each (listing, market) price series under the table of command ``name`` (a few at
    most); a series of one price gets a one-line note on stderr instead."""
    width = env.width()
    drawn = 0
    flat: list[tuple[str, Any]] = []  # (market, the one point) of series with nothing to draw
    for (listing_id, market), points in series.items():
        if not points:
            continue
        if len(points) < 2:
            flat.append((market, points[0]))
            continue
        if drawn == MAX_CHARTS:
            env.info(f"{name}: charts for {MAX_CHARTS} markets only; use --market for another")
            break
        currency = points[-1].currency
        shown = listing_id if env.wide else compact(listing_id, short_ids([[listing_id]]))
        lines = price_chart(f"Price of {shown} in {market} ({currency}), times UTC", points, width)
        if lines:
            _write(env, lines, width)
            drawn += 1
    if len(flat) == 1:
        market, only = flat[0]
        env.info(f"{name}: one price in {market} ({only.price} {only.currency}): nothing to chart")
    elif flat:  # one line, not one per listing: a report covers many
        env.info(f"{name}: {len(flat)} listing(s) with one price only in the period: nothing to chart")


# --- logs stats --timeline -----------------------------------------------------------------------


def _number(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def timeline_chart(bucket: str, counts: Sequence[int], limit: float | None, start_label: str,
                   end_label: str, per_column: int, width: int, label_width: int = 0) -> list[list[Cell]]:
    """The lines of one bucket's chart: a bar per column (requests in its busiest minute),
    the per-minute limit as a dotted line, bars over it in red; y labels at least
    ``label_width`` wide (charts drawn one under another line up). Empty when it cannot fit."""
    peak = max(counts) if counts else 0
    top = max(peak, limit or 0) or 1
    labels = {TIMELINE_ROWS - 1: _number(top), 0: "0"}
    limit_row = None
    if limit:
        limit_row = min(TIMELINE_ROWS - 1, max(0, math.ceil(limit / top * TIMELINE_ROWS) - 1))
        labels[limit_row] = _number(limit)
    label_width = max(label_width, *(len(text) for text in labels.values()))
    plot = width - label_width - 2
    if plot < MIN_PLOT or len(counts) > plot:
        return []
    limit_text = f"limit {_number(limit)}" if limit else "no limit"
    scale = f" (busiest of {per_column} min a column)" if per_column > 1 else ""
    title = f"{bucket}: requests/min, peak {peak}, {limit_text}{scale}"
    lines: list[list[Cell]] = [_text(title[:width], "bold")]
    for r in range(TIMELINE_ROWS - 1, -1, -1):
        row: list[Cell] = []
        for count in counts:
            eighths = round(count / top * TIMELINE_ROWS * 8)
            if count and eighths == 0:
                eighths = 1  # a minute with requests never looks empty
            filled = min(8, max(0, eighths - r * 8))
            style = "red" if limit and count > limit else "green"
            if filled:
                row.append((_EIGHTHS[filled], style))
            elif r == limit_row:
                row.append(("┈", "dim"))
            else:
                row.append((" ", ""))
        lines.append(_text(labels.get(r, "").rjust(label_width) + " ┤") + row)
    lines.append(_text(" " * label_width + " └" + "─" * len(counts)))
    span = len(counts)
    under = start_label + end_label.rjust(max(0, span - len(start_label))) if span >= len(start_label) + len(end_label) + 2 else start_label
    lines.append(_text(" " * (label_width + 2) + under[:plot]))
    return lines


def draw_timeline(env: Any, rows: Sequence[Mapping[str, Any]], since_wall: float, now_wall: float,
                  configured: Sequence[str] = ()) -> None:
    """Draw, per bucket that was used, its requests per minute from ``since_wall`` to
    ``now_wall`` against its per-minute limit (``rows``: ``bucket_timeline``'s); the
    ``configured`` buckets without a request are named on stderr."""
    from bmctl.store.db import parse_utc, utc_iso

    limits: dict[str, float | None] = {row["bucket"]: row["limit_per_min"] for row in rows}
    width = env.width()
    first = int(since_wall // 60)
    minutes = max(1, int(now_wall // 60) - first + 1)
    per_column = 1
    peaks: dict[str, int] = {}
    for row in rows:
        peaks[row["bucket"]] = max(peaks.get(row["bucket"], 0), int(row["requests"]))
    # Every chart gets the same width: that of the widest y label any of them needs.
    label_room = max([1, *(len(_number(max(peak, limits.get(name) or 0))) for name, peak in peaks.items())])
    plot = max(1, width - label_room - 2)
    if minutes > plot:
        per_column = math.ceil(minutes / plot)
    columns = math.ceil(minutes / per_column)
    by_bucket: dict[str, list[int]] = {}
    for row in rows:
        index = (int(parse_utc(row["minute"]) // 60) - first) // per_column
        if 0 <= index < columns:
            counts = by_bucket.setdefault(row["bucket"], [0] * columns)
            counts[index] = max(counts[index], int(row["requests"]))
    if not by_bucket:
        env.info("logs stats: no requests over the window: nothing to chart")
        return
    same_day = utc_iso(since_wall)[:10] == utc_iso(now_wall)[:10]
    start, end = (_time_label(utc_iso(w), same_day)[:5 if same_day else 11] for w in (since_wall, now_wall))
    for bucket in by_bucket:  # in the rows' order: configured buckets first
        lines = timeline_chart(bucket, by_bucket[bucket], limits.get(bucket), start, end, per_column, width,
                               label_room)
        if lines:
            _write(env, lines, width)
    unused = [name for name in configured if name not in by_bucket]
    if unused:
        env.info(f"logs stats: no requests over the window in {', '.join(unused)}")
