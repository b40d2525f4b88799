from __future__ import annotations

from datetime import UTC, datetime

from hub_common.schemas import Transaction, TransactionEvent, TxStatus, TxType
from hub_reconciler.join import on_hub_event, on_operator_record, on_tick
from hub_reconciler.models import JoinEntry, MismatchKind, OperatorRecord

GRACE = 600.0
NOW = 1_700_000_000.0


def hub_event(status: TxStatus, *, ref_id: str = "bet-1", amount: int = 250) -> TransactionEvent:
    moment = datetime(2024, 1, 15, tzinfo=UTC)
    tx = Transaction(
        transaction_id="6f1c3c1e-8d8e-4b1a-9c55-000000000001",
        ref_id=ref_id,
        type=TxType.BET,
        player_id="p-1",
        amount_cents=amount,
        currency="EUR",
        status=status,
        created_at=moment,
        updated_at=moment,
    )
    return TransactionEvent(client_id="rgs-demo", transaction=tx)


def op_record(*, ref_id: str = "bet-1", amount: int = 250, currency: str = "EUR") -> OperatorRecord:
    return OperatorRecord(
        transaction_id=ref_id, amount_cents=amount, currency=currency, status="COMPLETED", player_id="p-1"
    )


def test_non_final_hub_events_do_not_touch_the_table() -> None:
    for status in (TxStatus.PENDING, TxStatus.PROCESSING):
        step = on_hub_event(None, hub_event(status), now=NOW, grace_s=GRACE)
        assert step.entry is None and not step.delete and step.findings == []


def test_matching_sides_settle_without_findings() -> None:
    first = on_hub_event(None, hub_event(TxStatus.COMPLETED), now=NOW, grace_s=GRACE)
    assert first.entry is not None and first.findings == [] and first.entry.settled_at is None
    second = on_operator_record(first.entry, op_record(), now=NOW + 5, grace_s=GRACE)
    assert second.findings == []
    assert second.entry is not None and second.entry.settled_at == NOW + 5
    assert second.entry.first_seen_at == NOW


def test_amount_mismatch_is_reported_once() -> None:
    first = on_operator_record(None, op_record(amount=999), now=NOW, grace_s=GRACE)
    second = on_hub_event(first.entry, hub_event(TxStatus.COMPLETED), now=NOW + 1, grace_s=GRACE)
    assert [f.kind for f in second.findings] == [MismatchKind.AMOUNT_MISMATCH]
    assert second.entry is not None and second.entry.reported == (MismatchKind.AMOUNT_MISMATCH,)
    # The same final event delivered again (at-least-once) finds nothing new.
    again = on_hub_event(second.entry, hub_event(TxStatus.COMPLETED), now=NOW + 2, grace_s=GRACE)
    assert again.findings == []


def test_repeated_feed_record_is_a_no_op() -> None:
    first = on_operator_record(None, op_record(), now=NOW, grace_s=GRACE)
    assert on_operator_record(first.entry, op_record(), now=NOW + 60, grace_s=GRACE).entry is None


def test_tick_reports_missing_side_after_grace_only() -> None:
    entry = on_hub_event(None, hub_event(TxStatus.COMPLETED), now=NOW, grace_s=GRACE).entry
    early = on_tick(entry, now=NOW + GRACE - 1, grace_s=GRACE, retention_s=86_400)
    assert early.entry is None and early.findings == []
    due = on_tick(entry, now=NOW + GRACE, grace_s=GRACE, retention_s=86_400)
    assert [f.kind for f in due.findings] == [MismatchKind.MISSING_IN_OPERATOR]
    assert due.entry is not None
    # A second tick for the same refId (the timer may send duplicates) changes nothing.
    assert on_tick(due.entry, now=NOW + GRACE + 1, grace_s=GRACE, retention_s=86_400).findings == []


def test_late_operator_record_is_still_compared_after_missing_was_reported() -> None:
    entry = JoinEntry.model_validate(
        {
            "hub": {"status": "COMPLETED", "amountCents": 250, "currency": "EUR"},
            "firstSeenAt": NOW,
            "reported": ["MISSING_IN_OPERATOR"],
        }
    )
    step = on_operator_record(entry, op_record(currency="USD"), now=NOW + 900, grace_s=GRACE)
    assert [f.kind for f in step.findings] == [MismatchKind.CURRENCY_MISMATCH]


def test_tick_deletes_expired_entries_and_ignores_unknown_ref_ids() -> None:
    entry = JoinEntry.model_validate(
        {"hub": {"status": "REJECTED", "amountCents": 1, "currency": "EUR"}, "firstSeenAt": NOW}
    )
    assert on_tick(entry, now=NOW + 100, grace_s=GRACE, retention_s=100).delete
    assert on_tick(None, now=NOW, grace_s=GRACE, retention_s=100) == on_tick(
        None, now=NOW + 1, grace_s=GRACE, retention_s=100
    )
