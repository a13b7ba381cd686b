"""Small helpers shared by the bench scripts: machine description, tables, statistics."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Iterable, Sequence


def machine() -> str:
    """One line: nproc, CPU model, Python version, date (UTC)."""
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=os.path.dirname(os.path.abspath(__file__)), timeout=5).stdout.strip()
    except Exception:  # noqa: BLE001 - informational only
        rev = "?"
    return (f"nproc={os.cpu_count()} cpu={model!r} python={platform.python_version()} "
            f"date={time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} commit={rev or '?'}")


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A plain Markdown table (pastes straight into RESULTS.md)."""
    rows = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    out = ["| " + " | ".join(str(h).ljust(w) for h, w in zip(headers, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for r in rows:
        out.append("| " + " | ".join(c.rjust(w) if _numeric(c) else c.ljust(w)
                                     for c, w in zip(r, widths)) + " |")
    return "\n".join(out)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.3g}"
    return str(value)


def _numeric(text: str) -> bool:
    try:
        float(text.rstrip("%×x").replace(",", ""))
        return True
    except ValueError:
        return False


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of a non-empty sequence."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(min(k, len(ordered))) - 1]


def med_min_max(values: Sequence[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def header(title: str) -> None:
    print(f"## {title}")
    print(f"machine: {machine()}")
    print(f"command: python {' '.join(sys.argv)}")
    print()
