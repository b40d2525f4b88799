"""The one Kafka adapter: topic names, topic creation, an idempotent producer and a manual-commit consumer.

aiokafka exceptions never leave this module: they become `KafkaUnavailableError` (retryable) or `FatalError`.
A record whose value is not a valid envelope goes to `<topic>.dlq` with the reason, and consumption carries on.
Services use `KafkaConsumer`'s own methods (pause, resume, assignment, seek, a rebalance listener), never the
aiokafka client under it; `TopicPartition` is re-exported from here for them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    UnsupportedVersionError,
)

from hub_common.envelope import Envelope, EnvelopeError, decode
from hub_common.errors import FatalError, KafkaUnavailableError
from hub_common.settings import KafkaSettings
from hub_common.telemetry import KafkaHeaders, kafka_headers

__all__ = [
    "COMMANDS",
    "DLQ_SUFFIX",
    "MISMATCHES",
    "OPERATOR_TRANSACTIONS",
    "TRANSACTIONS",
    "WEBHOOKS_DLQ",
    "Batch",
    "KafkaConsumer",
    "KafkaProducer",
    "RebalanceListener",
    "Record",
    "TopicPartition",
    "ensure_topics",
    "ping",
    "retry_topic",
    "translate",
]

log = logging.getLogger(__name__)

COMMANDS = "hub.commands"
TRANSACTIONS = "hub.transactions"
WEBHOOKS_DLQ = "hub.webhooks.dlq"
OPERATOR_TRANSACTIONS = "operator.transactions"
MISMATCHES = "hub.reconciliation.mismatches"
DLQ_SUFFIX = ".dlq"


def retry_topic(tier: int) -> str:
    return f"hub.webhooks.retry.{tier}"


def translate(exc: BaseException) -> Exception:
    """Map an aiokafka exception to our error types."""
    if isinstance(exc, UnsupportedVersionError | TopicAuthorizationFailedError):
        return FatalError(f"Kafka refused the request: {exc!r}")
    return KafkaUnavailableError(f"Kafka request failed: {exc!r}")


async def ensure_topics(
    settings: KafkaSettings, names: Sequence[str], *, partitions: int | None = None, with_dlq: bool = True
) -> list[str]:
    """Create the (prefixed) topics that do not exist yet, plus their `.dlq`; returns the full names."""
    full = [settings.topic(n) for n in names]
    wanted = full + ([n + DLQ_SUFFIX for n in full if not n.endswith(DLQ_SUFFIX)] if with_dlq else [])
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=settings.request_timeout_ms
    )
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [n for n in dict.fromkeys(wanted) if n not in existing]
        if missing:
            new = [NewTopic(n, partitions or settings.partitions, settings.replication_factor) for n in missing]
            # Another replica may win the race to create a topic; that is success too.
            with suppress(TopicAlreadyExistsError):
                await admin.create_topics(new, timeout_ms=settings.request_timeout_ms)
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await admin.close()
    return full


async def ping(settings: KafkaSettings) -> bool:
    """True when the cluster answers a metadata request (readiness checks)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=3000)
    try:
        await admin.start()
        await admin.list_topics()
        return True
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()


class KafkaProducer:
    """Producer with `acks=all`, idempotent by default. `send` returns once the broker has the record.

    `idempotent=False` is for a producer whose caller must know a record's fate before it answers: aiokafka's
    idempotent producer never expires a batch (it retries while the broker is down and delivers whenever it
    returns), whereas without idempotence a batch fails once it is older than the request timeout. The gateway
    needs that: after answering 503 and rolling back, a late command would be a transaction the RGS was told did
    not happen. The duplicate that idempotence prevents is harmless there (the ledger dedupes by transactionId).
    """

    def __init__(self, settings: KafkaSettings, *, client_id: str, linger_ms: int = 5, idempotent: bool = True) -> None:
        self._settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=client_id,
            acks="all",
            enable_idempotence=idempotent,
            linger_ms=linger_ms,
            request_timeout_ms=settings.request_timeout_ms,
        )

    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    async def start(self) -> None:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise translate(exc) from exc

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(
        self,
        topic: str,
        envelope: Envelope,
        *,
        key: str | None,
        headers: KafkaHeaders | None = None,
        prefixed: bool = False,
    ) -> None:
        """Produce `envelope` to `topic` (unprefixed name unless `prefixed`) and wait for the ack."""
        name = topic if prefixed else self._settings.topic(topic)
        await self.send_raw(
            name,
            envelope.encode(),
            key=key.encode() if key is not None else None,
            headers=headers if headers is not None else kafka_headers(envelope.correlation_id),
        )

    async def send_raw(
        self, topic: str, value: bytes, *, key: bytes | None, headers: KafkaHeaders | None = None
    ) -> None:
        try:
            await self._producer.send_and_wait(topic, value, key=key, headers=headers or [])
        except KafkaError as exc:
            raise translate(exc) from exc


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    envelope: Envelope
    headers: tuple[tuple[str, bytes], ...]
    timestamp_ms: int


@dataclass
class Batch:
    """Decoded records plus the offsets to commit once they are handled (poison records included)."""

    records: list[Record] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)


class RebalanceListener(Protocol):
    """Told about a consumer group's rebalance, inside the poll that runs it (so before records of the new
    assignment are returned): commit what is safe for revoked partitions, reset bookkeeping for assigned ones."""

    async def partitions_revoked(self, revoked: list[TopicPartition]) -> None: ...

    async def partitions_assigned(self, assigned: list[TopicPartition]) -> None: ...


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, listener: RebalanceListener) -> None:
        self._listener = listener

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        await self._listener.partitions_revoked(list(revoked))

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        await self._listener.partitions_assigned(list(assigned))


class KafkaConsumer:
    """Manual-commit consumer: at-least-once; the caller commits a batch after handling it.

    `dlq_producer=None` is for a consumer that does not own the topic's dead-letter topic: it skips records
    that are not a valid envelope instead of parking them.
    """

    def __init__(
        self,
        settings: KafkaSettings,
        topics: Sequence[str],
        *,
        group_id: str | None,
        dlq_producer: KafkaProducer | None,
        client_id: str,
        auto_offset_reset: str = "earliest",
        max_poll_records: int = 500,
    ) -> None:
        self._settings = settings
        self._topics = [settings.topic(t) for t in topics]
        self._dlq = dlq_producer
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            bootstrap_servers=settings.bootstrap_servers,
            group_id=group_id,
            client_id=client_id,
            enable_auto_commit=False,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_poll_records,
            request_timeout_ms=max(settings.request_timeout_ms, 40_000),
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
        )

    def set_rebalance_listener(self, listener: RebalanceListener) -> None:
        """Tell `listener` about rebalances of the consumer group; call before `start`."""
        self._consumer.subscribe(self._topics, listener=_Listener(listener))

    def assignment(self) -> set[TopicPartition]:
        return set(self._consumer.assignment())

    def paused(self) -> set[TopicPartition]:
        return set(self._consumer.paused())

    def pause(self, *partitions: TopicPartition) -> None:
        """Fetch nothing more from `partitions` (polling goes on, so the group membership is kept)."""
        self._consumer.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._consumer.resume(*partitions)

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Start `partitions` at their end, resolved now: a record produced after this returns is not skipped."""
        try:
            await self._consumer.seek_to_end(*partitions)
            for tp in partitions:
                await self._consumer.position(tp)
        except KafkaError as exc:
            raise translate(exc) from exc

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except KafkaError as exc:
            await self._consumer.stop()
            raise translate(exc) from exc

    async def stop(self) -> None:
        await self._consumer.stop()

    async def getmany(self, *, timeout_ms: int = 1000, max_records: int | None = None) -> Batch:
        try:
            fetched = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except KafkaError as exc:
            raise translate(exc) from exc
        batch = Batch()
        for tp, messages in fetched.items():
            for msg in messages:
                batch.offsets[tp] = msg.offset + 1
                try:
                    envelope = decode(msg.value)
                except EnvelopeError as exc:
                    if self._dlq is None:
                        log.debug("skipping an undecodable record", extra={"topic": msg.topic, "reason": str(exc)})
                    else:
                        await self.dead_letter(msg.topic, msg.key, msg.value, tuple(msg.headers or ()), str(exc))
                    continue
                batch.records.append(
                    Record(
                        topic=msg.topic,
                        partition=msg.partition,
                        offset=msg.offset,
                        key=msg.key.decode(errors="replace") if msg.key is not None else None,
                        envelope=envelope,
                        headers=tuple(msg.headers or ()),
                        timestamp_ms=msg.timestamp,
                    )
                )
        return batch

    async def dead_letter(
        self,
        topic: str,
        key: bytes | str | None,
        value: bytes | None,
        headers: tuple[tuple[str, bytes], ...],
        reason: str,
    ) -> None:
        """Park a record we cannot handle in `<topic>.dlq` with the reason, so the partition keeps moving."""
        if self._dlq is None:
            raise FatalError(f"{topic}: this consumer has no dead-letter producer")
        log.warning("record sent to dead-letter topic", extra={"topic": topic, "reason": reason})
        raw_key = key.encode() if isinstance(key, str) else key
        extra = [("dlq-reason", reason.encode()), ("dlq-source-topic", topic.encode())]
        await self._dlq.send_raw(topic + DLQ_SUFFIX, value or b"", key=raw_key, headers=[*headers, *extra])

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            raise translate(exc) from exc
