"""A real Kafka broker for tests and `make up`, from where `HUB_INFRA` says (see hub_devstack.infra):
`KAFKA_BOOTSTRAP_SERVERS`, a container from `HUB_KAFKA_IMAGE`, or a local broker from Maven Central jars.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from hub_common.kafka import ping
from hub_common.settings import KafkaSettings
from hub_devstack.aio import run_sync
from hub_devstack.errors import DevstackError
from hub_devstack.infra import KAFKA, Mode, provide, say
from hub_devstack.kafka_jars import JarCache
from hub_devstack.kafka_local import LocalKafka
from hub_devstack.kafka_security import BrokerSecurity
from hub_devstack.paths import find_infra_dir, kafka_cache_dir

ENV_VAR = KAFKA.env_var

__all__ = ["ENV_VAR", "LocalKafka", "Mode", "delete_topics", "local_kafka", "provide_kafka", "wait_for_kafka"]


def wait_for_kafka(bootstrap: str, *, timeout_s: float = 60.0) -> None:
    """Retry an admin metadata request until the cluster answers (a broker started by a script may lag)."""
    settings = KafkaSettings(bootstrap_servers=bootstrap)
    deadline = time.monotonic() + timeout_s
    while not run_sync(lambda: ping(settings)):
        if time.monotonic() >= deadline:
            raise DevstackError(f"Kafka at {bootstrap} did not answer a metadata request within {timeout_s:.0f} s")
        time.sleep(1.0)


def local_kafka(
    *, cache_dir: Path | None = None, infra_dir: Path | None = None, security: BrokerSecurity | None = None
) -> LocalKafka:
    """A not yet started broker from the jar cache (fetched now if the cache is incomplete); `security`: secured
    listeners and ACLs (hub_devstack.kafka_security.secured_kafka)."""
    infra = infra_dir or find_infra_dir()
    jars = JarCache(cache_dir or kafka_cache_dir())
    jars.ensure(infra / "kafka" / "pom.xml")
    return LocalKafka(jars, infra / "kafka" / "log4j2.properties", security=security)


def _in_docker(image: str) -> AbstractContextManager[str]:
    # testcontainers (and the Docker SDK) are imported only when Docker is used.
    from hub_devstack.docker_containers import kafka_in_docker  # noqa: PLC0415

    return kafka_in_docker(image)


@contextmanager
def provide_kafka(
    mode: Mode | None = None, *, ready_timeout_s: float = 60.0, report: Callable[[str], None] = say
) -> Iterator[str]:
    """Yield bootstrap servers of a ready broker; stop whatever this call started on exit.

    `mode` None: `HUB_INFRA` decides. `report` gets the one line saying which container runs, or why auto mode
    did not use Docker.
    """

    def ready(bootstrap: str) -> None:
        wait_for_kafka(bootstrap, timeout_s=ready_timeout_s)

    with provide(KAFKA, mode, report, ready=ready, docker=_in_docker, local=local_kafka) as bootstrap:
        yield bootstrap


async def delete_topics(bootstrap: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix` (a test's or a benchmark's); returns their names."""
    if not prefix:
        raise DevstackError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    try:
        await admin.start()
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names, timeout_ms=15_000)
        return names
    finally:
        await admin.close()
