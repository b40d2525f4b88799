"""The one Kafka adapter: topic names and configs, topic creation, an idempotent producer, a manual-commit consumer
(which measures its group's lag), and the readiness probe.

aiokafka exceptions never leave this module: they become `KafkaUnavailableError` (retryable) or `FatalError`.
A record whose value is not a valid envelope goes to `<topic>.dlq` with the reason, and consumption carries on.
Services use `KafkaConsumer`'s own methods (pause, resume, assignment, seek, a rebalance listener), never the
aiokafka client under it; `TopicPartition` is re-exported from here for them.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    IllegalOperation,
    IllegalSaslStateError,
    KafkaError,
    SaslAuthenticationFailed,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    UnsupportedSaslMechanismError,
    UnsupportedVersionError,
    for_code,
)
from prometheus_client import Gauge

from hub_common.envelope import Envelope, EnvelopeError, decode
from hub_common.errors import FatalError, KafkaUnavailableError
from hub_common.settings import KafkaSettings
from hub_common.telemetry import KafkaHeaders, kafka_headers

# `TopicPartition` is re-exported: services name partitions with it, without importing aiokafka.
__all__ = [
    "COMMANDS",
    "CONSUMER_LAG",
    "DLQ_SUFFIX",
    "MISMATCHES",
    "OPERATOR_TRANSACTIONS",
    "RETRY_TOPIC_PREFIX",
    "TRANSACTIONS",
    "WEBHOOKS_DLQ",
    "Batch",
    "KafkaConsumer",
    "KafkaProbe",
    "KafkaProducer",
    "RebalanceListener",
    "Record",
    "TopicPartition",
    "admin_client",
    "client_options",
    "ensure_topics",
    "group_lag",
    "hub_topics",
    "ping",
    "retry_topic",
    "ssl_context",
    "topic_configs",
    "topic_set",
    "translate",
]

log = logging.getLogger(__name__)

COMMANDS = "hub.commands"
TRANSACTIONS = "hub.transactions"
WEBHOOKS_DLQ = "hub.webhooks.dlq"
OPERATOR_TRANSACTIONS = "operator.transactions"
MISMATCHES = "hub.reconciliation.mismatches"
RETRY_TOPIC_PREFIX = "hub.webhooks.retry."
DLQ_SUFFIX = ".dlq"


_DAY_MS = 86_400_000


def retry_topic(tier: int) -> str:
    return f"{RETRY_TOPIC_PREFIX}{tier}"


# Refusals that retrying cannot fix: wrong credentials, a missing ACL, a broker too old or too new.
_FATAL = (
    UnsupportedVersionError,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
    AuthenticationFailedError,
    SaslAuthenticationFailed,
    IllegalSaslStateError,
    UnsupportedSaslMechanismError,
)


def hub_topics(retry_tiers: int) -> list[str]:
    """Every topic the Hub's services use, dead-letter topics included (not faust's internal topics, which the
    reconciler creates under its app id). Production creates exactly these (deploy/k8s KafkaTopic resources)."""
    main = [COMMANDS, TRANSACTIONS, *(retry_topic(t) for t in range(1, retry_tiers + 1))]
    main += [OPERATOR_TRANSACTIONS, MISMATCHES]
    return [*main, *(name + DLQ_SUFFIX for name in main), WEBHOOKS_DLQ]


def topic_configs(name: str, replication_factor: int) -> dict[str, str]:
    """Topic-level configs of an (unprefixed) topic name. Dead letters are kept a month for people to replay;
    everything else a week, which outlasts any outage the Hub is expected to sit through with work queued.
    `min.insync.replicas` = 2 at replication factor 3: an acknowledged record survives the loss of a broker."""
    retention_days = 30 if name.endswith(DLQ_SUFFIX) or name == MISMATCHES else 7
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(retention_days * _DAY_MS),
        "min.insync.replicas": str(min(2, max(1, replication_factor - 1))),
    }


def translate(exc: BaseException) -> Exception:
    """Map an aiokafka exception to our error types."""
    if isinstance(exc, _FATAL):
        return FatalError(f"Kafka refused the request: {exc!r}")
    return KafkaUnavailableError(f"Kafka request failed: {exc!r}")


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of `settings` (None for PLAINTEXT): verifies the broker, presents the client certificate."""
    if settings.security_protocol == "PLAINTEXT":
        return None
    try:
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
        if settings.ssl_certfile is not None:
            password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else None
            context.load_cert_chain(
                str(settings.ssl_certfile), str(settings.ssl_keyfile) if settings.ssl_keyfile else None, password
            )
    except (OSError, ssl.SSLError) as exc:
        # OSError covers a missing file; the message names the file but never a key password.
        raise FatalError(f"cannot load the Kafka TLS files: {exc}") from exc
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection and authentication arguments every aiokafka client of ours takes (producer, consumer, admin)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "security_protocol": settings.security_protocol,
        "ssl_context": ssl_context(settings),
    }
    if settings.security_protocol == "SASL_SSL":
        assert settings.sasl_password is not None  # KafkaSettings refuses SASL_SSL without credentials
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


def admin_client(settings: KafkaSettings, *, request_timeout_ms: int | None = None) -> AIOKafkaAdminClient:
    """A not yet started admin client with the settings' credentials; the caller starts and closes it."""
    return AIOKafkaAdminClient(
        **client_options(settings), request_timeout_ms=request_timeout_ms or settings.request_timeout_ms
    )


def topic_set(settings: KafkaSettings, names: Sequence[str], *, with_dlq: bool = True) -> list[str]:
    """The prefixed names of `names` followed by their `.dlq` topics (none for a name that is a `.dlq`)."""
    full = [settings.topic(n) for n in names]
    dlqs = [n + DLQ_SUFFIX for n in full if not n.endswith(DLQ_SUFFIX)] if with_dlq else []
    return list(dict.fromkeys(full + dlqs))


async def ensure_topics(
    settings: KafkaSettings, names: Sequence[str], *, partitions: int | None = None, with_dlq: bool = True
) -> list[str]:
    """Create the (prefixed) topics that do not exist yet, plus their `.dlq`; returns the full names.

    With `settings.create_topics` off (production: KafkaTopic resources; a secured cluster: its admin step) nothing
    is created: a missing topic stops the start-up with a FatalError naming it, rather than a consumer silently
    waiting for it. Only `names` are checked then, not their `.dlq`: the admin step creates both together, and a
    principal holds no right to see a `.dlq` it never writes (hub_common.kafka_access).
    """
    full = [settings.topic(n) for n in names]
    wanted = topic_set(settings, names, with_dlq=with_dlq)
    admin = admin_client(settings)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        if not settings.create_topics:
            absent = [n for n in full if n not in existing]
            if absent:
                raise FatalError(
                    f"Kafka topics missing (or not visible to this principal): {', '.join(absent)}; "
                    "KAFKA_CREATE_TOPICS=false: create them first (docs/deploy.md, docs/security.md)",
                    topics=absent,
                )
            return full
        missing = [n for n in wanted if n not in existing]
        if missing:
            prefix = len(settings.topic_prefix)
            new = [
                NewTopic(
                    n,
                    partitions or settings.partitions,
                    settings.replication_factor,
                    topic_configs=topic_configs(n[prefix:], settings.replication_factor),
                )
                for n in missing
            ]
            response = await admin.create_topics(new, timeout_ms=settings.request_timeout_ms)
            # The answer carries one error code per topic (aiokafka raises none of them).
            for name, code, *_ in response.topic_errors:
                # Another replica may win the race to create a topic; that is success too.
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise translate(for_code(code)(f"cannot create topic {name}"))
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await admin.close()
    return full


class KafkaProbe:
    """Readiness check of the cluster over one admin client kept for the service's life: a probe is one metadata
    request, not a new connection. The client is dropped after a failure and rebuilt by the next probe."""

    def __init__(self, settings: KafkaSettings, *, timeout_s: float = 2.0) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._admin: AIOKafkaAdminClient | None = None

    async def ping(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                if self._admin is None:
                    # Kept before start(): close() must reach a client that failed half-way through starting.
                    self._admin = admin_client(self._settings, request_timeout_ms=int(self._timeout_s * 1000))
                    await self._admin.start()
                await self._admin.describe_cluster()
            return True
        except (KafkaError, OSError, TimeoutError, FatalError):
            await self.close()
            return False

    async def close(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with suppress(KafkaError, OSError):
                await admin.close()


async def ping(settings: KafkaSettings) -> bool:
    """One-off check that the cluster answers a metadata request (command-line tools)."""
    probe = KafkaProbe(settings, timeout_s=3.0)
    try:
        return await probe.ping()
    finally:
        await probe.close()


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
            **client_options(settings),
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

    async def send_many_raw(self, records: Sequence[RawRecord]) -> None:
        """Produce every record, then wait for all their acks: what gathers meanwhile shares produce requests,
        without a task and a wait per record. Records of one partition are written in the order given. On an
        error some of them may have been written (the caller re-sends the lot: at-least-once)."""
        try:
            sent = [await self._producer.send(r.topic, r.value, key=r.key, headers=list(r.headers)) for r in records]
        except KafkaError as exc:
            raise translate(exc) from exc
        # Every ack is awaited (none left unretrieved), then the first error raised.
        for result in await asyncio.gather(*sent, return_exceptions=True):
            if isinstance(result, KafkaError):
                raise translate(result) from result
            if isinstance(result, BaseException):
                raise result

    async def send_each_raw(self, records: Sequence[RawRecord], *, timeout_s: float) -> list[Exception | None]:
        """Produce every record (they share produce requests) and wait up to `timeout_s` for their acks: per
        record None once acknowledged, else its error (translated; `TimeoutError` when it outlived `timeout_s`,
        its fate unknown). For a caller that must know which records of a group the broker has."""
        results: list[Exception | None] = [None] * len(records)
        acks: dict[int, asyncio.Future[Any]] = {}
        try:
            async with asyncio.timeout(timeout_s):
                for index, r in enumerate(records):
                    try:
                        acks[index] = await self._producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
                    except KafkaError as exc:
                        results[index] = translate(exc)
                if acks:
                    await asyncio.wait(acks.values())
        except TimeoutError:
            pass
        for index in range(len(records)):
            ack = acks.get(index)
            if ack is None:
                if results[index] is None:
                    results[index] = TimeoutError(f"not sent within {timeout_s} s")
            elif not ack.done():
                results[index] = TimeoutError(f"not acknowledged within {timeout_s} s")
                # Retrieved when aiokafka settles it, so its error is not reported as never retrieved.
                ack.add_done_callback(_retrieve)
            elif (error := ack.exception()) is not None:
                results[index] = translate(error) if isinstance(error, KafkaError) else _as_exception(error)
        return results


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _as_exception(error: BaseException) -> Exception:
    if isinstance(error, Exception):
        return error
    raise error  # a cancellation, or an exit


@dataclass(frozen=True)
class RawRecord:
    """A record to produce as is: `topic` already prefixed, `value` and `key` encoded."""

    topic: str
    value: bytes
    key: bytes | None
    headers: KafkaHeaders


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


CONSUMER_LAG = Gauge(
    "hub_kafka_consumer_lag",
    "Records of a topic not yet committed by a consumer group, summed over the topic's partitions. Every member "
    "of the group reports the whole group's lag: aggregate with max, not sum.",
    ["group", "topic"],
)


async def group_lag(consumer: AIOKafkaConsumer, topic: str, *, from_start: bool) -> int | None:
    """Lag of `consumer`'s group on `topic`: end offsets minus committed offsets, over every partition (also those
    assigned to other members). A partition the group never committed counts from its first record when
    `from_start` (auto_offset_reset earliest), else as caught up. None while the topic's metadata is unknown."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        return None
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    ends = await consumer.end_offsets(tps)
    committed = dict(zip(tps, await asyncio.gather(*(consumer.committed(tp) for tp in tps)), strict=True))
    never = [tp for tp, offset in committed.items() if offset is None]
    starts = await consumer.beginning_offsets(never) if never and from_start else {}
    lag = 0
    for tp in tps:
        offset = committed[tp]
        base = offset if offset is not None else starts.get(tp, ends[tp])
        lag += max(ends[tp] - base, 0)
    return lag


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
    With a group, it measures the group's lag every `settings.lag_interval_s` into `hub_kafka_consumer_lag`.
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
        self._group_id = group_id
        self._from_start = auto_offset_reset == "earliest"
        self._lag_task: asyncio.Task[None] | None = None
        self._consumer = AIOKafkaConsumer(
            *self._topics,
            **client_options(settings),
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
        if self._group_id is not None and self._settings.lag_interval_s > 0:
            for topic in self._topics:
                # The child exists from the start: alerts see a value, not an absent series, before the first
                # measurement.
                CONSUMER_LAG.labels(self._group_id, topic)
            self._lag_task = asyncio.create_task(self._measure_lag(self._group_id), name=f"lag-{self._group_id}")

    async def stop(self) -> None:
        if self._lag_task is not None:
            self._lag_task.cancel()
            with suppress(asyncio.CancelledError):
                await self._lag_task
            self._lag_task = None
        await self._consumer.stop()

    async def _measure_lag(self, group: str) -> None:
        interval = self._settings.lag_interval_s
        timeout_s = self._settings.request_timeout_ms / 1000
        while True:
            await asyncio.sleep(interval)
            for topic in self._topics:
                try:
                    async with asyncio.timeout(timeout_s):
                        lag = await group_lag(self._consumer, topic, from_start=self._from_start)
                except (KafkaError, IllegalOperation, OSError, TimeoutError) as exc:
                    # A missed measurement leaves the last value; the lag alert has a `for:` longer than this.
                    log.debug("consumer lag not measured", extra={"topic": topic, "error": repr(exc)})
                    continue
                if lag is not None:
                    CONSUMER_LAG.labels(group, topic).set(lag)

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
