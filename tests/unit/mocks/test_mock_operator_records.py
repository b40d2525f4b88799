"""Admin records of the mock operator: operator-only records and altered records, as the feed then shows them."""

from __future__ import annotations

import pytest

from hub_common.schemas import TxType
from mock_operator.admin_client import AdminClientError, OperatorAdminClient
from mock_operator.client import SignedV2Client
from mock_operator.models import RecordChange, RecordSeed, TransactionIn


async def test_operator_only_record_is_fed_without_balance_effect(
    v2: SignedV2Client, admin: OperatorAdminClient
) -> None:
    before = (await admin.player("p-1")).balance_cents
    [record] = await admin.add_records(
        [RecordSeed(transaction_id="ghost-1", player_id="p-1", amount_cents=700, currency="EUR")]
    )
    assert record.status == "COMPLETED"
    assert (await admin.player("p-1")).balance_cents == before
    feed = await v2.feed(limit=100)
    assert [item["transactionId"] for item in feed.body["items"]] == ["ghost-1"]
    assert (await v2.get_transaction("ghost-1")).body["amountCents"] == 700
    with pytest.raises(AdminClientError) as err:
        await admin.add_records([RecordSeed(transaction_id="ghost-1", amount_cents=1, currency="EUR")])
    assert err.value.status == 409


async def test_altered_record_keeps_its_feed_position(v2: SignedV2Client, admin: OperatorAdminClient) -> None:
    for ref in ("b-1", "b-2"):
        tx = TransactionIn(transaction_id=ref, player_id="p-1", type=TxType.BET, amount_cents=100, currency="EUR")
        assert (await v2.post_transaction(tx)).status == 200
    altered = await admin.alter_record("b-1", RecordChange(amount_cents=90, currency="USD", status="REVERSED"))
    assert (altered.amount_cents, altered.currency, altered.status) == (90, "USD", "REVERSED")
    items = (await v2.feed(limit=100)).body["items"]
    assert [(i["transactionId"], i["amountCents"], i["status"]) for i in items] == [
        ("b-1", 90, "REVERSED"),
        ("b-2", 100, "COMPLETED"),
    ]
    with pytest.raises(AdminClientError) as err:
        await admin.alter_record("nope", RecordChange(amount_cents=1))
    assert err.value.status == 404


async def test_lost_record_leaves_lookups_and_the_feed_and_later_cursors_stay_valid(
    v2: SignedV2Client, admin: OperatorAdminClient
) -> None:
    before = (await admin.player("p-1")).balance_cents
    for ref in ("b-1", "b-2", "b-3"):
        tx = TransactionIn(transaction_id=ref, player_id="p-1", type=TxType.BET, amount_cents=100, currency="EUR")
        assert (await v2.post_transaction(tx)).status == 200
    first = await v2.feed(limit=1)
    lost = await admin.lose_record("b-2")
    assert lost.transaction_id == "b-2"
    assert (await admin.player("p-1")).balance_cents == before - 300  # the debit stays; only the record is gone
    assert (await v2.get_transaction("b-2")).status == 404
    assert [r.transaction_id for r in (await admin.ledger()).transactions] == ["b-1", "b-3"]
    # A cursor issued before the loss still reads on from where it was.
    rest = await v2.feed(limit=100, cursor=first.body["nextCursor"])
    assert [item["transactionId"] for item in rest.body["items"]] == ["b-3"]
    with pytest.raises(AdminClientError) as err:
        await admin.lose_record("b-2")
    assert err.value.status == 404
