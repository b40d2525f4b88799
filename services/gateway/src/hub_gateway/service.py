"""Admission and lookup of transactions: idempotency, the enqueue, and the wait for the ledger's outcome."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opentelemetry import trace
from prometheus_client import Counter

from hub_common.envelope import wrap
from hub_common.errors import KafkaUnavailableError
from hub_common.kafka import COMMANDS, KafkaProducer
from hub_common.schemas import ErrorCode, Transaction, TransactionCommand, TransactionRequest, TxType
from hub_gateway.admission_control import AdmissionControl
from hub_gateway.errors import (
    DuplicateRefIdError,
    IdempotencyKeyReusedError,
    RequestInProgressError,
    TransactionNotFoundError,
)
from hub_gateway.outcomes import OutcomeWaiter, Watch
from hub_gateway.store import Admission, Existing, StoredTransaction, TransactionStore
from hub_gateway.validation import request_hash

log = logging.getLogger(__name__)
tracer = trace.get_tracer("hub_gateway")

ADMISSIONS = Counter("gateway_admissions_total", "POST /v1/transactions by result", ["result"])
_ADMITTED = ADMISSIONS.labels("admitted")
_REPLAYED = ADMISSIONS.labels("replayed")
_ANSWERED_AT_ONCE = Counter(
    "gateway_accepted_at_once_total", "202 answers given at once: the predicted wait exceeded the outcome budget"
)

# The insert, then up to two rounds of lookup + insert: after a collision the winner has committed (or rolled
# back), so a lookup finds it; a second round covers a key that expired or an admission that rolled back.
_ADMISSION_ATTEMPTS = 3


@dataclass(frozen=True)
class Outcome:
    transaction: Transaction
    error_code: ErrorCode | None
    replayed: bool = False
    # Still open: seconds until it is expected to reach the operator (the 202's `predictedWaitS`).
    predicted_wait_s: float | None = None


class TransactionService(Protocol):
    async def submit(self, client_id: str, key: str, request: TransactionRequest, correlation_id: str) -> Outcome: ...

    async def get(self, client_id: str, ref_id: str) -> Transaction: ...


@dataclass(frozen=True)
class AdmissionConfig:
    outcome_budget_s: float
    produce_timeout_s: float
    in_progress_retry_after_s: int
    bet_useful_life_s: float


class AdmissionService:
    def __init__(
        self,
        store: TransactionStore,
        producer: KafkaProducer,
        waiter: OutcomeWaiter,
        control: AdmissionControl,
        config: AdmissionConfig,
    ) -> None:
        self._store = store
        self._producer = producer
        self._waiter = waiter
        self._control = control
        self._config = config

    async def get(self, client_id: str, ref_id: str) -> Transaction:
        stored = await self._store.get_by_ref(client_id, ref_id)
        if stored is None:
            raise TransactionNotFoundError(ref_id)
        return stored.transaction

    async def submit(self, client_id: str, key: str, request: TransactionRequest, correlation_id: str) -> Outcome:
        deadline = time.monotonic() + self._config.outcome_budget_s
        digest = request_hash(request)
        for attempt in range(_ADMISSION_ATTEMPTS):
            # First try: insert straight away, the common case being a new request. Once that collided (or
            # while admission control refuses it), look at what is there first: a replay answers even when a new
            # BET would be refused, and a key that turned out expired is cleared before the next insert.
            refusal = self._control.refusal(client_id, request.type)
            if attempt or refusal is not None:
                existing = await self._store.find_existing(client_id, key, request.ref_id)
                if existing is not None:
                    stored = self._replayable(existing, client_id, digest, request.ref_id)
                    _REPLAYED.inc()
                    log.info("replaying transaction", extra=_log_fields(stored.transaction))
                    return await self._replay(stored, deadline)
                if refusal is not None:
                    ADMISSIONS.labels(f"refused_{refusal.reason}").inc()
                    raise refusal
            predicted_wait_s = self._control.forecast(request.type).wait_s
            admission = self._admission(client_id, key, request, digest, correlation_id)
            with self._watch(str(admission.transaction_id)) as watch:
                admitted = await self._admit(admission, clear_expired_key=attempt > 0)
                if admitted is None:
                    continue
                _ADMITTED.inc()
                if log.isEnabledFor(logging.INFO):
                    log.info("transaction admitted", extra=_log_fields(admitted.transaction))
                return await self._settle(admitted, watch, deadline, predicted_wait_s)
        raise RequestInProgressError(self._config.in_progress_retry_after_s)

    async def _admit(self, admission: Admission, *, clear_expired_key: bool) -> StoredTransaction | None:
        """The store's admission, counted by admission control from the decision on (concurrent requests must
        see each other before the database shows them)."""
        client_id, tx_type = admission.client_id, admission.request.type
        self._control.reserve(client_id, tx_type)
        admitted = None
        try:
            admitted = await self._store.admit(
                admission, functools.partial(self._publish, admission), clear_expired_key=clear_expired_key
            )
        finally:
            self._control.release(client_id, tx_type, admitted=admitted is not None)
        return admitted

    def _admission(
        self, client_id: str, key: str, request: TransactionRequest, digest: str, correlation_id: str
    ) -> Admission:
        now = datetime.now(UTC)
        life = timedelta(seconds=self._config.bet_useful_life_s)
        return Admission(
            transaction_id=uuid.uuid4(),
            client_id=client_id,
            idempotency_key=key,
            request=request,
            request_hash=digest,
            correlation_id=correlation_id,
            admitted_at=now,
            send_by=now + life if request.type is TxType.BET else None,
        )

    def _watch(self, transaction_id: str) -> AbstractContextManager[Watch | None]:
        # Registered before the produce, so an early outcome is not missed; with no budget there is no wait.
        if self._config.outcome_budget_s <= 0:
            return nullcontext()
        return self._waiter.watch(transaction_id)

    @staticmethod
    def _replayable(existing: Existing, client_id: str, digest: str, ref_id: str) -> StoredTransaction:
        if existing.by_key is not None:
            if existing.key_hash != digest:
                raise IdempotencyKeyReusedError()
            return existing.by_key
        assert existing.by_ref is not None
        # `by_ref` of another client only holds the operator id this request would get (see `Existing`): a
        # conflict too, and nothing about that transaction is revealed.
        if existing.by_ref.client_id != client_id or existing.by_ref.request_hash != digest:
            raise DuplicateRefIdError(ref_id)
        return existing.by_ref

    async def _replay(self, stored: StoredTransaction, deadline: float) -> Outcome:
        tx = stored.transaction
        if tx.status.is_final:
            return Outcome(tx, stored.error_code, replayed=True)
        # It was admitted a while ago with (at most) a new transaction's wait ahead of it: that much less is left.
        age_s = (datetime.now(UTC) - tx.created_at).total_seconds()
        predicted_wait_s = max(0.0, self._control.forecast(tx.type).wait_s - age_s)
        with self._waiter.watch(tx.transaction_id) as watch:
            # Re-read after registering: an outcome that landed in between is then seen in the row.
            fresh = await self._store.get_by_id(tx.transaction_id) or stored
            outcome = await self._settle(fresh, watch, deadline, predicted_wait_s)
        return replace(outcome, replayed=True)

    async def _settle(
        self, stored: StoredTransaction, watch: Watch | None, deadline: float, predicted_wait_s: float
    ) -> Outcome:
        """The outcome if it arrives within the budget; at once (202) when it is not expected in time."""
        if stored.transaction.status.is_final:
            return Outcome(stored.transaction, stored.error_code)
        started = time.monotonic()
        if watch is not None:
            if predicted_wait_s <= deadline - started:
                event = await watch.wait(deadline - started)
                if event is not None:
                    return Outcome(event.transaction, event.error_code)
            else:
                # Holding the connection for the whole budget could not bring the outcome: answer now.
                _ANSWERED_AT_ONCE.inc()
        left = max(0.0, predicted_wait_s - (time.monotonic() - started))
        return Outcome(stored.transaction, stored.error_code, predicted_wait_s=left)

    async def _publish(self, admission: Admission) -> None:
        request = admission.request
        command = TransactionCommand(
            transaction_id=str(admission.transaction_id),
            client_id=admission.client_id,
            idempotency_key=admission.idempotency_key,
            request_hash=admission.request_hash,
            ref_id=request.ref_id,
            type=request.type,
            player_id=request.player_id,
            amount_cents=request.amount_cents,
            currency=request.currency,
            round_id=request.round_id,
            game_id=request.game_id,
            original_ref_id=request.original_ref_id,
            round_closed=request.round_closed,
            metadata=request.metadata,
            admitted_at=admission.admitted_at,
            send_by=admission.send_by,
            operator_id=admission.operator_id,
        )
        envelope = wrap(command, correlation_id=admission.correlation_id)
        topic = self._producer.settings.topic(COMMANDS)
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.message.id": envelope.event_id,
        }
        with tracer.start_as_current_span(f"{topic} publish", kind=trace.SpanKind.PRODUCER, attributes=attributes):
            try:
                # Inside the span: the producer's default headers carry this span's traceparent.
                async with asyncio.timeout(self._config.produce_timeout_s):
                    await self._producer.send(COMMANDS, envelope, key=request.player_id)
            except TimeoutError as exc:
                # Not expected: aiokafka fails a record after its own, shorter request timeout (producer.py).
                # If it outlived that, the record may still be delivered; the ledger then inserts its row.
                log.error(
                    "Kafka produce outlived its timeout; the command may still be delivered",
                    extra={"refId": request.ref_id, "transactionId": command.transaction_id},
                )
                raise KafkaUnavailableError("Kafka did not acknowledge the command in time") from exc


def _log_fields(transaction: Transaction) -> dict[str, str]:
    return {
        "refId": transaction.ref_id,
        "transactionId": transaction.transaction_id,
        "status": transaction.status.value,
    }
