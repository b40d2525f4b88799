"""The delivery pipeline: result event -> outbox row -> signed POST -> delivered | retry tier | dead letter.

Order of effects for a failed attempt: the row is updated first, then the retry (or dead-letter) record is
produced, then the source offset is committed. A crash between any two of them is repaired when the source
record comes back: the claim for that attempt misses, and `_resume` re-emits what the row says was decided.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from hub_common.envelope import EnvelopeError, wrap
from hub_common.kafka import WEBHOOKS_DLQ, KafkaProducer, Record, retry_topic
from hub_common.schemas import (
    EVENT_TYPES,
    Attempt,
    Outcome,
    TransactionEvent,
    WebhookBody,
    WebhookDeadLetter,
    WebhookRetry,
)
from hub_common.telemetry import (
    CORRELATION_HEADER,
    context_from_kafka,
    correlation_scope,
    http_trace_headers,
    logged_id,
)
from hub_dispatcher import metrics
from hub_dispatcher.endpoints import Endpoint, Endpoints
from hub_dispatcher.policy import RetryPolicy, classify
from hub_dispatcher.sender import Sender
from hub_dispatcher.store import Claim, Finished, NewRow, OutboxRow, OutboxStore
from hub_dispatcher.writes import Writes

log = logging.getLogger(__name__)

NO_ENDPOINT = "no webhook endpoint configured for client"


@dataclass(frozen=True)
class Delivery:
    """What an attempt needs of its row; `body` is the JSON exactly as signed and sent."""

    id: str
    client_id: str
    event_type: str
    correlation_id: str
    body: bytes

    @classmethod
    def of(cls, row: OutboxRow) -> Delivery:
        return cls(row.id, row.client_id, row.event_type, row.correlation_id or row.id, orjson.dumps(row.payload))


class Dispatcher:
    def __init__(
        self,
        *,
        store: OutboxStore,
        writes: Writes,
        sender: Sender,
        endpoints: Endpoints,
        policy: RetryPolicy,
        producer: KafkaProducer,
        record_spans: bool,
    ) -> None:
        """`record_spans`: spans are exported somewhere. Without an exporter a span per delivery is CPU for
        nothing; the delivery then runs in the producer's trace context, which `traceparent` still carries."""
        self._store = store
        self._writes = writes
        self._sender = sender
        self._endpoints = endpoints
        self._policy = policy
        self._producer = producer
        self._record_spans = record_spans
        self._tracer = trace.get_tracer("hub_dispatcher")
        self._ids = RandomIdGenerator()
        # Events with an attempt running in this process: a duplicate record fetched meanwhile (the ledger
        # re-publishing, or a redelivery in the same batch) must not claim the row a second time.
        self._active: set[str] = set()

    # --- entry points ------------------------------------------------------------------------------------

    async def on_transaction_event(self, record: Record) -> None:
        """A record of hub.transactions: final states become webhooks; PENDING/PROCESSING are ignored."""
        event = record.envelope.payload_as(TransactionEvent)
        tx = event.transaction
        if not tx.status.is_final:
            return
        if tx.error_code is None and event.error_code is not None:
            # An event of a ledger that did not put the code in the resource yet: the webhook carries it anyway.
            tx = tx.model_copy(update={"error_code": event.error_code})
        envelope = record.envelope
        # The row's ids are uuid columns: a record that is not (our ledger's) fails here, alone, not the batch.
        _require_uuid(envelope.event_id, "eventId")
        _require_uuid(tx.transaction_id, "transactionId")
        body = WebhookBody(
            event_id=envelope.event_id,
            event_type=EVENT_TYPES[tx.status],
            occurred_at=envelope.occurred_at,
            data=tx,
        )
        raw = orjson.dumps(body.to_wire())
        delivery = Delivery(envelope.event_id, event.client_id, body.event_type, envelope.correlation_id, raw)
        new = NewRow(
            event_id=envelope.event_id,
            transaction_id=tx.transaction_id,
            client_id=event.client_id,
            event_type=body.event_type,
            payload=raw.decode(),
            correlation_id=envelope.correlation_id,
        )
        with self._scope(record, envelope.correlation_id, envelope.event_id):
            await self._first_attempt(delivery, new)

    async def on_retry(self, record: Record) -> None:
        """A record of a retry tier that is due now."""
        retry = record.envelope.payload_as(WebhookRetry)
        with self._scope(record, record.envelope.correlation_id, retry.event_id):
            await self._retry(retry.event_id, retry.attempt, replay=retry.replay)

    async def on_claimed(self, row: OutboxRow) -> None:
        """A row the sweep claimed: reset to PENDING by an operator (a replay), or left behind by a crash."""
        with (
            correlation_scope(row.correlation_id or row.id),
            self._tracer.start_as_current_span("webhook.deliver", attributes={"webhook.event_id": row.id}),
        ):
            if row.id in self._active:
                return
            self._active.add(row.id)
            try:
                await self._perform(Delivery.of(row), row.retry_count + 1, replay=row.claimed_from == "PENDING")
            finally:
                self._active.discard(row.id)

    # --- pipeline -------------------------------------------------------------------------------------------

    @contextmanager
    def _scope(self, record: Record, correlation_id: str, event_id: str) -> Iterator[None]:
        parent = context_from_kafka(record.headers)
        if not self._record_spans:
            token = otel_context.attach(self._unrecorded(parent))
            try:
                with correlation_scope(correlation_id):
                    yield
            finally:
                otel_context.detach(token)
            return
        with (
            correlation_scope(correlation_id),
            self._tracer.start_as_current_span(
                "webhook.deliver",
                context=parent,
                kind=trace.SpanKind.CONSUMER,
                attributes={"webhook.event_id": event_id, "messaging.source": record.topic},
            ),
        ):
            yield

    def _unrecorded(self, parent: otel_context.Context) -> otel_context.Context:
        """The record's trace context, or, when it carries none, a new trace (not recorded) so that the
        webhook's `traceparent` still ties its attempts and logs together."""
        if trace.get_current_span(parent).get_span_context().is_valid:
            return parent
        span = NonRecordingSpan(
            SpanContext(
                trace_id=self._ids.generate_trace_id(),
                span_id=self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.DEFAULT),
            )
        )
        return trace.set_span_in_context(span, parent)

    async def _first_attempt(self, delivery: Delivery, new: NewRow) -> None:
        async def claim() -> Delivery | None:
            return delivery if await self._writes.claim_new.submit(new) else None

        await self._exclusive(delivery.id, 1, claim, replay=False)

    async def _retry(self, event_id: str, attempt: int, *, replay: bool) -> None:
        async def claim() -> Delivery | None:
            row = await self._writes.claim.submit(Claim(event_id, attempt))
            return Delivery.of(row) if row is not None else None

        await self._exclusive(event_id, attempt, claim, replay=replay)

    async def _exclusive(
        self, event_id: str, attempt: int, claim: Callable[[], Awaitable[Delivery | None]], *, replay: bool
    ) -> None:
        """Claim the row for `attempt` and make it, unless this process already runs one for the event."""
        if event_id in self._active:
            log.info("duplicate record skipped while its delivery runs", extra={"eventId": event_id})
            return
        self._active.add(event_id)
        try:
            delivery = await claim()
            if delivery is None:
                await self._resume(event_id, attempt)
                return
            await self._perform(delivery, attempt, replay=replay)
        finally:
            self._active.discard(event_id)

    async def _perform(self, delivery: Delivery, attempt: int, *, replay: bool) -> None:
        endpoint = self._endpoints.get(delivery.client_id)
        if endpoint is None:
            entry = Attempt(
                attempt=attempt,
                at=datetime.now(UTC),
                latency_ms=0.0,
                error=NO_ENDPOINT,
                outcome=Outcome.DEAD_LETTER,
                replay=replay,
            )
            await self._dead_letter(delivery, entry, reason=f"{NO_ENDPOINT} {delivery.client_id!r}")
            return
        entry, retry_after_s = await self._call(endpoint, delivery, attempt, replay=replay)
        if entry.outcome is Outcome.DELIVERED:
            # Returns once the row says DELIVERED: only then may the source offset be committed.
            await self._writes.delivered.submit(Finished(delivery.id, entry))
            # DEBUG: the row and the deliveries metric record every success; a line each would flood the logs.
            log.debug("webhook delivered", extra={"eventId": delivery.id, "attempt": attempt, "status": entry.status})
        elif entry.outcome is Outcome.RETRY:
            await self._schedule_retry(delivery, entry, retry_after_s)
        elif classify(entry.status) is Outcome.DEAD_LETTER:
            await self._dead_letter(delivery, entry, reason=f"non-retryable HTTP {entry.status}")
        else:
            await self._dead_letter(
                delivery, entry, reason=f"retries exhausted after {attempt} attempts: {entry.error or 'failed'}"
            )
        endpoint.count(_result_label(entry))
        endpoint.ended(entry.outcome, attempt)

    async def _call(
        self, endpoint: Endpoint, delivery: Delivery, attempt: int, *, replay: bool
    ) -> tuple[Attempt, float | None]:
        if not endpoint.breaker.allow():
            outcome = Outcome.RETRY if self._policy.can_retry(attempt) else Outcome.DEAD_LETTER
            skipped = Attempt(
                attempt=attempt,
                at=datetime.now(UTC),
                latency_ms=0.0,
                error="circuit open: no call made",
                outcome=outcome,
                replay=replay,
                skipped=True,
            )
            return skipped, None
        headers = endpoint.signer.headers(delivery.id, delivery.body)
        headers["Content-Type"] = "application/json"
        headers[CORRELATION_HEADER] = delivery.correlation_id
        headers["X-Attempt"] = str(attempt)
        headers.update(http_trace_headers())
        if replay:
            headers["X-Replay"] = "true"
        try:
            response = await self._sender.post(endpoint, delivery.body, headers)
        except BaseException:
            endpoint.breaker.release()
            raise
        verdict = classify(response.status)
        if verdict is Outcome.RETRY:
            endpoint.breaker.record_failure()
        else:
            endpoint.breaker.record_success()
        if verdict is Outcome.RETRY and not self._policy.can_retry(attempt):
            verdict = Outcome.DEAD_LETTER
        endpoint.latency.observe(response.latency_s)
        entry = Attempt(
            attempt=attempt,
            at=response.at,
            status=response.status,
            latency_ms=round(response.latency_s * 1000, 3),
            error=response.error,
            response=response.excerpt,
            outcome=verdict,
            replay=replay,
        )
        return entry, response.retry_after_s

    async def _schedule_retry(self, delivery: Delivery, entry: Attempt, retry_after_s: float | None) -> None:
        delay_ms = self._policy.delay_ms(entry.attempt, retry_after_s)
        due = datetime.now(UTC) + timedelta(milliseconds=delay_ms)
        await self._writes.failed.submit(Finished(delivery.id, entry, next_retry_at=due))
        await self._emit_retry(delivery, attempt=entry.attempt + 1, due=due, replay=entry.replay)
        log.info(
            "webhook attempt failed, retry scheduled",
            extra={"eventId": delivery.id, "attempt": entry.attempt, "error": entry.error, "delayMs": round(delay_ms)},
        )

    async def _emit_retry(self, row: Delivery | OutboxRow, *, attempt: int, due: datetime, replay: bool) -> None:
        retry = WebhookRetry(
            event_id=row.id,
            client_id=row.client_id,
            event_type=row.event_type,
            attempt=attempt,
            due_at=due,
            replay=replay,
        )
        envelope = wrap(retry, correlation_id=row.correlation_id or row.id)
        await self._producer.send(retry_topic(attempt - 1), envelope, key=row.id)

    async def _dead_letter(self, delivery: Delivery, entry: Attempt, *, reason: str) -> None:
        final = await self._store.mark_dead(delivery.id, entry, reason=reason)
        if final is None:
            log.warning("webhook row vanished before dead-lettering", extra={"eventId": delivery.id})
            return
        await self._emit_dead_letter(final, reason)
        metrics.DEAD_LETTERS.labels(endpoint=delivery.client_id, reason=_reason_label(entry)).inc()
        log.warning(
            "webhook dead-lettered",
            extra={
                "eventId": delivery.id,
                "attempts": entry.attempt,
                "reason": reason,
                "clientId": logged_id(delivery.client_id),
            },
        )

    async def _emit_dead_letter(self, row: OutboxRow, reason: str) -> None:
        letter = WebhookDeadLetter(
            event_id=row.id,
            client_id=row.client_id,
            event_type=row.event_type,
            transaction_id=row.transaction_id,
            reason=reason,
            retry_count=row.retry_count,
            body=row.payload,
            attempts=[Attempt.model_validate(a) for a in row.attempts],
            dead_lettered_at=datetime.now(UTC),
        )
        envelope = wrap(letter, correlation_id=row.correlation_id or row.id)
        await self._producer.send(WEBHOOKS_DLQ, envelope, key=row.id)

    async def _resume(self, event_id: str, attempt: int) -> None:
        """The claim missed: this attempt was already made. Re-emit its decision in case we crashed after it."""
        row = await self._store.get(event_id)
        if row is None or row.retry_count != attempt:
            return
        if row.status == "FAILED" and row.next_retry_at is not None:
            replay = bool(row.attempts and row.attempts[-1].get("replay"))
            await self._emit_retry(row, attempt=attempt + 1, due=row.next_retry_at, replay=replay)
        elif row.status == "DEAD_LETTER":
            await self._emit_dead_letter(row, row.last_error or "dead-lettered")


def _require_uuid(value: str, name: str) -> None:
    try:
        uuid.UUID(value)
    except ValueError:
        raise EnvelopeError(f"{name} {value[:64]!r} is not a UUID") from None


def _result_label(entry: Attempt) -> str:
    return "circuit_open" if entry.skipped else entry.outcome.value


def _reason_label(entry: Attempt) -> str:
    if entry.error == NO_ENDPOINT:
        return "no_endpoint"
    if entry.status is not None and classify(entry.status) is Outcome.DEAD_LETTER:
        return "non_retryable"
    return "exhausted"
