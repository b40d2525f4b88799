"""The facts the rules need (`hub_ledger.rules.RuleContext`), read on the connection that holds the rows' locks,
so a decision and the transition it leads to see the same database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from hub_common import db
from hub_common.schemas import TxType
from hub_common.transactions import COLUMNS, TxRow
from hub_ledger.rules import RuleContext


async def load_contexts(conn: db.Connection, rows: Sequence[TxRow]) -> dict[uuid.UUID, RuleContext]:
    """The context of each PENDING row: BETs in one query (tombstones), WINs and REFUNDs one by one."""
    bets = [tx.ref_id for tx in rows if tx.type is TxType.BET]
    tombstoned: set[str] = set()
    if bets:
        found = await conn.fetch("SELECT ref_id FROM refund_tombstones WHERE ref_id = ANY($1::text[])", bets)
        tombstoned = {r["ref_id"] for r in found}
    contexts: dict[uuid.UUID, RuleContext] = {}
    for tx in rows:
        if tx.type is TxType.BET:
            contexts[tx.id] = RuleContext(tombstoned=tx.ref_id in tombstoned)
        elif tx.type is TxType.WIN:
            contexts[tx.id] = await _win_context(conn, tx)
        else:
            contexts[tx.id] = await _refund_context(conn, tx)
    return contexts


async def _win_context(conn: db.Connection, tx: TxRow) -> RuleContext:
    refunded = await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM refund_tombstones WHERE ref_id = $3)
               OR EXISTS (SELECT 1 FROM transactions b WHERE b.type = 'BET' AND b.player_id = $1
                  AND ((b.round_id IS NOT NULL AND b.round_id = $2) OR b.ref_id = $3)
                  AND (EXISTS (SELECT 1 FROM transactions r WHERE r.type = 'REFUND' AND r.status = 'COMPLETED'
                               AND r.original_ref_id = b.ref_id)
                       OR EXISTS (SELECT 1 FROM ledger_compensations c WHERE c.transaction_id = b.id)))""",
        tx.player_id,
        tx.round_id,
        tx.original_ref_id,
    )
    return RuleContext(bet_refunded=refunded)


async def _refund_context(conn: db.Connection, tx: TxRow) -> RuleContext:
    original = await conn.fetchrow(f"SELECT {COLUMNS} FROM transactions WHERE ref_id = $1", tx.original_ref_id)
    earlier = await conn.fetchrow(
        f"""SELECT {COLUMNS} FROM transactions WHERE type = 'REFUND' AND original_ref_id = $1 AND id <> $2
            AND status IN ('COMPLETED', 'REJECTED') ORDER BY completed_at, created_at LIMIT 1""",
        tx.original_ref_id,
        tx.id,
    )
    bet = TxRow.from_record(original) if original is not None else None
    settled = False
    if bet is not None:
        settled = await conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM transactions w WHERE w.type = 'WIN' AND w.status = 'COMPLETED'
                   AND w.player_id = $1
                   AND ((w.round_id IS NOT NULL AND w.round_id = $2) OR w.original_ref_id = $3))""",
            bet.player_id,
            bet.round_id,
            bet.ref_id,
        )
    return RuleContext(
        original=bet,
        earlier_refund=TxRow.from_record(earlier) if earlier is not None else None,
        bet_settled=settled,
    )
