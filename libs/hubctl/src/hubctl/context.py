"""Connection facts for hubctl, from the environment (`source .hub/env` after `make up`)."""

from __future__ import annotations

import getpass

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from hub_common.settings import DatabaseSettings, KafkaSettings


def _default_actor() -> str:
    try:
        return f"hubctl:{getpass.getuser()}"
    except (KeyError, OSError):
        return "hubctl:unknown"


class HubctlSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    hub_url: str = "http://127.0.0.1:3000"
    operator_url: str = "http://127.0.0.1:3001"
    rgs_url: str = "http://127.0.0.1:3002"
    ledger_url: str = "http://127.0.0.1:3010"
    dispatcher_url: str = "http://127.0.0.1:3011"
    reconciler_url: str = "http://127.0.0.1:3012"
    operator_client_id: str = "integration-hub"
    operator_secret: SecretStr = SecretStr("")
    # Who runs the command: recorded in audit rows of manual interventions.
    hubctl_actor: str = Field(default_factory=_default_actor)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)

    def service_urls(self) -> dict[str, str]:
        return {
            "gateway": self.hub_url,
            "ledger": self.ledger_url,
            "webhook-dispatcher": self.dispatcher_url,
            "reconciler": self.reconciler_url,
            "mock-operator": self.operator_url,
            "mock-rgs": self.rgs_url,
        }
