"""A real Kafka broker for tests and `make up`.

Order (mode "auto"): `KAFKA_BOOTSTRAP_SERVERS` when set; else the `apache/kafka` image when Docker answers;
else a local broker from Maven Central jars (needs java and mvn). A mode can be forced: "env", "docker", "local".
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from aiokafka.admin import AIOKafkaAdminClient

from hub_common.kafka import ping
from hub_common.settings import KafkaSettings
from hub_devstack.aio import run_sync
from hub_devstack.docker_probe import docker_available
from hub_devstack.errors import DevstackError
from hub_devstack.kafka_jars import JarCache
from hub_devstack.kafka_local import LocalKafka
from hub_devstack.kafka_security import BrokerSecurity
from hub_devstack.paths import find_infra_dir, kafka_cache_dir

Mode = Literal["auto", "env", "docker", "local"]
ENV_VAR = "KAFKA_BOOTSTRAP_SERVERS"

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


@contextmanager
def provide_kafka(mode: Mode = "auto", *, ready_timeout_s: float = 60.0) -> Iterator[str]:
    """Yield bootstrap servers of a ready broker; stop whatever this call started on exit."""
    given = os.environ.get(ENV_VAR)
    if mode == "env" or (mode == "auto" and given):
        if not given:
            raise DevstackError(f"{ENV_VAR} is not set")
        wait_for_kafka(given, timeout_s=ready_timeout_s)
        yield given
    elif mode == "docker" or (mode == "auto" and docker_available()):
        from hub_devstack.kafka_docker import ApacheKafkaContainer  # noqa: PLC0415 - only with Docker

        with ApacheKafkaContainer() as container:
            yield container.get_bootstrap_server()
    else:
        with local_kafka() as bootstrap:
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
