"""What every bulk command shares: the selection filters, pacing, confirmation and the audit of the request."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time as clock
from collections.abc import Callable
from datetime import UTC, datetime, time, timedelta
from typing import Any, TextIO

from hubctl.errors import HubctlError

FILTERS = ("ids", "statuses", "since", "until", "event_type", "error", "player", "client")


def time_bound(value: str, *, end: bool = False) -> datetime:
    """ISO date or datetime (UTC if naive). A bare date as an upper bound means the whole day."""
    if len(value) == 10:
        day = datetime.combine(datetime.fromisoformat(value).date(), time(), tzinfo=UTC)
        return day + timedelta(days=1) if end else day
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def add_filters(parser: argparse.ArgumentParser, *, time_of: str) -> None:
    """The selection every listing and bulk action shares; `time_of` names the timestamp the range applies to."""
    parser.add_argument("--from", dest="since", type=time_bound, help=f"{time_of} at or after (date or datetime)")
    parser.add_argument("--to", dest="until", type=lambda v: time_bound(v, end=True), help=f"{time_of} before")
    parser.add_argument("--event-type", help="e.g. transaction.completed")
    parser.add_argument("--error", help="case-insensitive substring of the error")
    parser.add_argument("--player", help="playerId of the transaction")
    parser.add_argument("--client", help="RGS client id")


def add_change_options(parser: argparse.ArgumentParser, *, reason: str) -> None:
    """Every command that changes something: `--dry-run` and the reason recorded in its audit rows."""
    parser.add_argument("--dry-run", action="store_true", help="show what would be done, change nothing")
    parser.add_argument("--reason", default=reason, help=f"recorded in the audit rows (default {reason!r})")


def add_bulk_options(parser: argparse.ArgumentParser, *, default_rate: float, reason: str) -> None:
    add_change_options(parser, reason=reason)
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--rate", type=float, default=default_rate, help=f"items per second (default {default_rate:g})")
    parser.add_argument("--progress", action="store_true", help="progress bar on stderr even when not a terminal")


def selection(args: argparse.Namespace) -> dict[str, Any]:
    """The filters as given, for the audit trail of a bulk action."""
    return {k: getattr(args, k) for k in FILTERS if getattr(args, k, None)}


def confirm(question: str, *, assume_yes: bool, stdin: TextIO | None = None, prompt: TextIO | None = None) -> None:
    """Ask on the terminal before a bulk change; without one, only `--yes` goes ahead."""
    if assume_yes:
        return
    answers = stdin or sys.stdin
    if not answers.isatty():
        raise HubctlError(f"{question} Pass --yes to confirm (no terminal to ask on); nothing changed")
    out = prompt or sys.stderr
    out.write(f"{question} [y/N] ")
    out.flush()
    if answers.readline().strip().lower() not in ("y", "yes"):
        raise HubctlError("cancelled; nothing changed")


class Pacer:
    """Spaces starts `1/rate` apart on a fixed schedule, so slow items do not lower the rate further."""

    def __init__(self, rate: float, *, clock_fn: Callable[[], float] = clock.monotonic) -> None:
        if rate <= 0:
            raise HubctlError("--rate must be positive")
        self._interval = 1 / rate
        self._clock = clock_fn
        self._next: float | None = None

    async def wait(self) -> None:
        now = self._clock()
        if self._next is not None and self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next or now) + self._interval
