"""`hubctl tx show|stuck|resolve|replay`: the runbook's "Transaction Stuck in PENDING" and "Transaction Replay".

A refId names one transaction per RGS client: `--client` picks the client when several have used the refId.

Both changing commands obey the ledger's ownership rule (`hub_common.transitions`): a transaction whose lease
someone holds (the ledger, while it calls the operator, waits for budget or retries) is refused; one whose lease
expired (or that nobody took yet) is taken over first, which fences the old holder: its late result changes
nothing. Only then is the operator asked, and the final write names hubctl's lease token.

- `resolve` looks the transaction up at the operator (spending the shared budget) and finishes it: COMPLETED
  with the operator's record when it was applied; when it never was, a WIN/REFUND ends FAILED and a BET ends
  FAILED with its compensating cancel queued in `ledger_compensations` (the ledger's compensator sends it, as
  for a BET the ledger gives up on). Like the ledger (through the same `hub_common.transitions`) it writes the
  audit row and the `hub.transactions` event (via event_outbox, which the ledger's relay publishes) in the same
  database transaction.
- `replay` (runbook "Transaction Replay") runs only after the operator confirms it never saw the transaction:
  an open transaction's command is re-enqueued and its lease handed back to the ledger (a lost command;
  audited); a FAILED WIN/REFUND goes back to PENDING (audited, deadline restarted) and is re-enqueued in the same
  database transaction. A FAILED BET is never replayed: the ledger cancelled it at the operator, and the RGS was
  told so.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
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
)
from hub_common.schemas import ErrorCode, TransactionCommand, TxStatus, TxType
from hub_common.telemetry import new_correlation_id
from hub_common.transactions import TxRow
from hubctl import audit
from hubctl.bulk import add_change_options
from hubctl.cli import Subparsers, command, group
from hubctl.context import HubctlSettings, connection, create_pool
from hubctl.errors import HubctlError
from hubctl.output import render, section

COLUMNS = (
    "id, client_id, ref_id, type, player_id, amount_cents, currency, round_id, game_id, original_ref_id, "
    "round_closed, metadata::text AS metadata, request_hash, status, reason, error_code, balance_cents, "
    "operator_transaction_id, correlation_id, attempts, created_at, updated_at, completed_at, replayed_at, "
    "operator_id, lease_owner, lease_token, lease_expires_at, send_by, possibly_sent_at"
)
# How long hubctl holds a transaction it took over: its operator lookup waits up to `_BUDGET_WAIT_S` for budget,
# then one call; if it ever outlived this, its final write would still be fenced by the token.
_BUDGET_WAIT_S = 120.0
LEASE_S = 180.0


def register(sub: Subparsers) -> None:
    nested = group(sub, "tx", help="transactions: show, stuck, resolve, replay", dest="tx_command")

    show = command(nested, "show", help="one transaction with its key, audit trail and events", handler=run_show)
    _add_ref(show)

    stuck_help = "PENDING/PROCESSING transactions older than --minutes (runbook)"
    stuck = command(nested, "stuck", help=stuck_help, handler=run_stuck)
    stuck.add_argument("--minutes", type=float, default=5.0)
    stuck.add_argument("--limit", type=int, default=50)

    resolve_help = "finish an open transaction from the operator's record"
    resolve = command(nested, "resolve", help=resolve_help, handler=run_resolve)
    _add_ref(resolve)
    add_change_options(resolve, reason="manual intervention via hubctl")

    replay_help = "re-run an open or FAILED credit transaction the operator confirms it never saw"
    replay = command(nested, "replay", help=replay_help, handler=run_replay)
    _add_ref(replay)
    add_change_options(replay, reason="replayed via hubctl")


def _add_ref(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref_id")
    parser.add_argument("--client", help="the RGS client whose refId it is (needed when several used it)")


async def _row(
    conn: db.Connection | asyncpg.Pool, ref_id: str, client: str | None, *, lock: bool = False
) -> asyncpg.Record:
    rows = await conn.fetch(
        f"""SELECT {COLUMNS}, now() AS tx_now FROM transactions
            WHERE ref_id = $1 AND ($2::text IS NULL OR client_id = $2) ORDER BY client_id"""  # noqa: S608 - COLUMNS and FOR UPDATE are literals; values are bind parameters
        + (" FOR UPDATE" if lock else ""),
        ref_id,
        client,
    )
    if not rows:
        raise HubctlError(f"no transaction with refId {ref_id}" + (f" for client {client}" if client else ""))
    if len(rows) > 1:
        clients = ", ".join(r["client_id"] for r in rows)
        raise HubctlError(f"refId {ref_id} exists for several clients ({clients}): give --client")
    return rows[0]


async def run_show(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async with connection(settings) as conn:
        row = await _row(conn, args.ref_id, args.client)
        keys = await conn.fetch(
            "SELECT key, scope, status, expires_at FROM idempotency_keys WHERE transaction_id = $1", row["id"]
        )
        trail = await conn.fetch(
            """SELECT at, action, actor, reason, after::text AS after FROM audit_log
               WHERE entity = 'transaction' AND entity_id = $1 ORDER BY id""",
            str(row["id"]),
        )
        # Keyed by refId, which other clients may share: the payload names the transaction.
        events = await conn.fetch(
            """SELECT event_id::text AS event_id, created_at, published_at FROM event_outbox
               WHERE key = $1 AND topic = $2
                 AND convert_from(value, 'UTF8')::jsonb #>> '{payload,transaction,transactionId}' = $3
               ORDER BY id""",
            row["ref_id"],
            TRANSACTIONS,
            str(row["id"]),
        )
    found = {k: v for k, v in dict(row).items() if k != "tx_now"}
    found["id"] = str(found["id"])
    found["metadata"] = orjson.loads(found["metadata"])
    result = {
        "transaction": found,
        "keys": [dict(k) for k in keys],
        "audit": [dict(a) for a in trail],
        "events": [dict(e) for e in events],
    }
    if args.json:
        render(result, as_json=True)
        return 0
    render(result["transaction"], as_json=False)
    for title, columns in (
        ("keys", ["key", "scope", "status", "expires_at"]),
        ("audit", ["at", "action", "actor", "reason"]),
        ("events", ["event_id", "created_at", "published_at"]),
    ):
        section(title)
        render(result[title], as_json=False, columns=columns)
    return 0


async def run_stuck(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async with connection(settings) as conn:
        rows = await conn.fetch(
            """SELECT id::text AS id, client_id, ref_id, player_id, type, status, attempts, created_at, updated_at,
                      lease_owner, CASE WHEN lease_expires_at > now() THEN lease_expires_at END AS held_until
               FROM transactions
               WHERE status IN ('PENDING', 'PROCESSING') AND created_at < NOW() - make_interval(mins => $1)
               ORDER BY created_at LIMIT $2""",
            args.minutes,
            args.limit,
        )
    columns = ["client_id", "ref_id", "player_id", "type", "status", "attempts", "created_at", "held_until"]
    render([dict(r) for r in rows], as_json=args.json, columns=columns)
    return 0


def _operator_settings(settings: HubctlSettings) -> OperatorSettings:
    return OperatorSettings(
        url=settings.operator_url, client_id=settings.operator_client_id, secret=settings.operator_secret
    )


async def _operator_record(pool: asyncpg.Pool, operator: OperatorSettings, tx: TxRow) -> OperatorTransaction | None:
    """The operator's record of the transaction (None: it never applied it), spending the shared budget."""
    client = OperatorClient(operator, caller="hubctl")
    budget = Budget(pool, operator, caller="hubctl")
    try:
        await budget.acquire(Priority.CREDIT, timeout_s=_BUDGET_WAIT_S)
        return await client.get_transaction(tx.operator_id, correlation_id=tx.correlation_id or "")
    except OperatorTechnicalError as exc:
        raise HubctlError(f"operator lookup failed: {exc.message}") from exc
    finally:
        await budget.close()
        await client.close()


def _held(tx: TxRow) -> HubctlError:
    return HubctlError(
        f"refused: refId {tx.ref_id} (client {tx.client_id}) is {transitions.describe_lease(tx)}: the ledger is "
        "working on it (calling the operator, waiting for budget or retrying). Wait for its outcome, or run this "
        "again once the lease has expired (a stopped ledger's lease runs out after LEDGER_LEASE_TTL_S); nothing changed"
    )


async def _take(pool: asyncpg.Pool, tx: TxRow, actor: audit.Actor) -> tuple[TxRow, str]:
    """Take the open transaction's lease (fencing its former holder), or refuse while someone holds it.

    Returns the row as taken and what it was taken from (for the audit reason)."""
    async with pool.acquire() as conn, conn.transaction():
        locked = await transitions.lock(conn, tx.id)
        assert locked is not None  # rows are never deleted
        current = locked.row
        if current.status.is_final:
            raise HubctlError(f"finished meanwhile: {current.status}; nothing changed")
        if not transitions.may_take(current, locked.now):
            raise _held(current)
        previous = (
            f"took it over from {current.lease_owner} (lease expired {current.lease_expires_at})"
            if current.lease_owner
            else "nobody held it"
        )
        [taken] = await transitions.take_over_many(
            conn, [current], locked.now, lease_owner=f"hubctl:{actor.name}", lease_s=LEASE_S
        )
        return taken, previous


async def _locked_as_holder(conn: db.Connection, taken: TxRow) -> transitions.Locked:
    """The row locked for hubctl's final write, still under the lease hubctl took."""
    locked = await transitions.lock(conn, taken.id)
    assert locked is not None  # rows are never deleted
    if locked.row.lease_token != taken.lease_token:
        what = locked.row.status if locked.row.status.is_final else transitions.describe_lease(locked.row)
        raise HubctlError(f"lost the transaction while asking the operator (now {what}); nothing changed")
    return locked


def _resolution(tx: TxRow, record: OperatorTransaction | None, reason: str) -> transitions.Finish:
    if record is not None:
        return transitions.Finish(
            TxStatus.COMPLETED,
            f"{reason}: operator applied it",
            balance_cents=record.balance_cents,
            operator_transaction_id=record.operator_transaction_id,
        )
    if tx.type is TxType.BET:
        # As the ledger does for a BET it gives up on: a late apply at the operator is reversed by the cancel.
        return transitions.Finish(
            TxStatus.FAILED,
            f"{reason}: operator never applied it; cancelled with a refund",
            error_code=ErrorCode.OPERATOR_UNAVAILABLE,
            compensate=True,
        )
    return transitions.Finish(
        TxStatus.FAILED, f"{reason}: operator never applied it", error_code=ErrorCode.OPERATOR_UNAVAILABLE
    )


def _outcome(final: transitions.Finish) -> dict[str, Any]:
    return {
        "status": final.status.value,
        "error_code": final.error_code.value if final.error_code else None,
        "balance_cents": final.balance_cents,
        "operator_transaction_id": final.operator_transaction_id,
        "cancelQueued": final.compensate,
    }


async def run_resolve(args: argparse.Namespace, settings: HubctlSettings) -> int:
    operator = _operator_settings(settings)
    actor = None if args.dry_run else audit.actor(settings)
    pool = await create_pool(settings)
    try:
        row = await _row(pool, args.ref_id, args.client)
        tx = TxRow.from_record(row)
        base = {"refId": tx.ref_id, "clientId": tx.client_id}
        if tx.status.is_final:
            result = {**base, "result": f"already {tx.status}: nothing to do"}
        elif actor is None:
            if not transitions.may_take(tx, row["tx_now"]):
                raise _held(tx)
            final = _resolution(tx, await _operator_record(pool, operator, tx), args.reason)
            result = {**base, "result": "dry run: would finish", **_outcome(final)}
        else:
            taken, previous = await _take(pool, tx, actor)
            final = _resolution(taken, await _operator_record(pool, operator, taken), args.reason)
            final = replace(final, reason=f"{final.reason} ({previous})")
            async with pool.acquire() as conn, conn.transaction():
                locked = await _locked_as_holder(conn, taken)
                await transitions.finish_many(
                    conn,
                    [(locked.row, final, taken.lease_token)],
                    locked.now,
                    actor=actor.name,
                    action=audit.TX_RESOLVE,
                )
            result = {**base, "result": "resolved", **_outcome(final)}
    finally:
        await pool.close()
    render(result, as_json=args.json)
    return 0


def _command(tx: TxRow, row: asyncpg.Record, key: str | None) -> TransactionCommand:
    return TransactionCommand(
        transaction_id=str(tx.id),
        client_id=tx.client_id,
        idempotency_key=key,
        request_hash=row["request_hash"],
        ref_id=tx.ref_id,
        type=tx.type,
        player_id=tx.player_id,
        amount_cents=tx.amount_cents,
        currency=tx.currency,
        round_id=tx.round_id,
        game_id=tx.game_id,
        original_ref_id=tx.original_ref_id,
        round_closed=row["round_closed"],
        metadata=orjson.loads(row["metadata"]),
        admitted_at=tx.created_at,
        operator_id=tx.operator_id,
    )


def _replay_refusal(tx: TxRow) -> str | None:
    if tx.status in (TxStatus.COMPLETED, TxStatus.REJECTED):
        return f"already {tx.status}: nothing to replay"
    if tx.status is TxStatus.FAILED and tx.type is TxType.BET:
        return "a FAILED BET was cancelled at the operator and reported to the RGS: it is never replayed"
    return None


async def _audit_requeue(conn: db.Connection, tx: TxRow, *, actor: audit.Actor, reason: str) -> None:
    """An open transaction keeps its state; the audit row records that its command was sent again, and by whom."""
    before = {"status": tx.status.value, "attempts": tx.attempts}
    after = {"status": tx.status.value, "commandRequeued": True}
    await audit.write(conn, actor, audit.Entry(audit.TRANSACTION, str(tx.id), audit.TX_REPLAY, reason, before, after))


async def run_replay(args: argparse.Namespace, settings: HubctlSettings) -> int:
    operator = _operator_settings(settings)
    actor = None if args.dry_run else audit.actor(settings)
    pool = await create_pool(settings)
    try:
        result = await _replay(pool, args, settings, operator, actor)
    finally:
        await pool.close()
    render(result, as_json=args.json)
    return 0


async def _replay(
    pool: asyncpg.Pool,
    args: argparse.Namespace,
    settings: HubctlSettings,
    operator: OperatorSettings,
    actor: audit.Actor | None,
) -> dict[str, Any]:
    row = await _row(pool, args.ref_id, args.client)
    tx = TxRow.from_record(row)
    base = {"refId": tx.ref_id, "clientId": tx.client_id}
    if (refusal := _replay_refusal(tx)) is not None:
        return {**base, "result": f"refused: {refusal}"}
    is_open = not tx.status.is_final
    if is_open and not transitions.may_take(tx, row["tx_now"]):
        raise _held(tx)
    if actor is None:
        if await _operator_record(pool, operator, tx) is not None:
            return {**base, "result": "refused: the operator has applied this transaction; use `hubctl tx resolve`"}
        return {**base, "result": "dry run: the operator never saw it; would replay"}
    # An open transaction is taken first, so no ledger call can land between the lookup and the requeue.
    taken = (await _take(pool, tx, actor))[0] if is_open else tx
    if await _operator_record(pool, operator, taken) is not None:
        if is_open:
            async with pool.acquire() as conn:
                await transitions.release(conn, taken.id, taken.lease_token)
        return {**base, "result": "refused: the operator has applied this transaction; use `hubctl tx resolve`"}
    producer = KafkaProducer(settings.kafka, client_id="hubctl")
    await producer.start()
    try:
        async with pool.acquire() as conn, conn.transaction():
            if is_open:
                current = (await _locked_as_holder(conn, taken)).row
                await _audit_requeue(conn, current, actor=actor, reason=args.reason)
                # Handed back: the ledger takes it when the command arrives.
                await transitions.release(conn, current.id, taken.lease_token)
            else:
                locked = await transitions.lock(conn, tx.id)
                assert locked is not None  # rows are never deleted
                current = locked.row
                if (refusal := _replay_refusal(current)) is not None:
                    return {**base, "result": f"refused: {refusal}"}
                if current.status is not TxStatus.FAILED:
                    raise HubctlError(f"changed meanwhile: now {current.status}; nothing changed")
                await transitions.reopen(conn, current, actor=actor.name, action=audit.TX_REPLAY, reason=args.reason)
            key = await conn.fetchval("SELECT key FROM idempotency_keys WHERE transaction_id = $1", current.id)
            cmd = _command(current, row, key)
            envelope = wrap(cmd, correlation_id=current.correlation_id or new_correlation_id())
            # Inside the database transaction: the change commits only once Kafka has the command.
            await producer.send(COMMANDS, envelope, key=cmd.player_id)
    finally:
        await producer.stop()
    return {**base, "result": "replayed", "previousStatus": tx.status.value}
