"""Fitting a table to a terminal: short ids, whole values, free text last, low-value columns
dropped first. Pure functions over strings: the terminal's width is a parameter."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Sequence

from bmctl.cli.env import sgr

UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# bmctl's own timestamps (ISO 8601, UTC): seconds are enough on a terminal.
TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)(\.\d+)?Z$")
SHORT_ID = 8  # hex digits, like git and docker

# Free text: the only columns allowed to wrap; they go last, in this order.
FREE_TEXT = ("value", "source", "path", "holders", "detail", "reason", "error", "hint")
# Dropped first when the terminal is narrow, in this order; any other column is kept until
# these are gone, then the rightmost ones go, ``HIGH_VALUE`` last (the first column, the
# row's name, never).
LOW_VALUE = (
    "war_rounds", "avg_floor", "avg_ceiling",  # report: the share, changes and money go last
    "floor_source", "ceiling_source", "request_id", "dip_seconds", "retry_after", "attempt",
    "priority", "version", "pid", "finished_at", "run_id", "buckets", "queue_wait_ms", "p50_wait_ms", "p95_wait_ms",
    "held_now", "holders", "rate_per_s", "publication_state", "sku", "writes", "currency",
    "errors", "rate_limited", "ok", "floor", "ceiling", "dip_price",
    "min_price", "max_price", "start_price",
)
HIGH_VALUE = ("command", "outcome", "status", "exit_code", "final_price", "new_price", "price", "market")
GAP = 2
MIN_FREE_WIDTH = 12


@dataclass
class Fitted:
    """A table laid out for a width: the lines to print and the columns it had to leave out."""

    lines: list[str]
    hidden: list[str] = field(default_factory=list)


def display_width(text: str) -> int:
    """Terminal cells taken by ``text`` (wide East Asian characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def short_ids(cells: Sequence[Sequence[str]], length: int = SHORT_ID) -> dict[str, str]:
    """Full id -> its shortest prefix of at least ``length`` hex digits unique among the ids."""
    ids = sorted({m.group(0).lower() for row in cells for cell in row for m in UUID.finditer(cell)})
    size = length
    while size < 32:
        prefixes = {i.replace("-", "")[:size] for i in ids}
        if len(prefixes) == len(ids):
            break
        size += 1
    return {i: i.replace("-", "")[:size] for i in ids}


def compact(cell: str, ids: dict[str, str]) -> str:
    """A cell as a terminal shows it: ids shortened, timestamps to the second."""
    stamp = TIMESTAMP.match(cell)
    if stamp:
        return f"{stamp.group(1)} {stamp.group(2)}"
    if ids and UUID.search(cell):
        return UUID.sub(lambda m: ids.get(m.group(0).lower(), m.group(0)), cell)
    return cell


def is_numeric(values: Sequence[str]) -> bool:
    """Right-align a column whose every value reads as a number."""
    filled = [v for v in values if v]
    return bool(filled) and all(_NUMBER.match(v) for v in filled)


def _is_id(key: str) -> bool:
    """An id column stays left-aligned even when a short id happens to be all digits."""
    return key == "id" or key.endswith("_id")


_NUMBER = re.compile(r"^-?\d[\d,]*(\.\d+)?$")


def _header_lines(key: str, width: int) -> list[str]:
    """A header wrapped at its underscores (never inside a word) to ``width``."""
    parts = [p + "_" for p in key.split("_")]
    parts[-1] = parts[-1][:-1]
    lines: list[str] = []
    for part in parts:
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return lines


def _min_header(key: str) -> int:
    return max(len(p) + 1 for p in key.split("_")) - (1 if "_" not in key else 0)


def fit(keys: Sequence[str], cells: Sequence[Sequence[str]], width: int, *, wide: bool = False,
        bold: bool = False, title: str | None = None, rule: str = "─") -> Fitted:
    """Lay out ``cells`` (rows of strings, in ``keys`` order) in at most ``width`` columns.

    Ids, prices, markets, outcomes and every other value are never split: free-text columns
    (``FREE_TEXT``) go last and wrap; when even that does not fit, ``LOW_VALUE`` columns are
    left out, then the rightmost. ``wide``: full values and every column, whatever the width."""
    ids = {} if wide else short_ids([*cells, [title or ""]])
    rows = [[compact(c, ids) if not wide else c for c in row] for row in cells]
    columns = list(range(len(keys)))
    hidden: list[str] = []
    if not wide:  # a column no row fills says nothing
        empty = [i for i in columns if not any(row[i] for row in rows)]
        columns = [i for i in columns if i not in empty]
    free = [i for i in columns if keys[i] in FREE_TEXT]
    columns = [i for i in columns if i not in free] + sorted(free, key=lambda i: FREE_TEXT.index(keys[i]))

    natural = {i: max([display_width(row[i]) for row in rows] + [len(keys[i])]) for i in columns}
    free_minimum = max(MIN_FREE_WIDTH, width // 4)
    minimum = {i: (min(natural[i], free_minimum) if keys[i] in FREE_TEXT
                   else max([display_width(row[i]) for row in rows] + [_min_header(keys[i])]))
               for i in columns}

    # Low-value columns also make way for free text to reach a readable width (a reason on one
    # line rather than a ceiling nobody reads on every row).
    readable = {i: (min(natural[i], max(free_minimum, width // 3)) if keys[i] in FREE_TEXT
                    else minimum[i]) for i in columns}

    def needed(chosen: list[int], widths: dict[int, int] = minimum) -> int:
        return sum(widths[i] for i in chosen) + GAP * max(len(chosen) - 1, 0)

    if not wide:
        for name in LOW_VALUE:
            if needed(columns, readable) <= width:
                break
            for i in columns:
                if keys[i] == name and i != columns[0]:
                    columns.remove(i)
                    hidden.append(name)
                    break
        while needed(columns) > width and len(columns) > 1:
            fixed = sorted((i for i in columns[1:] if keys[i] not in FREE_TEXT),
                           key=lambda i: (keys[i] in HIGH_VALUE, columns.index(i)))
            victim = fixed[0] if fixed else columns[-1]
            columns.remove(victim)
            hidden.append(keys[victim])

    widths = _share(columns, natural, minimum, keys, width if not wide else None)
    numeric = {i: not _is_id(keys[i]) and is_numeric([row[i] for row in rows]) for i in columns}
    lines: list[str] = []
    if title:
        shown = title if wide else compact(title, ids)
        lines += [_style(line, bold) for line in (_wrap(shown, width) if not wide else [shown])]
    header_cells = {i: _header_lines(keys[i], widths[i]) for i in columns}
    depth = max((len(v) for v in header_cells.values()), default=1)
    for line in range(depth):
        parts = [_pad(header_cells[i][line] if line < len(header_cells[i]) else "", widths[i],
                      numeric[i]) for i in columns]
        lines.append(_style(_join(parts), bold))
    lines.append(_join([rule * widths[i] for i in columns]))
    for row in rows:
        wrapped = {i: (_wrap(row[i], widths[i]) if keys[i] in FREE_TEXT else [row[i]]) for i in columns}
        for line in range(max(len(v) for v in wrapped.values()) if columns else 0):
            lines.append(_join([_pad(wrapped[i][line] if line < len(wrapped[i]) else "", widths[i],
                                     numeric[i]) for i in columns]))
    return Fitted(lines=lines, hidden=hidden)


def _share(columns: list[int], natural: dict[int, int], minimum: dict[int, int],
           keys: Sequence[str], width: int | None) -> dict[int, int]:
    """Widths: every fixed column its natural width (wrapping headers at their underscores
    where the room is short, the widest saving first); free text shares what is left."""
    if width is None:
        return {i: natural[i] for i in columns}
    widths = {i: (natural[i] if keys[i] not in FREE_TEXT else minimum[i]) for i in columns}
    spare = width - sum(widths.values()) - GAP * max(len(columns) - 1, 0)
    for i in sorted((i for i in columns if keys[i] not in FREE_TEXT),
                    key=lambda i: natural[i] - minimum[i], reverse=True):
        if spare >= 0:
            break
        spare += widths[i] - minimum[i]
        widths[i] = minimum[i]
    for i in (i for i in columns if keys[i] in FREE_TEXT):  # path first, then reason...
        grow = min(max(spare, 0), natural[i] - widths[i])
        widths[i] += grow
        spare -= grow
    return widths


def _wrap(text: str, width: int) -> list[str]:
    """Free text wrapped between words and after slashes (paths), a word cut only when it
    is longer than the whole column."""
    if display_width(text) <= width:
        return [text]
    lines = [""]
    for token in _TOKENS.findall(text):
        if token.isspace():
            if lines[-1]:
                lines[-1] += " "
            continue
        if display_width(lines[-1]) + display_width(token) > width and lines[-1].strip():
            lines[-1] = lines[-1].rstrip()
            lines.append("")
        while display_width(lines[-1]) + display_width(token) > width:
            room = max(width - display_width(lines[-1]), 1)
            lines[-1] += token[:room]
            token = token[room:]
            lines.append("")
        lines[-1] += token
    return [line.rstrip() for line in lines if line.strip()] or [""]


_TOKENS = re.compile(r"\s+|[^\s/]*/|[^\s/]+")


def _pad(text: str, width: int, right: bool) -> str:
    room = width - display_width(text)
    return (" " * room + text) if right else (text + " " * room)


def _join(parts: list[str]) -> str:
    return (" " * GAP).join(parts).rstrip()


def _style(text: str, bold: bool) -> str:
    return sgr(text, "1") if bold else text
