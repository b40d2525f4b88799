"""A single-node KRaft broker run from the cached Maven jars, on free ports, with a throwaway data dir."""

from __future__ import annotations

import base64
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from hub_devstack.errors import StartupError
from hub_devstack.kafka_jars import JarCache
from hub_devstack.procs import (
    LOOPBACK,
    free_port,
    require_tool,
    start_on_free_ports,
    terminate_child,
    wait_for_log_line,
)

if TYPE_CHECKING:
    from hub_devstack.kafka_security import BrokerSecurity

READY_LINE = "Kafka Server started"
JVM_OPTS = (
    "-Xms128m", "-Xmx512m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
)  # fmt: skip


def server_properties(
    *, port: int, controller_port: int, log_dir: Path, host: str = LOOPBACK, secured: Mapping[str, str] | None = None
) -> str:
    """A small test broker: static voters (so `format` needs no --standalone), RF 1, few threads, 16 MiB cleaner.

    `secured`: listener and authorizer properties (hub_devstack.kafka_security) replacing the PLAINTEXT ones.
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@{host}:{controller_port}",
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        # Services create their topics explicitly; a typo must fail rather than create a stray topic.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        # The default 128 MiB on-heap dedupe buffer alone would need most of a 512 MiB heap.
        "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
    }
    props.update(secured or {})
    return "".join(f"{key}={value}\n" for key, value in props.items())


def random_cluster_id() -> str:
    """Kafka's Uuid text form (url-safe base64, no padding), never starting with '-' so the CLI accepts it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


class LocalKafka:
    """Owns one broker process and its temp dir; `start()` returns once the broker logged its readiness line."""

    def __init__(
        self,
        jars: JarCache,
        log4j_config: Path,
        *,
        port: int | None = None,
        controller_port: int | None = None,
        start_timeout_s: float = 90.0,
        security: BrokerSecurity | None = None,
    ) -> None:
        self._jars = jars
        self._security = security
        # The mutual-TLS listener's address when secured (`bootstrap` is then the SASL_SSL one).
        self.mtls_bootstrap = ""
        self._log4j = log4j_config
        self._port = port
        self._controller_port = controller_port
        self._timeout = start_timeout_s
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.bootstrap = ""

    @property
    def log_path(self) -> Path | None:
        return self._dir / "kafka.log" if self._dir else None

    def start(self) -> str:
        chosen_here = self._port is None and self._controller_port is None
        return start_on_free_ports(self._start_once, ports_chosen_here=chosen_here)

    def _start_once(self) -> str:
        java = require_tool("java", "install a JDK >= 17 (e.g. `apt-get install openjdk-17-jre-headless`)")
        workdir = Path(tempfile.mkdtemp(prefix="hub-kafka-"))
        self._dir = workdir
        port = self._port or free_port()
        controller_port = self._controller_port or free_port()
        mtls_port = free_port() if self._security else 0
        secured, scram_users = None, []
        if self._security is not None:
            try:
                self._security.prepare(workdir)
            except BaseException:
                self.stop()
                raise
            secured = self._security.listener_properties(
                host=LOOPBACK, port=port, mtls_port=mtls_port, controller_port=controller_port
            )
            scram_users = self._security.format_args()
        config = workdir / "server.properties"
        config.write_text(
            server_properties(port=port, controller_port=controller_port, log_dir=workdir / "data", secured=secured)
        )
        config.chmod(0o600)
        log = workdir / "kafka.log"
        opts = [*JVM_OPTS, f"-Dlog4j2.configurationFile={self._log4j}", f"-Dkafka.logs.dir={workdir / 'logs'}"]
        base = [java, *opts, "-cp", self._jars.classpath]
        fmt = [*base, "kafka.tools.StorageTool", "format", "-t", random_cluster_id(), "-c", str(config)]
        done = subprocess.run(
            [*fmt, "--ignore-formatted", *scram_users], capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            self.stop()
            raise StartupError("Kafka storage format", f"exit {done.returncode}", (done.stdout + done.stderr)[-3000:])
        with log.open("wb") as out:
            self._proc = subprocess.Popen(
                [*base, "kafka.Kafka", str(config)], stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            wait_for_log_line(self._proc, log, READY_LINE, what="Kafka broker", timeout_s=self._timeout)
        except BaseException:
            self.stop()  # the StartupError already carries the log tail; the temp dir goes
            raise
        self.bootstrap = f"{LOOPBACK}:{port}"
        self.mtls_bootstrap = f"{LOOPBACK}:{mtls_port}" if mtls_port else ""
        return self.bootstrap

    def stop(self) -> None:
        if self._proc is not None:
            # A controlled shutdown of a single KRaft node takes a few seconds; then the data dir is disposable.
            terminate_child(self._proc, grace_s=20)
            self._proc = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
