"""A whole Hub of a test's own on the session's broker and cluster: free ports, its own database and topic prefix
(so its records and rows meet no other test's), the session's database roles (cluster-wide: a stack must not give
them new passwords), webhook retries shortened by configuration."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.procs import free_port
from hub_devstack.stack_config import SERVICES, StackConfig


def own_stack(
    state_dir: Path,
    name: str,
    *,
    admin_database_url: str,
    db_roles: DatabaseRoles,
    extra_env: Mapping[str, str],
    **fields: Any,
) -> StackConfig:
    """`fields`: the rest of the StackConfig (`kafka_bootstrap` or `secured_kafka`, budgets, timeouts...)."""
    tag = uuid.uuid4().hex[:8]
    return StackConfig(
        state_dir=state_dir,
        ports={spec.name: free_port() for spec in SERVICES},
        admin_database_url=admin_database_url,
        db_roles=db_roles,
        database_name=f"hub_{name}_{tag}",
        topic_prefix=f"{name}{tag}.",
        extra_env={"DISPATCHER_RETRY_SCHEDULE_MS": "[200, 400]", **extra_env},
        **fields,
    )
