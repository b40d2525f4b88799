"""Admission and lookup of transactions: idempotency, the enqueue, and the wait for the ledger's outcome."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from opentelemetry import trace
from prometheus_client import Counter

from hub_common.schemas import ErrorCode, Transaction, TransactionRequest, TxType
from hub_common.telemetry import span
from hub_gateway.admission_control import AdmissionControl
from hub_gateway.commands import CommandPublisher, PreparedCommand
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


class Rivals:
    """Admissions this process is writing now, by (client, key) and by (client, refId).

    A request whose key or refId is being admitted here waits for that admission before it starts its own: it is
    then answered from the stored row (a replay, or a conflict) instead of waiting for a rival's row lock in the
    database, and it never holds a place in admission control meanwhile. Retry storms of one request (a client
    resending on a timeout) cost one admission.
    """

    def __init__(self) -> None:
        self._writing: dict[tuple[str, str, str], asyncio.Future[None]] = {}

    async def wait(self, client_id: str, key: str, ref_id: str) -> bool:
        """Wait for this process's admissions of the key or the refId; True when there was one."""
        waited = False
        for name in ((client_id, "key", key), (client_id, "ref", ref_id)):
            future = self._writing.get(name)
            if future is not None:
                # Not shielded, not cancelled: a waiter that gives up leaves the admission alone.
                await asyncio.wait({future})
                waited = True
        return waited

    @contextmanager
    def writing(self, client_id: str, key: str, ref_id: str) -> Iterator[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        names = [(client_id, "key", key), (client_id, "ref", ref_id)]
        for name in names:
            if name not in self._writing:
                self._writing[name] = future
        try:
            yield
        finally:
            for name in names:
                if self._writing.get(name) is future:
                    del self._writing[name]
            future.set_result(None)


class TransactionService(Protocol):
    async def submit(self, client_id: str, key: str, request: TransactionRequest, correlation_id: str) -> Outcome: ...

    async def get(self, client_id: str, ref_id: str) -> Transaction: ...


@dataclass(frozen=True)
class AdmissionConfig:
    outcome_budget_s: float
    in_progress_retry_after_s: int
    bet_useful_life_s: float


class AdmissionService:
    def __init__(
        self,
        store: TransactionStore[PreparedCommand],
        commands: CommandPublisher,
        waiter: OutcomeWaiter,
        control: AdmissionControl,
        config: AdmissionConfig,
    ) -> None:
        self._store = store
        self._commands = commands
        self._waiter = waiter
        self._control = control
        self._config = config
        self._rivals = Rivals()

    async def get(self, client_id: str, ref_id: str) -> Transaction:
        stored = await self._store.get_by_ref(client_id, ref_id)
        if stored is None:
            raise TransactionNotFoundError(ref_id)
        return stored.transaction

    async def submit(self, client_id: str, key: str, request: TransactionRequest, correlation_id: str) -> Outcome:
        deadline = time.monotonic() + self._config.outcome_budget_s
        digest = request_hash(request)
        rival = await self._rivals.wait(client_id, key, request.ref_id)
        for attempt in range(_ADMISSION_ATTEMPTS):
            # First try: insert straight away, the common case being a new request. Once that collided (or a
            # rival here admitted the key or refId, or while admission control refuses it), look at what is
            # there first: a replay answers even when a new BET would be refused, and a key that turned out
            # expired is cleared before the next insert.
            refusal = self._control.refusal(client_id, request.type)
            if attempt or rival or refusal is not None:
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
                with self._rivals.writing(client_id, key, request.ref_id):
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
            with span(tracer, "gateway.admit"):
                # The produce may run in a batch of many requests' commands: in this request's trace.
                command = self._commands.prepare(admission)
                admitted = await self._store.admit(admission, command, clear_expired_key=clear_expired_key)
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


def _log_fields(transaction: Transaction) -> dict[str, str]:
    return {
        "refId": transaction.ref_id,
        "transactionId": transaction.transaction_id,
        "status": transaction.status.value,
    }
