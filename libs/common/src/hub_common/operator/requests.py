"""The operator requests of a Hub transaction: its own POST and the compensating cancel of a BET.

One home for the ledger (which sends them), the shared finish statement (which queues a FAILED bet's cancel, for
the ledger and `hubctl tx resolve`) and hubctl's recovery (which queues a lost cancel again). Both name the
transaction by its stored operator id (`TxRow.operator_id`, hub_common.operator.ids), never a derived one.
"""

from __future__ import annotations

from hub_common.operator.client import OperatorTransactionRequest
from hub_common.operator.ids import cancel_id
from hub_common.schemas import TxType
from hub_common.transactions import TxRow


def operator_request(tx: TxRow, original_operator_id: str | None) -> OperatorTransactionRequest:
    """`original_operator_id`: the operator id of the bet a WIN/REFUND refers to (the ledger's rules find it)."""
    return OperatorTransactionRequest(
        transaction_id=tx.operator_id,
        player_id=tx.player_id,
        type=tx.type,
        amount_cents=tx.amount_cents,
        currency=tx.currency,
        round_id=tx.round_id,
        game_id=tx.game_id,
        original_transaction_id=original_operator_id,
    )


def cancel_request(tx: TxRow) -> OperatorTransactionRequest:
    """The compensating REFUND of a BET: its own operator id, pointing at the bet's."""
    return OperatorTransactionRequest(
        transaction_id=cancel_id(tx.operator_id),
        player_id=tx.player_id,
        type=TxType.REFUND,
        amount_cents=tx.amount_cents,
        currency=tx.currency,
        round_id=tx.round_id,
        game_id=tx.game_id,
        original_transaction_id=tx.operator_id,
    )
