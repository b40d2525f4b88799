"""Kafka authentication and authorization on the secured broker: who gets in, and who may write and read what.

The expected rights below are written out from the project's decision (one principal per component, topics
pre-created, `<topic>.dlq` written by whoever consumes `<topic>`), independently of hub_common.kafka_access:
the broker, configured from that module, must enforce exactly them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from pydantic import BaseModel, SecretStr

from hub_common.envelope import wrap
from hub_common.errors import FatalError, KafkaUnavailableError
from hub_common.kafka import (
    COMMANDS,
    TRANSACTIONS,
    KafkaConsumer,
    KafkaProducer,
    client_options,
    ensure_topics,
    hub_topics,
)
from hub_common.kafka_access import PRINCIPALS, Principal
from hub_common.settings import KafkaSettings
from hub_devstack.kafka_security import ADMIN_USER, SecuredKafka
from hub_devstack.tls import CertificateAuthority
from support.roles import PrincipalSettings

RETRY = ["hub.webhooks.retry.1", "hub.webhooks.retry.2", "hub.webhooks.retry.1.dlq", "hub.webhooks.retry.2.dlq"]
EXPECTED_WRITES = {
    "gateway": {"hub.commands", "hub.transactions.dlq"},
    "ledger": {"hub.transactions", "hub.commands.dlq"},
    "webhook-dispatcher": {*RETRY, "hub.webhooks.dlq", "hub.transactions.dlq"},
    "reconciler": {
        "operator.transactions", "hub.reconciliation.mismatches", "hub.transactions.dlq", "operator.transactions.dlq",
    },
    "hubctl": {"hub.commands", *RETRY},
}  # fmt: skip


class Probe(BaseModel):
    n: int


async def _writable(settings: KafkaSettings, topics: list[str]) -> set[str]:
    """The topics `settings`' principal can produce to; a refusal is a FatalError, not a retry."""
    producer = KafkaProducer(settings, client_id="it-security")
    await producer.start()
    allowed = set()
    try:
        for topic in topics:
            try:
                await producer.send(topic, wrap(Probe(n=1), correlation_id="it-security"), key="k")
            except FatalError as exc:
                assert "AuthorizationFailed" in str(exc)
            else:
                allowed.add(topic)
    finally:
        await producer.stop()
    return allowed


@pytest.mark.parametrize("principal", PRINCIPALS, ids=lambda p: p.component)
async def test_each_principal_writes_exactly_its_topics(as_principal: PrincipalSettings, principal: Principal) -> None:
    topics = hub_topics(retry_tiers=2)
    assert await _writable(as_principal(principal.user), topics) == EXPECTED_WRITES[principal.component]


async def test_the_dispatchers_principal_cannot_put_a_command_on_hub_commands(as_principal: PrincipalSettings) -> None:
    producer = KafkaProducer(as_principal("hub-webhook-dispatcher"), client_id="it-security")
    await producer.start()
    try:
        with pytest.raises(FatalError, match=r"TopicAuthorizationFailedError\('s\w+\.hub\.commands'\)"):
            await producer.send(COMMANDS, wrap(Probe(n=1), correlation_id="it-security"), key="player")
    finally:
        await producer.stop()


async def test_mutual_tls_principal_has_the_same_rights(as_principal: PrincipalSettings) -> None:
    ledger = as_principal("hub-ledger", mtls=True)
    assert ledger.security_protocol == "SSL" and ledger.sasl_username is None
    assert await _writable(ledger, [TRANSACTIONS, COMMANDS]) == {TRANSACTIONS}


async def _refused(settings: KafkaSettings) -> KafkaUnavailableError:
    producer = KafkaProducer(settings.model_copy(update={"request_timeout_ms": 5_000}), client_id="it-intruder")
    try:
        with pytest.raises(KafkaUnavailableError) as caught:
            await producer.start()
    finally:
        await producer.stop()
    return caught.value


async def test_clients_without_valid_credentials_are_refused(
    secured_broker: SecuredKafka, as_principal: PrincipalSettings, caplog: pytest.LogCaptureFixture
) -> None:
    await _refused(KafkaSettings(bootstrap_servers=secured_broker.bootstrap))  # no TLS, no login
    # TLS and a known user, but not its password: the handshake succeeds, authentication does not.
    wrong = as_principal("hub-gateway").model_copy(update={"sasl_password": SecretStr("not-the-password" * 3)})
    with caplog.at_level(logging.ERROR):
        await _refused(wrong)
    assert "SaslAuthenticationFailed" in caplog.text


async def _tls_refused(secured_broker: SecuredKafka, context: ssl.SSLContext) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=secured_broker.mtls_bootstrap, security_protocol="SSL", ssl_context=context
    )
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()


async def test_the_mutual_tls_listener_wants_a_certificate_from_our_ca(
    secured_broker: SecuredKafka, tmp_path: Path
) -> None:
    # No client certificate at all.
    await _tls_refused(secured_broker, ssl.create_default_context(cafile=str(secured_broker.cafile)))
    # A certificate naming a real principal, signed by another CA.
    forged = CertificateAuthority(tmp_path / "other-ca").issue("hub-ledger")
    context = ssl.create_default_context(cafile=str(secured_broker.cafile))
    context.load_cert_chain(str(forged.certfile), str(forged.keyfile))
    await _tls_refused(secured_broker, context)


async def test_a_principal_cannot_read_a_topic_it_has_no_right_to(
    secured_broker: SecuredKafka, as_principal: PrincipalSettings, caplog: pytest.LogCaptureFixture
) -> None:
    admin = secured_broker.admin_settings(topic_prefix=as_principal("hub-ledger").topic_prefix)
    producer = KafkaProducer(admin, client_id="it-admin")
    await producer.start()
    try:
        await producer.send(COMMANDS, wrap(Probe(n=7), correlation_id="it-security"), key="player")
    finally:
        await producer.stop()
    topic = admin.topic(COMMANDS)
    assert await _read_one(as_principal("hub-ledger"), topic) is not None
    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        assert await _read_one(as_principal("hub-webhook-dispatcher"), topic) is None
    assert f"Topic {topic} is not authorized" in caplog.text


async def _read_one(settings: KafkaSettings, topic: str, *, wait_s: float = 3.0) -> bytes | None:
    """The first record of partition 0 or 1 within `wait_s` (no consumer group), else None."""
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0), TopicPartition(topic, 1)])
        deadline = asyncio.get_running_loop().time() + wait_s
        while asyncio.get_running_loop().time() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                if messages:
                    value: bytes = messages[0].value
                    return value
        return None
    finally:
        await consumer.stop()


async def test_a_principal_cannot_join_another_components_consumer_group(as_principal: PrincipalSettings) -> None:
    dispatcher = as_principal("hub-webhook-dispatcher")
    dlq = KafkaProducer(dispatcher, client_id="it-security")
    await dlq.start()
    consumer = KafkaConsumer(
        dispatcher, [TRANSACTIONS], group_id=f"{dispatcher.topic_prefix}hub-ledger", dlq_producer=dlq, client_id="it"
    )
    try:
        with pytest.raises(FatalError, match="GroupAuthorizationFailedError"):
            await consumer.start()
            await consumer.getmany(timeout_ms=5_000)
    finally:
        await consumer.stop()
        await dlq.stop()


async def test_services_do_not_create_topics_on_a_secured_cluster(
    secured_broker: SecuredKafka, as_principal: PrincipalSettings
) -> None:
    ledger = as_principal("hub-ledger")
    assert await ensure_topics(ledger, [COMMANDS, TRANSACTIONS]) == [ledger.topic(COMMANDS), ledger.topic(TRANSACTIONS)]
    elsewhere = ledger.model_copy(update={"topic_prefix": "nowhere."})
    with pytest.raises(FatalError, match=r"topics missing .*nowhere\.hub\.commands.*KAFKA_CREATE_TOPICS=false"):
        await ensure_topics(elsewhere, [COMMANDS, TRANSACTIONS])
    # Even asked to create, a service principal holds no Create right on a Hub topic.
    creating = elsewhere.model_copy(update={"create_topics": True})
    with pytest.raises(FatalError, match="AuthorizationFailed"):
        await ensure_topics(creating, [COMMANDS])
    assert ADMIN_USER in secured_broker.passwords  # the one principal that creates them
