"""Where Kafka and PostgreSQL come from: `HUB_INFRA=auto|env|docker|local` (default auto).

- env:    the running ones named by `KAFKA_BOOTSTRAP_SERVERS` / `DATABASE_URL`;
- docker: containers (testcontainers) from `HUB_KAFKA_IMAGE` / `HUB_POSTGRES_IMAGE`;
- local:  local processes (Kafka from its Maven Central jars, a private `initdb` cluster);
- auto:   env when the variable is set; else Docker when an engine answers AND an image is present or can be
          pulled; else local processes, after one line saying why Docker was not used.
A forced mode that cannot be satisfied fails with one line naming what is missing. Kafka and PostgreSQL are
decided separately.

The decision (`choose`) is pure given an engine, so it is unit-tested with a stand-in engine.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, cast, get_args

from hub_devstack.docker_engine import DockerEngine
from hub_devstack.errors import DevstackError
from hub_devstack.paths import KAFKA_VERSION

Mode = Literal["auto", "env", "docker", "local"]
Source = Literal["env", "docker", "local"]
MODES: tuple[str, ...] = get_args(Mode)
MODE_VAR = "HUB_INFRA"

# `make images` builds the second image of each pair; the first is the official one.
BUILT_KAFKA_IMAGE = f"integration-hub/kafka:{KAFKA_VERSION}"
BUILT_POSTGRES_IMAGE = "integration-hub/postgres:15"


@dataclass(frozen=True)
class Need:
    """One piece of infrastructure: the variable naming a running one, and the images that can run one."""

    what: str
    env_var: str
    image_var: str
    # Tried in order when `image_var` is unset: the first present, else the first that can be pulled.
    images: tuple[str, ...]

    def candidates(self, environ: Mapping[str, str]) -> tuple[str, ...]:
        chosen = environ.get(self.image_var, "").strip()
        return (chosen,) if chosen else self.images


OFFICIAL_KAFKA_IMAGE = f"apache/kafka:{KAFKA_VERSION}"
OFFICIAL_POSTGRES_IMAGE = "postgres:15"
KAFKA = Need("Kafka", "KAFKA_BOOTSTRAP_SERVERS", "HUB_KAFKA_IMAGE", (OFFICIAL_KAFKA_IMAGE, BUILT_KAFKA_IMAGE))
POSTGRES = Need("PostgreSQL", "DATABASE_URL", "HUB_POSTGRES_IMAGE", (OFFICIAL_POSTGRES_IMAGE, BUILT_POSTGRES_IMAGE))


class Engine(Protocol):
    host: str

    def answers(self) -> bool: ...

    def has_image(self, ref: str) -> bool: ...

    def pull(self, ref: str) -> str | None: ...


@dataclass(frozen=True)
class Choice:
    source: Source
    image: str = ""
    # The line shown to a person: why auto mode passed Docker over, or which image Docker runs.
    note: str = ""


def mode_from_env(environ: Mapping[str, str]) -> Mode:
    raw = environ.get(MODE_VAR, "").strip().lower() or "auto"
    if raw not in MODES:
        raise DevstackError(f"{MODE_VAR}={raw}: expected one of {', '.join(MODES)}")
    return cast(Mode, raw)


def _docker_image(need: Need, environ: Mapping[str, str], engine: Engine) -> tuple[str, str]:
    """(image, "") when Docker can run `need`, else ("", why not)."""
    if not engine.answers():
        return "", f"no Docker engine answers at {engine.host}"
    candidates = need.candidates(environ)
    for ref in candidates:
        if engine.has_image(ref):
            return ref, ""
    failures = []
    for ref in candidates:
        reason = engine.pull(ref)
        if reason is None:
            return ref, ""
        failures.append(f"{ref} ({reason})")
    return "", (
        f"Docker answers at {engine.host} but no {need.what} image is present or can be pulled: "
        f"{'; '.join(failures)}. `make images` builds {need.images[-1]}; {need.image_var} names another"
    )


def choose(need: Need, mode: Mode, environ: Mapping[str, str], engine: Engine) -> Choice:
    given = environ.get(need.env_var, "").strip()
    if mode == "local":
        return Choice("local")
    if mode == "env" or (mode == "auto" and given):
        if not given:
            raise DevstackError(f"{MODE_VAR}=env but {need.env_var} is not set")
        return Choice("env")
    image, why_not = _docker_image(need, environ, engine)
    if image:
        return Choice("docker", image, note=f"{need.what} in a Docker container from {image} ({engine.host})")
    if mode == "docker":
        raise DevstackError(f"{MODE_VAR}=docker: {why_not}")
    return Choice("local", note=f"{need.what} from local processes: {why_not}")


def say(line: str) -> None:
    print(f"hub-devstack: {line}", file=sys.stderr, flush=True)


def resolve(
    need: Need, mode: Mode | None, environ: Mapping[str, str], engine: Engine, report: Callable[[str], None]
) -> Choice:
    """`choose` with the mode from `HUB_INFRA` unless given; `report` gets the choice's note, if any."""
    choice = choose(need, mode or mode_from_env(environ), environ, engine)
    if choice.note:
        report(choice.note)
    return choice


@contextmanager
def provide(
    need: Need,
    mode: Mode | None,
    report: Callable[[str], None],
    *,
    ready: Callable[[str], None],
    docker: Callable[[str], AbstractContextManager[str]],
    local: Callable[[], AbstractContextManager[str]],
) -> Iterator[str]:
    """Yield the address of a ready `need` from where `mode` (None: `HUB_INFRA`) says; stop what was started.

    `ready` waits for the one the environment names; `docker(image)` and `local()` start one and yield its address.
    """
    choice = resolve(need, mode, os.environ, DockerEngine.from_env(), report)
    if choice.source == "env":
        address = os.environ[need.env_var]
        ready(address)
        yield address
        return
    with docker(choice.image) if choice.source == "docker" else local() as address:
        yield address
