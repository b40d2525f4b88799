"""The facts the rules need (`hub_ledger.rules.RuleContext`), read on the connection that holds the rows' locks,
so a decision and the transition it leads to see the same database.

Every fact is scoped to the transaction's client: a refId, an originalRefId, a round and a tombstone name
something of that client only, so one client can neither refer to nor block another's transactions.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

from hub_common import db
from hub_common.operator import operator_id
from hub_common.schemas import TxType
from hub_common.transactions import COLUMNS, TxRow
from hub_ledger.rules import RuleContext


async def load_contexts(
    conn: db.Connection, rows: Sequence[TxRow], known: Mapping[uuid.UUID, bool]
) -> dict[uuid.UUID, RuleContext]:
    """The context of each PENDING row: BETs in one query (tombstones) unless `known` already says whether a
    tombstone names each (read with the rows' locks), WINs and REFUNDs one by one."""
    bets = [tx for tx in rows if tx.type is TxType.BET and tx.id not in known]
    tombstoned = {(tx.client_id, tx.ref_id) for tx in rows if known.get(tx.id)}
    if bets:
        found = await conn.fetch(
            """SELECT s.client_id, s.ref_id FROM refund_tombstones s
               JOIN unnest($1::text[], $2::text[]) AS b(client_id, ref_id) USING (client_id, ref_id)""",
            [tx.client_id for tx in bets],
            [tx.ref_id for tx in bets],
        )
        tombstoned |= {(r["client_id"], r["ref_id"]) for r in found}
    contexts: dict[uuid.UUID, RuleContext] = {}
    for tx in rows:
        if tx.type is TxType.BET:
            contexts[tx.id] = RuleContext(tombstoned=(tx.client_id, tx.ref_id) in tombstoned)
        elif tx.type is TxType.WIN:
            contexts[tx.id] = await _win_context(conn, tx)
        else:
            contexts[tx.id] = await _refund_context(conn, tx)
    return contexts


async def original_operator_ids(conn: db.Connection, rows: Sequence[TxRow]) -> dict[uuid.UUID, str | None]:
    """For WIN/REFUND rows being resumed (already PROCESSING): the operator id of the bet each refers to."""
    referring = [tx for tx in rows if tx.original_ref_id is not None]
    if not referring:
        return {}
    found = await conn.fetch(
        """SELECT r.id, o.operator_id FROM unnest($1::uuid[], $2::text[], $3::text[]) AS r(id, client_id, ref_id)
           LEFT JOIN transactions o ON o.client_id = r.client_id AND o.ref_id = r.ref_id""",
        [tx.id for tx in referring],
        [tx.client_id for tx in referring],
        [tx.original_ref_id for tx in referring],
    )
    stored = {r["id"]: r["operator_id"] for r in found}
    return {tx.id: _referred_id(tx, stored.get(tx.id)) for tx in referring}


def _referred_id(tx: TxRow, stored: str | None) -> str | None:
    """The operator id of the bet `tx` refers to: the one it was sent under; for a bet the Hub never saw, the id
    it would get (the operator cannot know it under any other)."""
    if tx.original_ref_id is None:
        return None
    return stored if stored is not None else operator_id(tx.client_id, tx.original_ref_id)


async def _win_context(conn: db.Connection, tx: TxRow) -> RuleContext:
    record = await conn.fetchrow(
        """SELECT EXISTS (SELECT 1 FROM refund_tombstones WHERE client_id = $4 AND ref_id = $3)
               OR EXISTS (SELECT 1 FROM transactions b WHERE b.type = 'BET' AND b.client_id = $4
                  AND b.player_id = $1
                  AND ((b.round_id IS NOT NULL AND b.round_id = $2) OR b.ref_id = $3)
                  AND (EXISTS (SELECT 1 FROM transactions r WHERE r.type = 'REFUND' AND r.status = 'COMPLETED'
                               AND r.client_id = b.client_id AND r.original_ref_id = b.ref_id)
                       OR EXISTS (SELECT 1 FROM ledger_compensations c WHERE c.transaction_id = b.id)))
                   AS refunded,
               (SELECT o.operator_id FROM transactions o WHERE o.client_id = $4 AND o.ref_id = $3) AS original""",
        tx.player_id,
        tx.round_id,
        tx.original_ref_id,
        tx.client_id,
    )
    assert record is not None  # a SELECT without FROM returns one row
    return RuleContext(bet_refunded=record["refunded"], original_operator_id=_referred_id(tx, record["original"]))


async def _refund_context(conn: db.Connection, tx: TxRow) -> RuleContext:
    original = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM transactions WHERE client_id = $1 AND ref_id = $2",  # noqa: S608 - COLUMNS is a constant column list
        tx.client_id,
        tx.original_ref_id,
    )
    earlier = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM transactions WHERE type = 'REFUND' AND client_id = $3 AND original_ref_id = $1
            AND id <> $2 AND status IN ('COMPLETED', 'REJECTED') ORDER BY completed_at, created_at LIMIT 1""",  # noqa: S608 - COLUMNS is a constant column list
        tx.original_ref_id,
        tx.id,
        tx.client_id,
    )
    bet = TxRow.from_record(original) if original is not None else None
    settled = False
    if bet is not None:
        settled = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM transactions w WHERE w.type = 'WIN' AND w.status = 'COMPLETED'
                   AND w.client_id = $4 AND w.player_id = $1
                   AND ((w.round_id IS NOT NULL AND w.round_id = $2) OR w.original_ref_id = $3))""",
            bet.player_id,
            bet.round_id,
            bet.ref_id,
            bet.client_id,
        )
    return RuleContext(
        original=bet,
        earlier_refund=TxRow.from_record(earlier) if earlier is not None else None,
        bet_settled=settled,
    )
