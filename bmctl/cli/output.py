"""Rendering rows as a table, JSON, NDJSON or CSV; data to stdout, nothing else."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

from bmctl.cli.env import CliEnv


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # amounts travel as decimal strings, never floats
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def to_json_line(row: Any) -> str:
    return json.dumps(row, default=_json_default, ensure_ascii=False)


def _cell(value: Any, *, csv: bool = False) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):  # csv says it as JSON does; a table says it in words
        return ("true" if value else "false") if csv else ("yes" if value else "no")
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (dict, list, tuple)) for v in value):  # records: one JSON text
            return to_json_line(list(value))
        return ",".join(_cell(v, csv=csv) for v in value)
    if isinstance(value, dict):
        return to_json_line(value)
    return str(value)


class Output:
    """A sink for result rows: ``ndjson`` and ``csv`` stream each row as it comes, ``json``
    prints one array at the end, ``table`` renders at the end (rich on a terminal)."""

    def __init__(
        self,
        env: CliEnv,
        columns: Sequence[str] | None = None,
        *,
        title: str | None = None,
        format: str | None = None,
        optional: Sequence[str] = (),
    ) -> None:
        self.env = env
        self.format = format or env.format
        self.columns = list(columns) if columns else None
        self.title = title
        # Columns a table leaves out when no row has a value for them (csv keeps them all).
        self.optional = set(optional)
        self.rows: list[Mapping[str, Any]] = []
        self._csv_writer: Any = None
        self._closed = False

    def __enter__(self) -> "Output":
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        # A command that fails before producing a row (no token, 401, bad input) prints no
        # empty array or table: stdout stays empty and the error line on stderr says why.
        # Rows already produced are data and are still printed.
        self.close(failed=exc_type is not None)

    def emit(self, row: Mapping[str, Any]) -> None:
        """Add one row; streamed at once for ndjson and csv."""
        if self.format == "ndjson":
            with self.env.terminal():
                self.env.stdout.write(to_json_line(row) + "\n")
                self.env.stdout.flush()
        elif self.format == "csv":
            with self.env.terminal():
                self._write_csv(row)
        else:
            self.rows.append(row)

    def emit_all(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            self.emit(row)

    def close(self, *, failed: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        if failed and not self.rows:
            self.env.stdout.flush()
            return
        if self.format == "json":
            text = json.dumps(list(self.rows), default=_json_default, ensure_ascii=False, indent=2)
            with self.env.terminal():
                self.env.stdout.write(text + "\n")
        elif self.format == "table":
            self._write_table()
        self.env.stdout.flush()

    def _keys(self, row: Mapping[str, Any] | None = None) -> list[str]:
        if self.columns:
            return self.columns
        source = row if row is not None else (self.rows[0] if self.rows else {})
        return list(source.keys())

    def _write_csv(self, row: Mapping[str, Any]) -> None:
        import csv

        if self._csv_writer is None:
            self._csv_writer = csv.writer(self.env.stdout, lineterminator="\n")
            self._csv_writer.writerow(self._keys(row))
        self._csv_writer.writerow([_cell(row.get(key), csv=True) for key in self._keys(row)])
        self.env.stdout.flush()

    def _write_table(self) -> None:
        keys = [k for k in self._keys()
                if k not in self.optional or any(row.get(k) not in (None, "") for row in self.rows)]
        if not self.rows:
            if self.env.stdout_is_tty:
                self.env.info("(nothing to show)")
            return
        cells = [[_cell(row.get(k)) for k in keys] for row in self.rows]
        if self.env.stdout_is_tty:
            self._write_terminal_table(keys, cells)
            return
        widths = [max(len(k), *(len(r[i]) for r in cells)) for i, k in enumerate(keys)]
        lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths)).rstrip()]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
        self.env.stdout.write("\n".join(lines) + "\n")

    def _write_terminal_table(self, keys: list[str], cells: list[list[str]]) -> None:
        from bmctl.cli.layout import fit

        width = self.env.width()
        fitted = fit(keys, cells, width, wide=self.env.wide, bold=self.env.stdout_color,
                     title=self.title, rule="─" if self.env.unicode() else "-")
        with self.env.terminal():
            self.env.stdout.write("\n".join(fitted.lines) + "\n")
        if fitted.hidden:
            self.env.info(f"({width} columns: left out {', '.join(fitted.hidden)}; --wide shows all)")
