from __future__ import annotations

import re

import pytest

from hub_common.db import load_migrations
from hub_common.settings import DatabaseSettings, KafkaSettings


def test_migrations_are_numbered_without_gaps_and_transactional() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    for m in migrations:
        # Each file runs inside the runner's transaction: it must not manage transactions itself.
        assert not re.search(r"^\s*(BEGIN|COMMIT)\s*;", m.sql, re.IGNORECASE | re.MULTILINE), m.name


def test_stack_wide_names_work_and_service_prefix_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker:9092")
    monkeypatch.setenv("KAFKA_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:pw@db/hub")
    kafka = KafkaSettings()
    assert kafka.bootstrap_servers == "broker:9092"
    assert kafka.topic("hub.commands") == "t1.hub.commands"
    database = DatabaseSettings()
    assert "pw" not in repr(database)
    assert database.url.get_secret_value() == "postgresql://u:pw@db/hub"
