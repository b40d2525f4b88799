"""Rendering of command results: an aligned table for people, `--json` for scripts."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import orjson


def json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json` on a nested subcommand too, without resetting one given earlier on the line."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def emit_json(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if not rows:
        out.write("(no rows)\n")
        return
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    out.write("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for r in cells:
        out.write("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() + "\n")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def render(value: Any, *, as_json: bool, columns: Sequence[str] | None = None, out: TextIO | None = None) -> None:
    """Print `value` (a list of rows, or a mapping) as JSON or as a table/key-value list."""
    out = out or sys.stdout
    if as_json:
        emit_json(value, out)
    elif isinstance(value, list):
        table(value, columns or (list(value[0]) if value else []), out)
    elif isinstance(value, Mapping):
        width = max((len(k) for k in value), default=0)
        for key, item in value.items():
            out.write(f"{key.ljust(width)}  {_cell(item)}\n")
    else:
        out.write(f"{value}\n")
