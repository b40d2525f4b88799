"""The continuous join's input: one faust agent over hub.transactions and operator.transactions, in batches
(`take_events`: up to `batch_max` records, or what arrived within `batch_within_s`).

Each batch marks the operator ids it names in `JoinState` (PostgreSQL, one statement per batch); the sweep judges
the ids whose grace has passed, every `sweep_interval_s`, and at once when a batch named ids judged before (a
late record clearing an old mismatch is resolved within moments). Reading never waits for judging. faust
acknowledges a batch's offsets once the agent moves past it, after it is stored: at-least-once, and every step is
idempotent.

faust stream joins are not implemented (faust/joins.py raises NotImplementedError) and a faust table would
either replay its whole changelog at start (memory://) or need rocksdict, so the agent keeps no faust table: the
state is in PostgreSQL (join.py). The records are not decoded beyond their key: the join judges PostgreSQL's rows
(transactions, written by the ledger; operator_transactions, stored by the feed poller with its page's position),
so an id whose record the feed has not stored yet is AWAITING_FEED, never a false mismatch.

Throughput: faust's consumer loop handles every message on its own (an Event, a queue put and get, an ack), which
is what bounds the join's records/s (docs/reconciliation.md, "Benchmark").
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import faust
import orjson

from hub_common.envelope import schema_of
from hub_common.errors import InfrastructureError
from hub_common.http import OnFatal
from hub_common.kafka import DLQ_SUFFIX, OPERATOR_TRANSACTIONS, TRANSACTIONS, KafkaProducer, ssl_context
from hub_common.operator import OperatorRecord
from hub_common.schemas import TransactionEvent, TxStatus, TxType
from hub_common.settings import KafkaSettings
from hub_reconciler.join import JoinState, Touch
from hub_reconciler.metrics import JOINED_RECORDS
from hub_reconciler.settings import ReconcilerSettings

log = logging.getLogger(__name__)

JOIN_TOPICS = (TRANSACTIONS, OPERATOR_TRANSACTIONS)
_MAX_BACKOFF_S = 5.0
_RETRYABLE = (InfrastructureError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
_FINAL = frozenset(s.value for s in TxStatus if s.is_final)
_FAILED = TxStatus.FAILED.value
_BET = TxType.BET.value
_HUB_SCHEMA = schema_of(TransactionEvent)
_OPERATOR_SCHEMA = schema_of(OperatorRecord)

# (prefixed topic, key, value) of one record.
Record = tuple[str, bytes | None, bytes | None]


class PoisonRecord(ValueError):
    """A record that is not what its topic carries."""


def broker_url(bootstrap_servers: str) -> str:
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap_servers.split(",") if host.strip())


def broker_credentials(kafka: KafkaSettings) -> Any:
    """faust's form of the credentials hub_common.kafka gives every other client (None: PLAINTEXT)."""
    context = ssl_context(kafka)
    if kafka.security_protocol == "SASL_SSL":
        assert kafka.sasl_password is not None  # KafkaSettings refuses SASL_SSL without credentials
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=kafka.sasl_mechanism,
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(context)
    return None


def hub_transaction(value: bytes | None) -> tuple[uuid.UUID, bool] | None:
    """The Hub transaction a hub.transactions record touches, and whether it is a FAILED bet (its cancel is judged
    with it); None: not final yet, nothing to reconcile.

    By its transactionId: the join finds its operator id in the row (`transactions.operator_id`), never derives
    it (a row admitted before refIds were per client was sent under its refId)."""
    envelope = _envelope(value, _HUB_SCHEMA)
    try:
        tx = envelope["payload"]["transaction"]
        status = tx["status"]
        if status not in _FINAL:
            return None
        return uuid.UUID(str(tx["transactionId"])), status == _FAILED and tx.get("type") == _BET
    except (KeyError, TypeError) as exc:
        raise PoisonRecord(f"payload does not fit {_HUB_SCHEMA}: missing {exc}") from None
    except ValueError:
        raise PoisonRecord(f"payload does not fit {_HUB_SCHEMA}: transactionId is not a uuid") from None


def operator_key(value: bytes | None) -> str:
    """The operator id an operator.transactions record carries."""
    envelope = _envelope(value, _OPERATOR_SCHEMA)
    try:
        key = envelope["payload"]["transactionId"]
    except (KeyError, TypeError) as exc:
        raise PoisonRecord(f"payload does not fit {_OPERATOR_SCHEMA}: missing {exc}") from None
    if not isinstance(key, str) or not key:
        raise PoisonRecord(f"payload does not fit {_OPERATOR_SCHEMA}: transactionId is not a non-empty string")
    return key


def _envelope(value: bytes | None, schema: str) -> dict[str, Any]:
    # Plain orjson, not the pydantic envelope: this path runs for every record of two busy topics.
    try:
        envelope = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        raise PoisonRecord(f"value is not JSON: {exc}") from None
    if not isinstance(envelope, dict) or envelope.get("schema") != schema:
        raise PoisonRecord(f"value is not a {schema} envelope")
    return envelope


class JoinStream:
    """Owns the faust app; `start()`/`stop()` run it inside the caller's event loop (no faust Worker); `sweep()`
    is one sweep (a background job of the service runs it)."""

    def __init__(
        self,
        settings: ReconcilerSettings,
        *,
        pool: asyncpg.Pool,
        producer: KafkaProducer,
        join: JoinState,
        on_fatal: OnFatal,
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._producer = producer
        self._join = join
        self._on_fatal = on_fatal
        self._failed = False
        kafka = settings.kafka
        self._topics = {kafka.topic(name): name for name in JOIN_TOPICS}
        self.group_id = kafka.topic(settings.app_id)
        # faust creates only the last level of its data directory.
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self._app = faust.App(
            self.group_id,
            broker=broker_url(kafka.bootstrap_servers),
            broker_credentials=broker_credentials(kafka),
            datadir=str(settings.data_dir),
            autodiscover=False,
            web_enabled=False,
            processing_guarantee="at_least_once",
            topic_partitions=kafka.partitions,
            topic_replication_factor=kafka.replication_factor,
            consumer_auto_offset_reset="earliest",
            # A batch is read in as few fetches as the broker allows, and the agent's buffer holds one batch.
            broker_max_poll_records=settings.batch_max,
            stream_buffer_maxsize=max(settings.batch_max, 4096),
            loop=asyncio.get_running_loop(),
        )
        source = self._app.topic(*self._topics, key_serializer="raw", value_serializer="raw")
        # concurrency=1: faust #606 commits past in-flight events with more than one actor.
        self._app.agent(source, name="reconciler-join", concurrency=1)(self._consume)
        # Set when a batch names ids that were judged already (a late record may clear a mismatch).
        self.wake = asyncio.Event()

    @property
    def running(self) -> bool:
        return not self._failed

    async def start(self) -> None:
        await self._app.start()

    async def stop(self) -> None:
        await self._app.stop()

    async def _consume(self, stream: Any) -> None:
        async for events in stream.take_events(self._settings.batch_max, within=self._settings.batch_within_s):
            batch = [(e.message.topic, e.key, e.value) for e in events]
            try:
                await self._retrying(lambda batch=batch: self.handle(batch))  # type: ignore[misc]
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A crashed faust agent stays dead while the worker looks alive; stop the service instead.
                self._failed = True
                log.critical("join agent failed", exc_info=exc)
                self._on_fatal(f"join agent failed: {exc!r}")
                raise

    async def handle(self, batch: Sequence[Record]) -> None:
        """One batch of (prefixed topic, key, value): touch the operator ids it names."""
        touch = Touch()
        counts = {TRANSACTIONS: 0, OPERATOR_TRANSACTIONS: 0}
        for topic, key, value in batch:
            source = self._topics.get(topic, topic)
            try:
                if source == OPERATOR_TRANSACTIONS:
                    touch.operator.append(operator_key(value))
                else:
                    touched = hub_transaction(value)
                    if touched is not None:
                        touch.transactions.append(touched[0])
                        if touched[1]:
                            touch.failed_bets.append(touched[0])
            except PoisonRecord as exc:
                await self._dead_letter(topic, key, value, str(exc))
                continue
            counts[source] = counts.get(source, 0) + 1
        if await self._join.touch(self._pool, touch):
            # Late records for ids judged before: the sweep runs now instead of at its next interval.
            self.wake.set()
        for source, n in counts.items():
            JOINED_RECORDS.labels(source=source).inc(n)

    async def sweep(self) -> None:
        """Settle every id whose grace has passed, a bounded query at a time, then publish and purge."""
        batch = self._settings.sweep_batch
        # Bounded queries: the loop yields between them, however many ids are due.
        evaluated = batch
        while evaluated >= batch:
            evaluated = await self._join.settle(limit=batch)
        await self._join.flush()
        await self._join.purge()

    async def _dead_letter(self, topic: str, key: bytes | None, value: bytes | None, reason: str) -> None:
        # The reconciler consumes both topics, so it parks their poison records (`<topic>.dlq`).
        log.warning("record sent to dead-letter topic", extra={"topic": topic, "reason": reason})
        headers = [("dlq-reason", reason.encode()), ("dlq-source-topic", topic.encode())]
        await self._retrying(
            lambda: self._producer.send_raw(topic + DLQ_SUFFIX, value or b"", key=key, headers=headers)
        )

    async def _retrying(self, action: Callable[[], Awaitable[None]]) -> None:
        """Retry until it succeeds: the partition waits rather than skip a record."""
        delay = 0.2
        while True:
            try:
                await action()
                return
            except _RETRYABLE as exc:
                log.warning("join step failed; retrying: %r", exc, extra={"error": repr(exc), "delayS": delay})
                await asyncio.sleep(delay)
                delay = min(delay * 2, _MAX_BACKOFF_S)
