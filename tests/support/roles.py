"""Types of the fixtures that hand out credentials: database roles (tests/integration/conftest.py) and Kafka
principals on the secured broker (tests/integration/security/conftest.py)."""

from __future__ import annotations

from typing import Any, Protocol

from hub_common.settings import DatabaseSettings, KafkaSettings


class RoleDbSettings(Protocol):
    """`role_db_settings(component, **overrides)`: the component's own role on the test's database."""

    def __call__(self, component: str, **overrides: Any) -> DatabaseSettings: ...


class PrincipalSettings(Protocol):
    """`as_principal(user, mtls=False)`: KafkaSettings authenticating as `user` on the test's topic prefix."""

    def __call__(self, user: str, *, mtls: bool = False) -> KafkaSettings: ...
