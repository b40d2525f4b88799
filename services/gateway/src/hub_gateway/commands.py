"""The command of an admitted request on hub.commands: built once in the request, produced with its batch.

`prepare` runs in the request (its trace context goes into the record's headers); `publish` produces a group
commit's commands together and reports each one's fate, so the store can tell acknowledged commands from lost
ones. A record costs no task and no timer of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace

from hub_common.envelope import wrap
from hub_common.errors import KafkaUnavailableError
from hub_common.kafka import COMMANDS, KafkaProducer, RawRecord
from hub_common.schemas import TransactionCommand
from hub_common.telemetry import kafka_headers

if TYPE_CHECKING:
    from hub_gateway.store import Admission

log = logging.getLogger(__name__)
tracer = trace.get_tracer("hub_gateway")


@dataclass(frozen=True)
class PreparedCommand:
    record: RawRecord
    correlation_id: str
    ref_id: str
    transaction_id: str
    event_id: str
    # Only in a sampled trace: the publish span is then made around the produce, and the record carries its id.
    parent: otel_context.Context | None


class CommandPublisher:
    def __init__(self, producer: KafkaProducer, *, timeout_s: float) -> None:
        self._producer = producer
        self._timeout_s = timeout_s
        self._topic = producer.settings.topic(COMMANDS)

    def prepare(self, admission: Admission) -> PreparedCommand:
        """The admission's record, in the current (the request's) trace context."""
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
        current = otel_context.get_current()
        sampled = trace.get_current_span(current).get_span_context().trace_flags.sampled
        record = RawRecord(
            self._topic,
            envelope.encode(),
            request.player_id.encode(),
            # Not sampled: the request's own context (its trace id reaches the ledger's logs); no span is made.
            [] if sampled else kafka_headers(admission.correlation_id, context=current),
        )
        return PreparedCommand(
            record,
            admission.correlation_id,
            request.ref_id,
            command.transaction_id,
            envelope.event_id,
            parent=current if sampled else None,
        )

    async def publish(self, commands: Sequence[PreparedCommand]) -> list[Exception | None]:
        """Produce the commands together; per command, None once Kafka acknowledged it, else its error."""
        spans = [self._span(c) for c in commands]
        records = [
            c.record
            if span is None
            else replace(c.record, headers=kafka_headers(c.correlation_id, context=trace.set_span_in_context(span)))
            for c, span in zip(commands, spans, strict=True)
        ]
        results = await self._producer.send_each_raw(records, timeout_s=self._timeout_s)
        for command, result, span in zip(commands, results, spans, strict=True):
            if isinstance(result, TimeoutError):
                # Not expected: aiokafka fails a record after its own, shorter request timeout (producer.py).
                # If it outlived that, the record may still be delivered; the ledger then inserts its row.
                log.error(
                    "Kafka produce outlived its timeout; the command may still be delivered",
                    extra={"refId": command.ref_id, "transactionId": command.transaction_id},
                )
            if span is not None:
                if result is not None:
                    span.record_exception(result)
                span.end()
        return [
            KafkaUnavailableError("Kafka did not acknowledge the command in time")
            if isinstance(result, TimeoutError)
            else result
            for result in results
        ]

    def _span(self, command: PreparedCommand) -> trace.Span | None:
        if command.parent is None:
            return None
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": self._topic,
            "messaging.message.id": command.event_id,
        }
        return tracer.start_span(
            f"{self._topic} publish", context=command.parent, kind=trace.SpanKind.PRODUCER, attributes=attributes
        )
