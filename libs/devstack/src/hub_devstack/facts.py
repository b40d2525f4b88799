"""The connection facts of a running stack, as the `.hub/env` file `hubctl`, psql and curl users source."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from hub_common.secret_policy import DEV_MODE_ENV


@dataclass(frozen=True)
class StackFacts:
    hub_url: str
    hub_client_id: str
    hub_client_secret: str
    database_url: str
    kafka_bootstrap_servers: str
    operator_url: str
    rgs_url: str
    operator_client_id: str
    operator_secret: str
    webhook_secret: str
    service_urls: tuple[tuple[str, str], ...] = ()
    kafka_topic_prefix: str = ""
    # A second demo RGS client (cross-client requests are isolated: try them with it).
    hub_second_client_id: str = ""
    hub_second_client_secret: str = ""
    # The schema owner's URL (hub-migrate); DATABASE_URL is hubctl's least-privilege role.
    database_owner_url: str = ""
    # More variables for hubctl and friends (a secured stack: hubctl's Kafka credentials).
    extra_env: tuple[tuple[str, str], ...] = ()
    players: tuple[str, ...] = ()
    currency: str = "EUR"

    def as_env(self) -> dict[str, str]:
        env = {
            "HUB_URL": self.hub_url,
            "HUB_CLIENT_ID": self.hub_client_id,
            "HUB_CLIENT_SECRET": self.hub_client_secret,
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": self.kafka_topic_prefix,
            "OPERATOR_URL": self.operator_url,
            "OPERATOR_CLIENT_ID": self.operator_client_id,
            "OPERATOR_SECRET": self.operator_secret,
            "RGS_URL": self.rgs_url,
            "WEBHOOK_SECRET": self.webhook_secret,
            "HUB_PLAYERS": ",".join(self.players),
            "HUB_CURRENCY": self.currency,
            # A development stack (loopback, generated secrets): hubctl then defaults HUBCTL_ACTOR to the OS user
            # and the secret policy (hub_common.secret_policy) is relaxed. Never set in production.
            DEV_MODE_ENV: "1",
        }
        if self.hub_second_client_id:
            env["HUB_SECOND_CLIENT_ID"] = self.hub_second_client_id
            env["HUB_SECOND_CLIENT_SECRET"] = self.hub_second_client_secret
        for service, url in self.service_urls:
            env[f"HUB_{service.upper().replace('-', '_')}_URL"] = url
        if self.database_owner_url:
            env["DATABASE_OWNER_URL"] = self.database_owner_url
        env.update(self.extra_env)
        return env

    def render_env(self) -> str:
        """`KEY=value` lines, values shell-quoted where needed, so `set -a; . .hub/env` reproduces them exactly."""
        lines = ["# Written by hub-up (make up): connection facts of the running local stack."]
        lines += [f"{key}={shlex.quote(value)}" for key, value in self.as_env().items()]
        return "\n".join(lines) + "\n"

    def write_env(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Holds secrets: readable by the owner only, created that way rather than chmod-ed afterwards.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.render_env())
