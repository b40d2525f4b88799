"""The admission statement's less common paths: an expired key, a half-matching collision, an uncommitted rival.

Admission first tries one INSERT ... ON CONFLICT DO NOTHING statement and looks at what it collided with only
when it wrote nothing; these pin down that the slower path behaves as a lookup-first admission would.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest

from hub_common.operator import operator_id
from hub_common.settings import KafkaSettings
from hub_gateway.app import ADMISSION_POOL
from hub_gateway.settings import GatewaySettings
from support.gateway_it import CLIENT_ID, OTHER_CLIENT, read_commands, running_gateway, table_counts


def bet(ref_id: str) -> dict[str, Any]:
    return {"refId": ref_id, "type": "BET", "playerId": "p-1", "amountCents": 250, "currency": "EUR"}


async def test_an_expired_key_admits_a_new_request(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    async with running_gateway(gateway_settings) as gw:
        first = await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        finally:
            await conn.close()
        second = await gw.client.post_transaction(bet("bet-2"), idempotency_key="k-1")
        replay = await gw.client.post_transaction(bet("bet-2"), idempotency_key="k-1")

    assert (first.status, second.status) == (202, 202)
    assert "Idempotent-Replayed" not in second.headers
    assert second.body["transactionId"] != first.body["transactionId"]
    # The new key row replays the new transaction.
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.body["transactionId"] == second.body["transactionId"]
    assert [c.command.ref_id for c in await read_commands(kafka_settings)] == ["bet-1", "bet-2"]
    conn = await asyncpg.connect(database_url)
    try:
        keys = await conn.fetch("SELECT transaction_id FROM idempotency_keys")
    finally:
        await conn.close()
    assert [str(k["transaction_id"]) for k in keys] == [second.body["transactionId"]]


async def test_a_reused_key_with_a_new_ref_id_leaves_no_row_behind(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    # The statement inserts the new refId's transaction row before the key collides: it must be rolled back.
    async with running_gateway(gateway_settings) as gw:
        assert (await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")).status == 202
        reused = await gw.client.post_transaction(bet("bet-2"), idempotency_key="k-1")
        missing = await gw.client.get_transaction("bet-2")
    assert (reused.status, reused.error_code) == (409, "IDEMPOTENCY_KEY_REUSED")
    assert missing.status == 404
    assert await table_counts(database_url) == {"transactions": 1, "idempotency_keys": 1, "audit_log": 1}
    assert len(await read_commands(kafka_settings)) == 1


async def _hold_ref(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, request_hash,
                                     operator_id)
           VALUES ($1, $2, 'bet-1', 'BET', 'p-1', 250, 'EUR', 'h', $3)""",
        uuid.uuid4(),
        CLIENT_ID,
        operator_id(CLIENT_ID, "bet-1"),
    )


async def _hold_key(conn: asyncpg.Connection) -> None:
    await conn.execute(
        """INSERT INTO idempotency_keys (id, key, scope, request_hash, expires_at)
           VALUES ($1, 'k-1', $2, 'h', now() + interval '1 hour')""",
        uuid.uuid4(),
        CLIENT_ID,
    )


@pytest.mark.parametrize("hold", [_hold_ref, _hold_key], ids=["ref_id", "key"])
async def test_a_rival_admission_still_open_answers_in_progress(
    gateway_settings: GatewaySettings,
    kafka_settings: KafkaSettings,
    database_url: str,
    hold: Callable[[asyncpg.Connection], Awaitable[None]],
) -> None:
    settings = gateway_settings.model_copy(update={"admission_lock_timeout_ms": 100, "in_progress_retry_after_s": 3})
    rival = await asyncpg.connect(database_url)
    try:
        async with running_gateway(settings) as gw:
            transaction = rival.transaction()
            await transaction.start()
            await hold(rival)
            busy = await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")
            # The rival gives up: the same request is admitted now.
            await transaction.rollback()
            admitted = await gw.client.post_transaction(bet("bet-1"), idempotency_key="k-1")
            pool_size = gw.app[ADMISSION_POOL].get_size()
    finally:
        await rival.close()
    assert (busy.status, busy.error_code, busy.headers["Retry-After"]) == (409, "REQUEST_IN_PROGRESS", "3")
    assert admitted.status == 202
    assert [c.command.ref_id for c in await read_commands(kafka_settings)] == ["bet-1"]
    assert await table_counts(database_url) == {"transactions": 1, "idempotency_keys": 1, "audit_log": 1}
    # The lock wait cost no connection: the admission pool is still whole.
    assert pool_size == settings.admission_pool_size


async def test_a_ref_id_whose_operator_id_an_older_row_holds_is_a_duplicate(
    gateway_settings: GatewaySettings, kafka_settings: KafkaSettings, database_url: str
) -> None:
    # A row admitted before refIds were per client kept its refId as its operator id; that refId may look like
    # another client's `{clientId}:{refId}`. The operator has one id space: that request cannot be sent.
    legacy = operator_id(OTHER_CLIENT, "bet-9")
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            """INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, request_hash,
                                         operator_id)
               VALUES ($1, $2, $3, 'BET', 'p-1', 250, 'EUR', 'h', $3)""",
            uuid.uuid4(),
            CLIENT_ID,
            legacy,
        )
    finally:
        await conn.close()
    async with running_gateway(gateway_settings) as gw:
        taken = await gw.other.post_transaction(bet("bet-9"), idempotency_key="k-9")
        hidden = await gw.other.get_transaction("bet-9")
    assert (taken.status, taken.error_code) == (409, "DUPLICATE_REF_ID")
    assert legacy not in str(taken.body)  # nothing about the other transaction is revealed
    assert hidden.status == 404
    assert await read_commands(kafka_settings) == []
