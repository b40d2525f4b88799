"""The care a changing command takes before it changes anything: an actor, a confirmation, a pacing."""

from __future__ import annotations

import io

import pytest

from hubctl import audit
from hubctl.bulk import Pacer, confirm
from hubctl.context import HubctlSettings, os_user
from hubctl.errors import HubctlError


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_actor_is_required_outside_development() -> None:
    with pytest.raises(HubctlError, match="set HUBCTL_ACTOR"):
        audit.actor(HubctlSettings(hubctl_actor=None, dev_mode=False))
    with pytest.raises(HubctlError):
        audit.actor(HubctlSettings(hubctl_actor="  ", dev_mode=False))
    given = audit.actor(HubctlSettings(hubctl_actor=" jane.doe ", dev_mode=False))
    assert given == audit.Actor("jane.doe", os_user())
    dev = audit.actor(HubctlSettings(hubctl_actor=None, dev_mode=True))
    assert dev == audit.Actor(f"hubctl:{os_user()}", os_user())


def test_dev_mode_and_actor_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUB_DEV_MODE", "1")
    monkeypatch.setenv("HUBCTL_ACTOR", "INC-42 jane")
    settings = HubctlSettings()
    assert (settings.dev_mode, settings.hubctl_actor) == (True, "INC-42 jane")
    monkeypatch.setenv("HUB_DEV_MODE", "")
    monkeypatch.setenv("HUBCTL_ACTOR", "")
    unset = HubctlSettings()
    assert (unset.dev_mode, unset.hubctl_actor) == (False, None)


def test_confirmation_without_a_terminal_needs_yes() -> None:
    with pytest.raises(HubctlError, match="Pass --yes"):
        confirm("Replay 3 dead letter(s)?", assume_yes=False, stdin=io.StringIO("y\n"))
    confirm("Replay 3 dead letter(s)?", assume_yes=True, stdin=io.StringIO(""))


@pytest.mark.parametrize(("answer", "accepted"), [("y\n", True), ("yes\n", True), ("\n", False), ("no\n", False)])
def test_confirmation_on_a_terminal_asks(answer: str, accepted: bool) -> None:
    prompt = io.StringIO()
    if accepted:
        confirm("Delete 2 keys?", assume_yes=False, stdin=Tty(answer), prompt=prompt)
    else:
        with pytest.raises(HubctlError, match="cancelled"):
            confirm("Delete 2 keys?", assume_yes=False, stdin=Tty(answer), prompt=prompt)
    assert prompt.getvalue() == "Delete 2 keys? [y/N] "


async def test_pacer_spaces_starts_by_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    slept: list[float] = []
    pacer = Pacer(4.0, clock_fn=clock)

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    monkeypatch.setattr("hubctl.bulk.asyncio.sleep", fake_sleep)
    for _ in range(3):
        await pacer.wait()
    clock.now += 10  # a slow stretch: no catching up in a burst beyond one slot
    await pacer.wait()
    await pacer.wait()
    assert slept == [0.25, 0.25, 0.25]


def test_pacer_refuses_a_non_positive_rate() -> None:
    with pytest.raises(HubctlError, match="--rate"):
        Pacer(0)
