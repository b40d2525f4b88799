"""hubctl pieces of the dead-letter tooling that need no broker: progress bar, replay pacing, CLI options."""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from hub_dispatcher.settings import DispatcherSettings, EndpointSettings, to_environment
from hubctl.__main__ import build_parser
from hubctl.commands.webhooks import Pacer
from hubctl.progress import Progress, render_line, wanted


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_bar_is_shown_on_a_terminal_or_when_asked_only() -> None:
    assert wanted(False, Tty())
    assert not wanted(False, io.StringIO())
    assert wanted(True, io.StringIO())


def test_bar_draws_throttled_and_ends_with_a_newline() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = Progress("replay", 4, enabled=True, stream=out, clock=clock, min_interval_s=1.0)
    bar.advance()  # first draw
    bar.advance()  # within the interval: not drawn
    clock.now += 2
    bar.advance()
    bar.advance()  # the last item always draws
    bar.close()
    frames = out.getvalue().split("\r")[1:]
    assert [f.split("] ")[1].split()[0] for f in frames] == ["1/4", "3/4", "4/4", "4/4"]
    assert frames[-1].startswith("replay [" + "#" * 30 + "]")
    assert out.getvalue().endswith("\n")


def test_disabled_bar_prints_nothing_but_counts() -> None:
    out = io.StringIO()
    bar = Progress("replay", 3, enabled=False, stream=out)
    bar.advance(3)
    bar.close()
    assert (out.getvalue(), bar.done) == ("", 3)


def test_line_shows_rate_and_eta() -> None:
    line = render_line("redrive", 25, 100, 5.0)
    assert "25/100" in line and " 25%" in line and "5.0/s" in line and "eta 15s" in line
    assert "#" * 7 + "." * 23 in line


async def test_pacer_spaces_starts_by_the_rate() -> None:
    clock = FakeClock()
    slept: list[float] = []
    pacer = Pacer(4.0, clock_fn=clock)

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("hubctl.commands.webhooks.asyncio.sleep", fake_sleep)
        for _ in range(3):
            await pacer.wait()
        clock.now += 10  # a slow stretch: no catching up in a burst beyond one slot
        await pacer.wait()
        await pacer.wait()
    assert slept == [0.25, 0.25, 0.25]


def test_pacer_refuses_a_non_positive_rate() -> None:
    with pytest.raises(SystemExit):
        Pacer(0)


def test_replay_and_redrive_options_parse() -> None:
    parser = build_parser()
    filters = ["--from", "2024-01-15", "--to", "2024-01-15", "--event-type", "transaction.failed"]
    options = ["--error", "500", "--player", "p-1", "--dry-run", "--rate", "5", "--progress", "--json"]
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
