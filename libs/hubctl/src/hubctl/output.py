"""Rendering of command results: `rich` tables and progress bars for people, `--json` for scripts.

Nothing is truncated: on a terminal long cells wrap within its width; piped into a file or `grep`, every row is
one line at its natural width (trailing padding removed).
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import orjson
from rich import box
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

# Wide enough for any row: a file or pipe has no width to wrap to.
_UNBOUNDED = 100_000


def emit_json(value: Any, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(orjson.dumps(value, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


def cell(value: Any) -> Text:
    # Text, never markup: a value such as "[red]" or an error message must print as it is.
    return Text("-" if value is None else str(value))


def print_renderable(renderable: RenderableType, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    if out.isatty():
        Console(file=out, highlight=False).print(renderable)
        return
    buffer = io.StringIO()
    Console(file=buffer, width=_UNBOUNDED, highlight=False, color_system=None).print(renderable)
    out.write("".join(line.rstrip() + "\n" for line in buffer.getvalue().splitlines()))


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], out: TextIO | None = None) -> None:
    if not rows:
        (out or sys.stdout).write("(no rows)\n")
        return
    grid = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    for row in rows:
        grid.add_row(*(cell(row.get(c)) for c in columns))
    print_renderable(grid, out)


def fields(value: Mapping[str, Any], out: TextIO | None = None) -> None:
    """One `name  value` line per key."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, item in value.items():
        grid.add_row(Text(key), cell(item))
    print_renderable(grid, out)


def render(value: Any, *, as_json: bool, columns: Sequence[str] | None = None, out: TextIO | None = None) -> None:
    """Print `value` (a list of rows, or a mapping) as JSON or as a table/key-value list."""
    out = out or sys.stdout
    if as_json:
        emit_json(value, out)
    elif isinstance(value, list):
        table(value, columns or (list(value[0]) if value else []), out)
    elif isinstance(value, Mapping):
        fields(value, out)
    else:
        out.write(f"{value}\n")


def section(title: str, out: TextIO | None = None) -> None:
    (out or sys.stdout).write(f"\n{title}:\n")


def progress_wanted(flag: bool, stream: TextIO | None = None) -> bool:
    """`--progress` forces the bar; otherwise only an interactive stderr gets one (scripts' logs stay clean)."""
    target = stream or sys.stderr
    return flag or target.isatty()


@contextmanager
def progress(label: str, total: int, *, enabled: bool, stream: TextIO | None = None) -> Iterator[Callable[[], None]]:
    """A bar on stderr (count, percentage, ETA); call what it yields after each item.

    Redraws are rich's own, on a timer: a bulk run of thousands of items does not spend its time printing.
    Disabled, it prints nothing.
    """
    console = Console(file=stream or sys.stderr, force_terminal=enabled or None, highlight=False)
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not enabled or total <= 0,
    )
    with bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)
