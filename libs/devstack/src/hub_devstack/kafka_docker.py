"""The `apache/kafka` image (or infra/kafka's) under testcontainers (its KafkaContainer drives Confluent images only).

The advertised listener must name the host port Docker mapped, known only after the container started, so the
container's command waits for a start script that we copy in afterwards (testcontainers-java's approach).
"""

from __future__ import annotations

import re

from testcontainers.core.container import DockerContainer
from testcontainers.core.wait_strategies import LogMessageWaitStrategy

from hub_devstack.kafka_local import READY_LINE

START_SCRIPT = "/tmp/hub_kafka_start.sh"  # noqa: S108 - a path inside the container
CLIENT_PORT = 9092

# When any KAFKA_* server variable is set the image builds server.properties from the environment alone.
ENV = {
    "CLUSTER_ID": "4L6g3nShT-eMCtK--X86sw",
    "KAFKA_NODE_ID": "1",
    "KAFKA_PROCESS_ROLES": "broker,controller",
    "KAFKA_LISTENERS": "PLAINTEXT://:9092,BROKER://:9093,CONTROLLER://:9094",
    "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "KAFKA_INTER_BROKER_LISTENER_NAME": "BROKER",
    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
    "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9094",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
    "KAFKA_LOG_CLEANER_DEDUPE_BUFFER_SIZE": str(16 * 1024 * 1024),
    "KAFKA_HEAP_OPTS": "-Xms256m -Xmx512m",
}


class ApacheKafkaContainer(DockerContainer):
    """The official image, or infra/kafka's (same variables, same start script path)."""

    def __init__(self, image: str, *, startup_timeout_s: int = 90, labels: dict[str, str] | None = None) -> None:
        super().__init__(image)
        self._startup_timeout_s = startup_timeout_s
        self.with_exposed_ports(CLIENT_PORT)
        if labels:
            self.with_kwargs(labels=labels)
        for key, value in ENV.items():
            self.with_env(key, value)
        self.with_command(["sh", "-c", f"while [ ! -f {START_SCRIPT} ]; do sleep 0.1; done; exec sh {START_SCRIPT}"])

    def start(self) -> ApacheKafkaContainer:
        super().start()
        host, port = self.get_container_host_ip(), self.get_exposed_port(CLIENT_PORT)
        script = (
            "#!/bin/bash\n"
            f"export KAFKA_ADVERTISED_LISTENERS=PLAINTEXT://{host}:{port},BROKER://$(hostname):9093\n"
            "exec /etc/kafka/docker/run\n"
        )
        self.copy_into_container(script.encode(), START_SCRIPT, mode=0o755)
        waiter = LogMessageWaitStrategy(re.compile(re.escape(READY_LINE)))
        waiter.with_startup_timeout(self._startup_timeout_s)
        waiter.wait_until_ready(self)
        return self

    def get_bootstrap_server(self) -> str:
        return f"{self.get_container_host_ip()}:{self.get_exposed_port(CLIENT_PORT)}"
