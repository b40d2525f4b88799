"""The whole Hub as local subprocesses: infrastructure, database and migrations, then the six services.

Used by `make up` (hub-up) and the end-to-end test. Every process it starts is stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from hub_common.db_access import ROLE_BY_COMPONENT
from hub_common.kafka_access import BY_COMPONENT, HUBCTL
from hub_common.settings import KafkaSettings
from hub_devstack.aio import run_sync
from hub_devstack.errors import DevstackError, StartupError
from hub_devstack.facts import StackFacts
from hub_devstack.infra import Mode
from hub_devstack.kafka import provide_kafka
from hub_devstack.kafka_security import SecuredKafka, apply_access, secured_kafka
from hub_devstack.postgres import provide_postgres
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.procs import log_tail, terminate_child
from hub_devstack.stack_config import ServiceSpec, StackConfig, check_ports, service_env

__all__ = [
    "RunningService",
    "RunningStack",
    "StackConfig",
    "StackFacts",
    "create_database",
    "run_services",
    "run_stack",
]


@dataclass
class RunningService:
    spec: ServiceSpec
    proc: subprocess.Popen[bytes]
    log: Path
    url: str


def create_database(roles: DatabaseRoles, name: str) -> str:
    """Create `name` (owned by the owner role) if missing, migrate it and apply the grants; returns the owner URL."""
    return run_sync(lambda: roles.create_database(name))


def _start_service(spec: ServiceSpec, config: StackConfig, extra: Mapping[str, str]) -> RunningService:
    log = config.log_dir / f"{spec.name}.log"
    env = {**os.environ, **extra}
    with log.open("wb") as out:
        # Own session: Ctrl-C in the terminal reaches only the launcher, which then stops services in order.
        proc = subprocess.Popen(
            [sys.executable, "-m", spec.module, *spec.args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningService(spec, proc, log, config.url(spec.name))


@contextmanager
def run_services(config: StackConfig, envs: Mapping[str, Mapping[str, str]]) -> Iterator[list[RunningService]]:
    """Start `config.services` in order with their extra env, yield once all are ready, stop all on exit."""
    config.log_dir.mkdir(parents=True, exist_ok=True)
    (config.state_dir / "reconciler").mkdir(exist_ok=True)
    services: list[RunningService] = []
    try:
        for spec in config.services:
            services.append(_start_service(spec, config, envs[spec.name]))
        wait_ready(services, timeout_s=config.ready_timeout_s)
        yield services
    finally:
        stop_services(services, grace_s=config.stop_grace_s)


def _is_ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/ready", timeout=2) as response:  # noqa: S310 - our own loopback URL
            return int(response.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def wait_ready(services: list[RunningService], *, timeout_s: float) -> None:
    """Poll every service's GET /ready; fail on the first that exits or is not ready in time."""
    pending = list(services)
    deadline = time.monotonic() + timeout_s
    while pending:
        for service in list(pending):
            code = service.proc.poll()
            if code is not None:
                raise StartupError(f"service {service.spec.name}", f"exited with code {code}", log_tail(service.log))
            if _is_ready(service.url):
                pending.remove(service)
        if not pending:
            return
        if time.monotonic() >= deadline:
            late = pending[0]
            raise StartupError(
                f"service {late.spec.name}",
                f"GET {late.url}/ready did not answer 200 within {timeout_s:.0f} s",
                log_tail(late.log),
            )
        time.sleep(0.5)


def stop_services(services: list[RunningService], *, grace_s: float) -> None:
    """SIGTERM all (gateway first: it takes traffic), wait up to `grace_s` in total, then SIGKILL the rest."""
    for service in reversed(services):
        if service.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                service.proc.terminate()
    deadline = time.monotonic() + grace_s
    for service in reversed(services):
        terminate_child(service.proc, grace_s=max(0.1, deadline - time.monotonic()))


def exited(services: list[RunningService]) -> list[RunningService]:
    return [s for s in services if s.proc.poll() is not None]


@contextmanager
def _kafka(config: StackConfig, mode: Mode | None) -> Iterator[tuple[str, SecuredKafka | None]]:
    if config.secured_kafka is not None:
        yield config.secured_kafka.bootstrap, config.secured_kafka
    elif config.secure_kafka:
        if config.kafka_bootstrap:
            raise DevstackError("a secured stack starts its own broker: do not give it KAFKA_BOOTSTRAP_SERVERS")
        with secured_kafka() as secured:
            yield secured.bootstrap, secured
    elif config.kafka_bootstrap:
        yield config.kafka_bootstrap, None
    else:
        with provide_kafka(mode) as bootstrap:
            yield bootstrap, None


def _secure_topics(config: StackConfig, secured: SecuredKafka) -> None:
    """The admin step of a secured stack: topics (with the services' partition count) and every ACL."""
    default = KafkaSettings.model_fields["partitions"].default
    partitions = int(config.extra_env.get("KAFKA_PARTITIONS", default))
    admin = secured.admin_settings(topic_prefix=config.topic_prefix, partitions=partitions)
    run_sync(lambda: apply_access(admin))


@contextmanager
def _postgres(config: StackConfig, mode: Mode | None) -> Iterator[str]:
    if config.admin_database_url:
        yield config.admin_database_url
    else:
        with provide_postgres(mode) as url:
            yield url


@dataclass
class RunningStack:
    facts: StackFacts
    services: list[RunningService]
    db_roles: DatabaseRoles


@contextmanager
def run_stack(config: StackConfig, *, infra_mode: Mode | None = None) -> Iterator[RunningStack]:
    """Start everything, yield once every service is ready, stop everything on exit (also on failure).

    `infra_mode` None: `HUB_INFRA` decides where Kafka and PostgreSQL come from.
    """
    check_ports(config)
    with ExitStack() as stack:
        bootstrap, secured = stack.enter_context(_kafka(config, infra_mode))
        admin_url = stack.enter_context(_postgres(config, infra_mode))
        roles = config.db_roles
        if roles is None:
            roles = DatabaseRoles.generate(admin_url)
            run_sync(roles.provision)
        database = config.database_name
        owner_url = create_database(roles, database)
        if secured is not None:
            _secure_topics(config, secured)
        envs = {}
        for spec in config.services:
            component = spec.name if spec.name in ROLE_BY_COMPONENT else None
            envs[spec.name] = service_env(
                spec,
                config,
                kafka_bootstrap=bootstrap,
                database_url=roles.component_url(component, database) if component else None,
                kafka_env=secured.env_for(BY_COMPONENT[component].user) if secured and component else None,
            )
        services = stack.enter_context(run_services(config, envs))
        s = config.secrets
        facts = StackFacts(
            hub_url=config.url("gateway"),
            hub_client_id=s.client_id,
            hub_client_secret=s.client_secret,
            # hubctl's role: what an SRE at this shell may do; the owner's URL is for migrations only.
            database_url=roles.component_url("hubctl", database),
            database_owner_url=owner_url,
            kafka_bootstrap_servers=bootstrap,
            operator_url=config.url("mock-operator"),
            rgs_url=config.url("mock-rgs"),
            operator_client_id=s.operator_client_id,
            operator_secret=s.operator_secret,
            webhook_secret=s.webhook_secret,
            service_urls=tuple((spec.name, config.url(spec.name)) for spec in config.services),
            kafka_topic_prefix=config.topic_prefix,
            hub_second_client_id=s.second_client_id if s.second_client_secret else "",
            hub_second_client_secret=s.second_client_secret,
            extra_env=tuple(secured.env_for(HUBCTL.user).items()) if secured else (),
        )
        yield RunningStack(facts, services, roles)
