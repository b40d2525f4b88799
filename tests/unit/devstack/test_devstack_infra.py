"""HUB_INFRA: which source each piece of infrastructure comes from, and the one line that says why."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hub_devstack.errors import DevstackError
from hub_devstack.infra import KAFKA, POSTGRES, Choice, Mode, choose, mode_from_env, provide, resolve

HOST = "unix:///run/test-docker.sock"


@dataclass
class FakeEngine:
    """An engine with a fixed answer, a set of present images and per-image pull outcomes; records its calls."""

    up: bool = True
    present: set[str] = field(default_factory=set)
    pullable: set[str] = field(default_factory=set)
    host: str = HOST
    calls: list[str] = field(default_factory=list)

    def answers(self) -> bool:
        self.calls.append("ping")
        return self.up

    def has_image(self, ref: str) -> bool:
        self.calls.append(f"has {ref}")
        return ref in self.present

    def pull(self, ref: str) -> str | None:
        self.calls.append(f"pull {ref}")
        if ref in self.pullable:
            self.present.add(ref)
            return None
        return f"no registry for {ref}"


OFFICIAL, BUILT = KAFKA.images


@pytest.mark.parametrize(("raw", "mode"), [("", "auto"), ("auto", "auto"), ("Docker", "docker"), (" local ", "local")])
def test_mode_comes_from_hub_infra_and_defaults_to_auto(raw: str, mode: str) -> None:
    assert mode_from_env({"HUB_INFRA": raw}) == mode
    assert mode_from_env({}) == "auto"


def test_an_unknown_mode_is_one_line_naming_the_choices() -> None:
    with pytest.raises(DevstackError) as caught:
        mode_from_env({"HUB_INFRA": "kubernetes"})
    assert caught.value.message == "HUB_INFRA=kubernetes: expected one of auto, env, docker, local"


def test_local_mode_never_asks_docker() -> None:
    engine = FakeEngine(present={OFFICIAL})
    assert choose(KAFKA, "local", {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}, engine) == Choice("local")
    assert engine.calls == []


def test_env_mode_needs_the_variable_and_says_which() -> None:
    assert choose(POSTGRES, "env", {"DATABASE_URL": "postgresql://x"}, FakeEngine()) == Choice("env")
    with pytest.raises(DevstackError) as caught:
        choose(POSTGRES, "env", {}, FakeEngine())
    assert caught.value.message == "HUB_INFRA=env but DATABASE_URL is not set"


def test_auto_prefers_the_variable_without_probing_docker() -> None:
    engine = FakeEngine(present={OFFICIAL})
    assert choose(KAFKA, "auto", {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}, engine).source == "env"
    assert engine.calls == []


def test_auto_without_an_engine_uses_local_processes_and_says_why() -> None:
    choice = choose(KAFKA, "auto", {}, FakeEngine(up=False))
    assert choice.source == "local"
    assert choice.note == f"Kafka from local processes: no Docker engine answers at {HOST}"


def test_auto_takes_a_present_image_before_pulling_any() -> None:
    engine = FakeEngine(present={BUILT}, pullable={OFFICIAL})
    choice = choose(KAFKA, "auto", {}, engine)
    assert (choice.source, choice.image) == ("docker", BUILT)
    assert not [c for c in engine.calls if c.startswith("pull")]
    assert BUILT in choice.note and HOST in choice.note


def test_auto_pulls_in_order_when_nothing_is_present() -> None:
    engine = FakeEngine(pullable={BUILT})
    choice = choose(KAFKA, "auto", {}, engine)
    assert (choice.source, choice.image) == ("docker", BUILT)
    assert [c for c in engine.calls if c.startswith("pull")] == [f"pull {OFFICIAL}", f"pull {BUILT}"]


def test_auto_falls_back_to_local_naming_every_image_and_the_remedies() -> None:
    choice = choose(POSTGRES, "auto", {}, FakeEngine())
    assert choice.source == "local"
    assert "\n" not in choice.note
    official, built = POSTGRES.images
    assert choice.note == (
        f"PostgreSQL from local processes: Docker answers at {HOST} but no PostgreSQL image is present or can be "
        f"pulled: {official} (no registry for {official}); {built} (no registry for {built}). "
        f"`make images` builds {built}; HUB_POSTGRES_IMAGE names another"
    )


def test_the_image_variable_replaces_the_candidates() -> None:
    engine = FakeEngine(present={OFFICIAL, BUILT, "mine/kafka:1"})
    choice = choose(KAFKA, "auto", {"HUB_KAFKA_IMAGE": "mine/kafka:1"}, engine)
    assert choice.image == "mine/kafka:1"
    assert engine.calls == ["ping", "has mine/kafka:1"]


def test_forced_docker_ignores_the_variable_and_fails_in_one_line_when_it_cannot() -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": "k:9092"}
    assert choose(KAFKA, "docker", env, FakeEngine(present={OFFICIAL})).image == OFFICIAL
    with pytest.raises(DevstackError) as no_engine:
        choose(KAFKA, "docker", env, FakeEngine(up=False))
    assert no_engine.value.message == f"HUB_INFRA=docker: no Docker engine answers at {HOST}"
    with pytest.raises(DevstackError) as no_image:
        choose(KAFKA, "docker", {"HUB_KAFKA_IMAGE": "gone/kafka:1"}, FakeEngine())
    message = no_image.value.message
    assert "\n" not in message
    assert message.startswith("HUB_INFRA=docker: Docker answers at")
    assert "gone/kafka:1 (no registry for gone/kafka:1)" in message


def test_resolve_reads_the_mode_and_reports_the_note() -> None:
    lines: list[str] = []
    choice = resolve(KAFKA, None, {"HUB_INFRA": "auto"}, FakeEngine(up=False), lines.append)
    assert choice.source == "local"
    assert lines == [choice.note]
    quiet: list[str] = []
    resolve(KAFKA, "local", {}, FakeEngine(), quiet.append)
    assert quiet == []


@contextmanager
def _started(address: str, log: list[str]) -> Iterator[str]:
    log.append(f"start {address}")
    yield address
    log.append(f"stop {address}")


def test_provide_yields_the_chosen_source_and_stops_what_it_started(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-engine.sock'}")
    monkeypatch.delenv("HUB_INFRA", raising=False)
    log: list[str] = []
    lines: list[str] = []

    def docker(image: str) -> AbstractContextManager[str]:
        return _started(f"docker {image}", log)

    def local() -> AbstractContextManager[str]:
        return _started("local", log)

    def provided(mode: Mode | None) -> str:
        with provide(KAFKA, mode, lines.append, ready=log.append, docker=docker, local=local) as address:
            return address

    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert provided(None) == "local"
    assert log == ["start local", "stop local"]
    assert lines == [f"Kafka from local processes: no Docker engine answers at unix://{tmp_path / 'no-engine.sock'}"]

    log.clear()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    assert provided(None) == "broker:9092"
    assert log == ["broker:9092"]  # waited for, nothing started

    with pytest.raises(DevstackError, match=r"^HUB_INFRA=docker: no Docker engine answers"):
        provided("docker")
