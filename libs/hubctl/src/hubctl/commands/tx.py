"""`hubctl tx show|stuck|resolve|replay`: the runbook's "Transaction Stuck in PENDING" and "Transaction Replay".

- `resolve` looks the refId up at the operator (spending the shared budget) and finishes an open
  transaction: COMPLETED with the operator's record when it was applied, FAILED when it never was. Like
  the ledger (through the same `hub_common.transitions`) it writes the audit row and the `hub.transactions`
  event (via event_outbox, which the ledger's relay publishes) in the same database transaction.
- `replay` (runbook "Transaction Replay") runs only after the operator confirms it never saw the refId:
  an open transaction's command is re-enqueued (a lost command; audited); a FAILED WIN/REFUND goes back to
  PENDING (audited, deadline restarted) and is re-enqueued in the same database transaction. A FAILED BET is never
  replayed: the ledger cancelled it at the operator, and the RGS was told so.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import asyncpg
import orjson

from hub_common import db, transitions
from hub_common.envelope import wrap
from hub_common.kafka import COMMANDS, TRANSACTIONS, KafkaProducer
from hub_common.operator import (
    Budget,
    OperatorClient,
    OperatorSettings,
    OperatorTechnicalError,
    OperatorTransaction,
    Priority,
    operator_id,
)
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus
from hub_common.telemetry import new_correlation_id
from hub_common.transactions import TxRow
from hubctl import audit
from hubctl.bulk import add_change_options
from hubctl.cli import Subparsers, command, group
from hubctl.context import HubctlSettings, connect, create_pool
from hubctl.errors import HubctlError
from hubctl.output import render, section

COLUMNS = (
    "id, client_id, ref_id, type, player_id, amount_cents, currency, round_id, game_id, original_ref_id, "
    "round_closed, metadata::text AS metadata, request_hash, status, reason, error_code, balance_cents, "
    "operator_transaction_id, correlation_id, attempts, created_at, updated_at, completed_at, replayed_at"
)


def register(sub: Subparsers) -> None:
    nested = group(sub, "tx", help="transactions: show, stuck, resolve, replay", dest="tx_command")

    show = command(nested, "show", help="one transaction with its key, audit trail and events", handler=run_show)
    show.add_argument("ref_id")

    stuck_help = "PENDING/PROCESSING transactions older than --minutes (runbook)"
    stuck = command(nested, "stuck", help=stuck_help, handler=run_stuck)
    stuck.add_argument("--minutes", type=float, default=5.0)
    stuck.add_argument("--limit", type=int, default=50)

    resolve_help = "finish an open transaction from the operator's record"
    resolve = command(nested, "resolve", help=resolve_help, handler=run_resolve)
    resolve.add_argument("ref_id")
    add_change_options(resolve, reason="manual intervention via hubctl")

    replay_help = "re-run an open or FAILED credit transaction the operator confirms it never saw"
    replay = command(nested, "replay", help=replay_help, handler=run_replay)
    replay.add_argument("ref_id")
    add_change_options(replay, reason="replayed via hubctl")


async def _row(conn: db.Connection | asyncpg.Pool, ref_id: str, *, lock: bool = False) -> asyncpg.Record:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM transactions WHERE ref_id = $1" + (" FOR UPDATE" if lock else ""), ref_id
    )
    if row is None:
        raise HubctlError(f"no transaction with refId {ref_id}")
    return row


def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async def go() -> dict[str, Any]:
        conn = await connect(settings)
        try:
            row = await _row(conn, args.ref_id)
            keys = await conn.fetch(
                "SELECT key, scope, status, expires_at FROM idempotency_keys WHERE transaction_id = $1", row["id"]
            )
            audit = await conn.fetch(
                """SELECT at, action, actor, reason, after::text AS after FROM audit_log
                   WHERE entity = 'transaction' AND entity_id = $1 ORDER BY id""",
                str(row["id"]),
            )
            events = await conn.fetch(
                """SELECT event_id::text AS event_id, created_at, published_at FROM event_outbox
                   WHERE key = $1 AND topic = $2 ORDER BY id""",
                args.ref_id,
                TRANSACTIONS,
            )
        finally:
            await conn.close()
        found = dict(row)
        found["id"] = str(found["id"])
        found["metadata"] = orjson.loads(found["metadata"])
        return {
            "transaction": found,
            "keys": [dict(k) for k in keys],
            "audit": [dict(a) for a in audit],
            "events": [dict(e) for e in events],
        }

    found = asyncio.run(go())
    if args.json:
        render(found, as_json=True)
        return 0
    render(found["transaction"], as_json=False)
    for title, columns in (
        ("keys", ["key", "scope", "status", "expires_at"]),
        ("audit", ["at", "action", "actor", "reason"]),
        ("events", ["event_id", "created_at", "published_at"]),
    ):
        section(title)
        render(found[title], as_json=False, columns=columns)
    return 0


def run_stuck(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async def go() -> list[dict[str, Any]]:
        conn = await connect(settings)
        try:
            rows = await conn.fetch(
                """SELECT id::text AS id, ref_id, player_id, type, status, attempts, created_at, updated_at
                   FROM transactions
                   WHERE status IN ('PENDING', 'PROCESSING') AND created_at < NOW() - make_interval(mins => $1)
                   ORDER BY created_at LIMIT $2""",
                args.minutes,
                args.limit,
            )
        finally:
            await conn.close()
        return [dict(r) for r in rows]

    rows = asyncio.run(go())
    render(rows, as_json=args.json, columns=["ref_id", "player_id", "type", "status", "attempts", "created_at"])
    return 0


def _operator_settings(settings: HubctlSettings) -> OperatorSettings:
    return OperatorSettings(
        url=settings.operator_url, client_id=settings.operator_client_id, secret=settings.operator_secret
    )


async def _operator_record(
    pool: asyncpg.Pool, operator: OperatorSettings, row: asyncpg.Record
) -> OperatorTransaction | None:
    """The operator's record of the row's refId (None: it never applied it), spending the shared budget."""
    client = OperatorClient(operator, caller="hubctl")
    budget = Budget(pool, operator)
    try:
        await budget.acquire(Priority.CREDIT, timeout_s=120)
        return await client.get_transaction(
            operator_id(row["client_id"], row["ref_id"]), correlation_id=row["correlation_id"] or ""
        )
    except OperatorTechnicalError as exc:
        raise HubctlError(f"operator lookup failed: {exc.message}") from exc
    finally:
        await budget.close()
        await client.close()


def run_resolve(args: argparse.Namespace, settings: HubctlSettings) -> int:
    operator = _operator_settings(settings)
    actor = None if args.dry_run else audit.actor(settings)

    async def go() -> dict[str, Any]:
        pool = await create_pool(settings)
        try:
            row = await _row(pool, args.ref_id)
            if TxStatus(row["status"]).is_final:
                return {"refId": args.ref_id, "result": f"already {row['status']}: nothing to do"}
            record = await _operator_record(pool, operator, row)
            outcome: dict[str, Any] = {
                "status": "COMPLETED" if record else "FAILED",
                "error_code": None if record else ErrorCode.OPERATOR_UNAVAILABLE.value,
                "balance_cents": record.balance_cents if record else None,
                "operator_transaction_id": record.operator_transaction_id if record else None,
            }
            if actor is None:
                return {"refId": args.ref_id, "result": "dry run: would finish", **outcome}
            async with pool.acquire() as conn, conn.transaction():
                locked = await transitions.lock(conn, ref_id=args.ref_id)
                if locked is None:
                    raise HubctlError(f"no transaction with refId {args.ref_id}")
                if locked.row.status.is_final:
                    return {"refId": args.ref_id, "result": f"finished meanwhile: {locked.row.status}"}
                reason = f"{args.reason}: operator {'applied it' if record else 'never applied it'}"
                final = transitions.Finish(
                    TxStatus(outcome["status"]),
                    reason,
                    error_code=ErrorCode(outcome["error_code"]) if outcome["error_code"] else None,
                    balance_cents=outcome["balance_cents"],
                    operator_transaction_id=outcome["operator_transaction_id"],
                )
                await transitions.finish_many(
                    conn, [(locked.row, final)], locked.now, actor=actor.name, action=audit.TX_RESOLVE
                )
            return {"refId": args.ref_id, "result": "resolved", **outcome}
        finally:
            await pool.close()

    render(asyncio.run(go()), as_json=args.json)
    return 0


def _command(row: asyncpg.Record, key: str | None) -> TransactionCommand:
    return TransactionCommand(
        transaction_id=str(row["id"]),
        client_id=row["client_id"],
        idempotency_key=key,
        request_hash=row["request_hash"],
        **{k: row[k] for k in ("ref_id", "type", "player_id", "amount_cents", "currency", "round_id")},
        **{k: row[k] for k in ("game_id", "original_ref_id", "round_closed")},
        metadata=orjson.loads(row["metadata"]),
        admitted_at=row["created_at"],
    )


def _replay_refusal(row: asyncpg.Record) -> str | None:
    status = TxStatus(row["status"])
    if status in (TxStatus.COMPLETED, TxStatus.REJECTED):
        return f"already {status}: nothing to replay"
    if status is TxStatus.FAILED and row["type"] == "BET":
        return "a FAILED BET was cancelled at the operator and reported to the RGS: it is never replayed"
    return None


async def _audit_requeue(conn: db.Connection, row: asyncpg.Record, *, actor: audit.Actor, reason: str) -> None:
    """An open transaction keeps its state; the audit row records that its command was sent again, and by whom."""
    before = {"status": row["status"], "attempts": row["attempts"]}
    after = {"status": row["status"], "commandRequeued": True}
    await audit.write(
        conn, actor, audit.Entry(audit.TRANSACTION, str(row["id"]), audit.TX_REPLAY, reason, before, after)
    )


def run_replay(args: argparse.Namespace, settings: HubctlSettings) -> int:
    operator = _operator_settings(settings)
    actor = None if args.dry_run else audit.actor(settings)

    async def go() -> dict[str, Any]:
        pool = await create_pool(settings)
        try:
            row = await _row(pool, args.ref_id)
            if (refusal := _replay_refusal(row)) is not None:
                return {"refId": args.ref_id, "result": f"refused: {refusal}"}
            if await _operator_record(pool, operator, row) is not None:
                return {
                    "refId": args.ref_id,
                    "result": "refused: the operator has applied this transaction; use `hubctl tx resolve`",
                }
            if actor is None:
                return {"refId": args.ref_id, "result": "dry run: the operator never saw it; would replay"}
            producer = KafkaProducer(settings.kafka, client_id="hubctl")
            await producer.start()
            try:
                async with pool.acquire() as conn, conn.transaction():
                    locked = await _row(conn, args.ref_id, lock=True)
                    if (refusal := _replay_refusal(locked)) is not None:
                        return {"refId": args.ref_id, "result": f"refused: {refusal}"}
                    if locked["status"] == TxStatus.FAILED:
                        await transitions.reopen(
                            conn,
                            TxRow.from_record(locked),
                            actor=actor.name,
                            action=audit.TX_REPLAY,
                            reason=args.reason,
                        )
                    else:
                        await _audit_requeue(conn, locked, actor=actor, reason=args.reason)
                    key = await conn.fetchval(
                        "SELECT key FROM idempotency_keys WHERE transaction_id = $1", locked["id"]
                    )
                    cmd = _command(locked, key)
                    envelope = wrap(cmd, correlation_id=locked["correlation_id"] or new_correlation_id())
                    # Inside the database transaction: the reopening commits only once Kafka has the command.
                    await producer.send(COMMANDS, envelope, key=cmd.player_id)
            finally:
                await producer.stop()
            return {"refId": args.ref_id, "result": "replayed", "previousStatus": row["status"]}
        finally:
            await pool.close()

    render(asyncio.run(go()), as_json=args.json)
    return 0
