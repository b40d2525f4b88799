"""What a benchmark prints: measured rows, and targets with the ratio each reached."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    goal: float
    # "min": value must be >= goal; "max": value must be <= goal.
    kind: str = "min"
    unit: str = ""

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.kind == "min" else self.value <= self.goal

    def line(self) -> str:
        op = ">=" if self.kind == "min" else "<="
        verdict = "met" if self.met else "NOT met"
        return f"{self.name}: {self.value:.2f}{self.unit} (target {op} {self.goal:g}{self.unit}) {verdict}"


@dataclass
class Report:
    name: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # More tables after `rows`: (title, rows).
    tables: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    def print(self) -> None:
        _print_table(self.rows)
        for title, rows in self.tables:
            print(f"-- {title}")
            _print_table(rows)
        for note in self.notes:
            print(f"note: {note}")
        self.print_targets()

    def print_targets(self) -> None:
        for target in self.targets:
            print(f"[{self.name}] {target.line()}")


def _print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    columns = list(dict.fromkeys(k for row in rows for k in row))
    cells = [[_fmt(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile of `samples` (p in 0..100)."""
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def cpu_s(pid: int) -> float:
    """User + system CPU seconds a process used so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu_s() -> float:
    """CPU seconds every core of the machine spent busy so far (from /proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        ticks = [int(v) for v in stat.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal (guest time is already counted in user)
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MiB, from /proc."""
    fields: dict[str, float] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(rest.split()[0]) / 1024
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))
