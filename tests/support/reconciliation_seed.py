"""Seeding the two sides of reconciliation directly in PostgreSQL (the rules and report tests, the benchmark's
small cousin): Hub transactions as the ledger leaves them, compensations, and operator records as the feed stores
them, plus the feed's coverage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson

from hub_common.operator import cancel_id, operator_id

T0 = datetime(2024, 1, 15, 10, tzinfo=UTC)
CLIENT_ID = "rgs-demo"


def op_id(ref_id: str) -> str:
    """The operator id of the seeded client's `ref_id` (what the gateway stores at admission)."""
    return operator_id(CLIENT_ID, ref_id)


def cancel_of(ref_id: str) -> str:
    return cancel_id(op_id(ref_id))


async def hub_tx(
    conn: asyncpg.Connection,
    ref_id: str,
    *,
    status: str = "COMPLETED",
    type: str = "BET",
    sent: bool = True,
    amount: int = 100,
    currency: str = "EUR",
    created: datetime = T0,
    completed: datetime | None = None,
    sent_as: str | None = None,
) -> uuid.UUID:
    """A transaction as the ledger leaves it; `sent_as`: its operator id when not `op_id(ref_id)` (a row admitted
    before refIds were per client keeps its refId)."""
    tx_id = uuid.uuid4()
    final = status in ("COMPLETED", "REJECTED", "FAILED")
    await conn.execute(
        """INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, request_hash,
                                     status, attempts, created_at, updated_at, completed_at, operator_id)
           VALUES ($1, $11, $2, $3, 'p-1', $4, $5, 'h', $6, $7, $8, $8, $9, $10)""",
        tx_id,
        ref_id,
        type,
        amount,
        currency,
        status,
        1 if sent else 0,
        created,
        (completed or created + timedelta(seconds=1)) if final else None,
        sent_as or op_id(ref_id),
        CLIENT_ID,
    )
    return tx_id


async def compensation(
    conn: asyncpg.Connection,
    tx_id: uuid.UUID,
    ref_id: str,
    *,
    status: str,
    amount: int = 100,
    currency: str = "EUR",
    updated: datetime = T0 + timedelta(minutes=5),
) -> str:
    cancel = cancel_of(ref_id)
    request = {
        "transactionId": cancel,
        "playerId": "p-1",
        "type": "REFUND",
        "amountCents": amount,
        "currency": currency,
        "originalTransactionId": op_id(ref_id),
    }
    await conn.execute(
        """INSERT INTO ledger_compensations (transaction_id, operator_transaction_id, request, status, created_at,
                                            updated_at)
           VALUES ($1, $2, $3::jsonb, $4, $5, $5)""",
        tx_id,
        cancel,
        orjson.dumps(request).decode(),
        status,
        updated,
    )
    return cancel


async def op_record(
    conn: asyncpg.Connection,
    transaction_id: str,
    *,
    amount: int = 100,
    currency: str = "EUR",
    status: str = "COMPLETED",
    type: str = "BET",
    created: datetime = T0,
) -> None:
    record = {"transactionId": transaction_id, "amountCents": amount, "currency": currency, "status": status}
    await conn.execute(
        """INSERT INTO operator_transactions (transaction_id, operator_transaction_id, player_id, type, amount_cents,
                                              currency, status, created_at, seen_at, record)
           VALUES ($1, $2, 'p-1', $3, $4, $5, $6, $7, $7, $8::jsonb)""",
        transaction_id,
        f"op-{transaction_id}",
        type,
        amount,
        currency,
        status,
        created,
        orjson.dumps(record).decode(),
    )


async def feed_covered(conn: asyncpg.Connection, covered_to: datetime, name: str = "operator") -> None:
    await conn.execute(
        """INSERT INTO operator_feed_state (name, window_from, window_to, cursor, covered_to)
           VALUES ($1, $2, $2, NULL, $2)
           ON CONFLICT (name) DO UPDATE SET window_from = $2, window_to = $2, covered_to = $2""",
        name,
        covered_to,
    )
