"""hubctl pieces of the dead-letter tooling that need no broker: progress bar, CLI options, settings."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from hub_dispatcher.settings import DispatcherSettings, EndpointSettings, to_environment
from hubctl.__main__ import build_parser
from hubctl.output import progress, progress_wanted


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_shown_on_a_terminal_or_when_asked_only() -> None:
    assert progress_wanted(False, Tty())
    assert not progress_wanted(False, io.StringIO())
    assert progress_wanted(True, io.StringIO())


def test_bar_counts_to_the_end_with_rate_based_eta() -> None:
    out = io.StringIO()
    with progress("replay", 4, enabled=True, stream=out) as advance:
        for _ in range(4):
            advance()
    shown = out.getvalue()
    assert "replay" in shown and "4/4" in shown and "100%" in shown
    assert shown.removesuffix("\x1b[?25h").endswith("\n")  # the line is ended (then the cursor shown again)


def test_disabled_bar_prints_nothing() -> None:
    out = io.StringIO()
    with progress("replay", 3, enabled=False, stream=out) as advance:
        for _ in range(3):
            advance()
    assert out.getvalue() == ""


def test_replay_and_redrive_options_parse() -> None:
    parser = build_parser()
    filters = ["--from", "2024-01-15", "--to", "2024-01-15", "--event-type", "transaction.failed"]
    options = ["--error", "500", "--player", "p-1", "--dry-run", "--rate", "5", "--progress", "--json", "--yes"]
    args = parser.parse_args(["dlq", "replay", *filters, *options])
    assert args.since == datetime(2024, 1, 15, tzinfo=UTC)
    assert args.until == datetime(2024, 1, 16, tzinfo=UTC)
    assert (args.event_type, args.error, args.player, args.dry_run, args.rate, args.progress, args.json) == (
        "transaction.failed",
        "500",
        "p-1",
        True,
        5.0,
        True,
        True,
    )
    assert args.yes and not args.all
    redrive = parser.parse_args(["webhooks", "redrive", "--from", "2024-01-15T10:00", "--status", "PENDING"])
    assert redrive.statuses == ["PENDING"]
    assert redrive.since == datetime(2024, 1, 15, 10, tzinfo=UTC)
    assert not redrive.progress


def test_environment_round_trips_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = DispatcherSettings(
        endpoints={"rgs": EndpointSettings(url="http://127.0.0.1:1/w", secrets=[SecretStr("a"), SecretStr("b")])},
        retry_schedule_ms=[10, 20],
        port=1234,
    )
    for key in list(os.environ):
        if key.startswith("DISPATCHER_"):
            monkeypatch.delenv(key)
    for key, value in to_environment(settings).items():
        monkeypatch.setenv(key, value)
    loaded = DispatcherSettings()
    assert loaded == settings
    assert [s.get_secret_value() for s in loaded.endpoints["rgs"].secrets] == ["a", "b"]
