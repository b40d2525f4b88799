"""The Kafka and PostgreSQL containers of docker mode, and the clean-up after a run that could not clean up.

testcontainers' reaper (ryuk) removes a session's containers when the test process dies, but it is itself a
container whose image (testcontainers/ryuk) must be pulled, which is impossible without a registry, and this
project's machines cannot build it either (its Go module is not served by their module proxy). So the reaper is
disabled (unless TESTCONTAINERS_RYUK_DISABLED is set explicitly) and the devstack reaps for itself:
- every container it starts is stopped and removed by the `with` block that started it;
- every container it starts carries owner labels (host, boot id, process id), and each docker-mode start first
  removes the containers whose owner process is gone (a killed or crashed run);
- `python -m hub_devstack.docker_containers` does that sweep on demand (`make test-docker` runs it at the end).
"""

from __future__ import annotations

import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from testcontainers.community.postgres import PostgresContainer
from testcontainers.core.config import testcontainers_config

from hub_devstack.docker_engine import DockerEngine
from hub_devstack.kafka_docker import ApacheKafkaContainer
from hub_devstack.postgres_local import SERVER_SETTINGS

OWNER = "org.integration-hub.devstack"
HOST_LABEL = f"{OWNER}.host"
BOOT_LABEL = f"{OWNER}.boot-id"
PID_LABEL = f"{OWNER}.pid"
RYUK_VAR = "TESTCONTAINERS_RYUK_DISABLED"


def boot_id(path: Path = Path("/proc/sys/kernel/random/boot_id")) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def owner_labels() -> dict[str, str]:
    return {OWNER: "1", HOST_LABEL: socket.gethostname(), BOOT_LABEL: boot_id(), PID_LABEL: str(os.getpid())}


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def is_orphan(labels: Mapping[str, str], *, host: str, boot: str, alive: Callable[[int], bool]) -> bool:
    """True when the process that started the container is gone. Containers of another host (a shared remote
    engine) are never judged: their owner cannot be checked from here."""
    if labels.get(HOST_LABEL) != host:
        return False
    if labels.get(BOOT_LABEL) != boot:
        return True  # started before this machine's last boot
    try:
        pid = int(labels.get(PID_LABEL, ""))
    except ValueError:
        return False
    return not alive(pid)


def sweep_orphans(engine: DockerEngine) -> list[str]:
    """Remove the devstack's containers whose owner process is gone; returns their short ids."""
    host, boot = socket.gethostname(), boot_id()
    removed = []
    for container in engine.containers(OWNER):
        if is_orphan(container.get("Labels") or {}, host=host, boot=boot, alive=process_alive):
            engine.remove_container(str(container["Id"]))
            removed.append(str(container["Id"])[:12])
    return removed


def _without_reaper() -> None:
    if RYUK_VAR not in os.environ:
        testcontainers_config.ryuk_disabled = True


@contextmanager
def kafka_in_docker(image: str) -> Iterator[str]:
    """A broker container from `image` (the official one or infra/kafka's); yields its bootstrap servers."""
    _without_reaper()
    sweep_orphans(DockerEngine.from_env())
    with ApacheKafkaContainer(image, labels=owner_labels()) as container:
        yield container.get_bootstrap_server()


@contextmanager
def postgres_in_docker(image: str) -> Iterator[str]:
    """A cluster container from `image` (the official postgres image or infra/postgres's: same variables), tuned
    like the local test cluster; yields a superuser URL to database `postgres`."""
    _without_reaper()
    sweep_orphans(DockerEngine.from_env())
    # A password the services' secret policy accepts, as the local cluster's (hub_devstack.postgres_local).
    password = secrets.token_urlsafe(32)
    container = PostgresContainer(image, username="postgres", password=password, dbname="postgres")
    command = ["postgres"]
    for setting in SERVER_SETTINGS:
        command += ["-c", setting]
    container.with_command(command)
    container.with_kwargs(labels=owner_labels())
    with container:
        yield container.get_connection_url(driver=None)


def main() -> int:
    """`python -m hub_devstack.docker_containers`: remove the devstack's containers left by dead processes."""
    engine = DockerEngine.from_env()
    if not engine.answers():
        print(f"no Docker engine answers at {engine.host}; nothing to sweep")
        return 0
    removed = sweep_orphans(engine)
    print(f"removed {len(removed)} orphaned devstack container(s){': ' + ', '.join(removed) if removed else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
