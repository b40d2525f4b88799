"""Kafka security settings, the client arguments built from them, and the access matrix's consistency."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from hub_common.errors import FatalError
from hub_common.kafka import (
    COMMANDS,
    MISMATCHES,
    OPERATOR_TRANSACTIONS,
    TRANSACTIONS,
    WEBHOOKS_DLQ,
    client_options,
    hub_topics,
    ssl_context,
)
from hub_common.kafka_access import (
    DISPATCHER_GROUP,
    LEDGER_GROUP,
    PRINCIPALS,
    RECONCILER_APP_ID,
    Grant,
)
from hub_common.settings import KafkaSettings
from hub_devstack.tls import CertificateAuthority
from hub_dispatcher.settings import DispatcherSettings
from hub_ledger.settings import LedgerSettings
from hub_reconciler.settings import ReconcilerSettings
from hub_reconciler.stream import JOIN_TOPICS, broker_credentials

PASSWORD = SecretStr("Zq8vN3kLp0Wm7Rt2Yx5Bc9Hd4Jf6Gs1A")


def test_plaintext_is_the_default_and_takes_no_credentials() -> None:
    assert client_options(KafkaSettings()) == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
        "ssl_context": None,
    }
    with pytest.raises(ValidationError, match="security_protocol is PLAINTEXT"):
        KafkaSettings(sasl_username="hub-ledger", sasl_password=PASSWORD)


def test_sasl_ssl_needs_a_user_and_a_password() -> None:
    with pytest.raises(ValidationError, match="SASL_SSL needs sasl_username and sasl_password"):
        KafkaSettings(security_protocol="SASL_SSL", sasl_username="hub-ledger")


def test_mutual_tls_needs_a_certificate_and_no_sasl() -> None:
    with pytest.raises(ValidationError, match="SSL \\(mutual TLS\\) needs ssl_certfile"):
        KafkaSettings(security_protocol="SSL")
    with pytest.raises(ValidationError, match="use SASL_SSL"):
        KafkaSettings(security_protocol="SSL", ssl_certfile=Path("c.pem"), sasl_username="u", sasl_password=PASSWORD)


def test_environment_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "hub-ledger")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", PASSWORD.get_secret_value())
    monkeypatch.setenv("KAFKA_SSL_CAFILE", str(tmp_path / "ca.pem"))
    monkeypatch.setenv("KAFKA_CREATE_TOPICS", "false")
    monkeypatch.setenv("LEDGER_KAFKA__SASL_USERNAME", "hub-ledger-b")  # one service's override
    monkeypatch.setenv("LEDGER_OPERATOR__SECRET", PASSWORD.get_secret_value())
    kafka = LedgerSettings().kafka
    assert (kafka.security_protocol, kafka.sasl_username, kafka.create_topics) == ("SASL_SSL", "hub-ledger-b", False)
    assert kafka.ssl_cafile == tmp_path / "ca.pem"
    assert "Zq8v" not in repr(kafka)


def test_sasl_and_tls_reach_every_client_and_faust(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    settings = KafkaSettings(
        security_protocol="SASL_SSL", sasl_username="hub-reconciler", sasl_password=PASSWORD, ssl_cafile=ca.certfile
    )
    options = client_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "hub-reconciler",
        PASSWORD.get_secret_value(),
    )
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    credentials = broker_credentials(settings)
    assert (credentials.username, credentials.mechanism.value, credentials.protocol.value) == (
        "hub-reconciler",
        "SCRAM-SHA-512",
        "SASL_SSL",
    )


def test_mutual_tls_loads_the_client_certificate(tmp_path: Path) -> None:
    ca = CertificateAuthority(tmp_path)
    cert = ca.issue("hub-ledger")
    settings = KafkaSettings(
        security_protocol="SSL", ssl_cafile=ca.certfile, ssl_certfile=cert.certfile, ssl_keyfile=cert.keyfile
    )
    assert isinstance(ssl_context(settings), ssl.SSLContext)
    assert broker_credentials(settings).protocol.value == "SSL"
    missing = settings.model_copy(update={"ssl_keyfile": tmp_path / "absent.key"})
    with pytest.raises(FatalError, match="cannot load the Kafka TLS files"):
        ssl_context(missing)


def test_every_topic_the_services_use_is_created_by_the_admin_step() -> None:
    names = hub_topics(retry_tiers=7)
    used = {COMMANDS, TRANSACTIONS, WEBHOOKS_DLQ, OPERATOR_TRANSACTIONS, MISMATCHES, *JOIN_TOPICS}
    assert used <= set(names)
    assert "hub.webhooks.retry.7" in names and "hub.webhooks.retry.7.dlq" in names
    assert "hub.webhooks.dlq.dlq" not in names


def test_the_matrix_names_the_services_default_groups() -> None:
    assert LedgerSettings(operator={"secret": PASSWORD}).group_id == LEDGER_GROUP
    assert DispatcherSettings().consumer_group == DISPATCHER_GROUP
    assert ReconcilerSettings(operator={"secret": PASSWORD}).app_id == RECONCILER_APP_ID


def test_no_service_may_create_a_hub_topic_and_principals_are_distinct() -> None:
    creators = [(p.component, g) for p in PRINCIPALS for g in p.grants if "Create" in g.operations]
    assert creators == [
        ("reconciler", Grant("topic", "hub-reconciler-", ("Create", "Read", "Write", "Describe"), "prefix"))
    ]
    assert len({p.user for p in PRINCIPALS}) == len(PRINCIPALS)


def test_a_topic_prefix_scopes_every_grant_but_wildcards() -> None:
    (hubctl,) = [p for p in PRINCIPALS if p.component == "hubctl"]
    scoped = hubctl.with_prefix("t1.")
    assert {g.name for g in scoped.grants} == {
        "t1.hub.commands",
        "t1.hub.webhooks.retry.",
        "t1.hub.",
        "t1.operator.",
        "*",
        # The groups `recovery apply` moves back.
        "t1.hub-ledger",
        "t1.hub-dispatcher",
        "t1.hub-reconciler",
    }
