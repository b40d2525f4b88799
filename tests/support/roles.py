"""The type of the `role_db_settings` fixture (tests/integration/conftest.py), for fixtures that take it."""

from __future__ import annotations

from typing import Any, Protocol

from hub_common.settings import DatabaseSettings


class RoleDbSettings(Protocol):
    def __call__(self, component: str, **overrides: Any) -> DatabaseSettings: ...
