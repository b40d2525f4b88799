"""The continuous join's input: one consumer (group: the app id) over hub.transactions and operator.transactions,
read in batches of up to `batch_max` records.

Each batch marks the operator ids it names in `JoinState` (PostgreSQL, one statement per batch); the sweep judges
the ids whose grace has passed, every `sweep_interval_s`, and at once when a batch named ids judged before (a
late record clearing an old mismatch is resolved within moments). Reading never waits for judging. Offsets are
committed after the batch is stored: at-least-once, and every step is idempotent.

The records are not decoded beyond their key: the join judges PostgreSQL's rows (transactions, written by the
ledger; operator_transactions, stored by the feed poller with its page's position), so an id whose record the
feed has not stored yet is AWAITING_FEED, never a false mismatch.

Why not a faust agent: faust's consumer loop spends two asyncio tasks on every message (`Consumer.
_drain_messages` waits on `callback(message)` and the flow-control event together), which measured ~5,000
records/s here with an agent that did nothing, where a batched aiokafka consumer reads 150,000+/s; faust's
stream joins are not implemented and its tables are not used (the state is in PostgreSQL), so faust added only
that cost and its open offset bugs (#606, #316).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import asyncpg
import orjson

from hub_common.envelope import schema_of
from hub_common.errors import InfrastructureError
from hub_common.kafka import OPERATOR_TRANSACTIONS, TRANSACTIONS, KafkaConsumer, KafkaProducer, RawRecord
from hub_common.operator import OperatorRecord, operator_id
from hub_common.schemas import TransactionEvent, TxStatus, TxType
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


class PoisonRecord(ValueError):
    """A record that is not what its topic carries."""


def hub_key(value: bytes | None) -> tuple[str, bool] | None:
    """The operator id a hub.transactions record touches, and whether it is a FAILED bet (its cancel is judged
    with it); None: not final yet, nothing to reconcile."""
    envelope = _envelope(value, _HUB_SCHEMA)
    try:
        payload = envelope["payload"]
        tx = payload["transaction"]
        status = tx["status"]
        if status not in _FINAL:
            return None
        return operator_id(str(payload["clientId"]), str(tx["refId"])), status == _FAILED and tx.get("type") == _BET
    except (KeyError, TypeError) as exc:
        raise PoisonRecord(f"payload does not fit {_HUB_SCHEMA}: missing {exc}") from None


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
    """Owns the join's consumer; `run()` reads and handles batches until cancelled, `sweep()` is one sweep."""

    def __init__(
        self, settings: ReconcilerSettings, *, pool: asyncpg.Pool, producer: KafkaProducer, join: JoinState
    ) -> None:
        self._settings = settings
        self._pool = pool
        self._join = join
        kafka = settings.kafka
        self._topics = {kafka.topic(name): name for name in JOIN_TOPICS}
        self.group_id = kafka.topic(settings.app_id)
        self._consumer = KafkaConsumer(
            kafka,
            JOIN_TOPICS,
            group_id=self.group_id,
            # The reconciler consumes both topics, so it parks their poison records (`<topic>.dlq`).
            dlq_producer=producer,
            client_id=f"{kafka.client_id}-reconciler",
            max_poll_records=settings.batch_max,
        )
        self.running = False
        # Set when a batch names ids that were judged already (a late record may clear a mismatch).
        self.wake = asyncio.Event()

    async def start(self) -> None:
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    async def run(self) -> None:
        wait_ms = int(self._settings.batch_within_s * 1000)
        self.running = True
        try:
            while True:
                batch = await self._consumer.getmany_raw(timeout_ms=wait_ms, max_records=self._settings.batch_max)
                if batch.records:
                    await self._retrying(lambda records=batch.records: self.handle(records))  # type: ignore[misc]
                try:
                    await self._consumer.commit(batch.offsets)
                except InfrastructureError as exc:
                    # A rebalance took the partitions: their next owner reads the batch again (idempotent).
                    log.warning("join offsets not committed", extra={"error": repr(exc)})
        finally:
            self.running = False

    async def handle(self, batch: Sequence[RawRecord]) -> None:
        """Touch the operator ids a batch names, settle what is overdue."""
        touch = Touch()
        counts = {TRANSACTIONS: 0, OPERATOR_TRANSACTIONS: 0}
        for record in batch:
            source = self._topics.get(record.topic, record.topic)
            try:
                if source == OPERATOR_TRANSACTIONS:
                    touch.operator.append(operator_key(record.value))
                else:
                    touched = hub_key(record.value)
                    if touched is not None:
                        touch.hub.append(touched[0])
                        if touched[1]:
                            touch.failed_bets.append(touched[0])
            except PoisonRecord as exc:
                await self._consumer.dead_letter(record.topic, record.key, record.value, record.headers, str(exc))
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
