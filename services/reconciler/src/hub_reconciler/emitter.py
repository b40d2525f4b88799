"""Publishes Mismatch/1 envelopes to hub.reconciliation.mismatches (key refId)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from hub_common.envelope import wrap
from hub_common.kafka import MISMATCHES, KafkaProducer
from hub_reconciler.compare import Finding
from hub_reconciler.metrics import MISMATCHES as MISMATCH_COUNT
from hub_reconciler.models import JoinEntry, Mismatch, mismatch_event_id

log = logging.getLogger(__name__)


class MismatchEmitter:
    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer

    async def emit(self, ref_id: str, finding: Finding, entry: JoinEntry, *, correlation_id: str) -> None:
        mismatch = Mismatch(
            ref_id=ref_id,
            kind=finding.kind,
            detail=finding.detail,
            hub=entry.hub,
            operator=entry.operator,
            detected_at=datetime.now(UTC),
        )
        envelope = wrap(mismatch, correlation_id=correlation_id, event_id=mismatch_event_id(ref_id, finding.kind))
        await self._producer.send(MISMATCHES, envelope, key=ref_id)
        MISMATCH_COUNT.labels(kind=finding.kind.value).inc()
        log.warning(
            "reconciliation mismatch",
            extra={"refId": ref_id, "kind": finding.kind.value, "detail": finding.detail},
        )
