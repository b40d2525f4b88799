"""The operator requests of a Hub transaction: its own POST and the compensating cancel of a BET.

One home for the ledger (which sends them) and hubctl's recovery (which queues a lost cancel again).
"""

from __future__ import annotations

from hub_common.operator.client import OperatorTransactionRequest
from hub_common.operator.ids import cancel_id, operator_id
from hub_common.schemas import TxType
from hub_common.transactions import TxRow


def operator_request(tx: TxRow) -> OperatorTransactionRequest:
    return OperatorTransactionRequest(
        transaction_id=operator_id(tx.client_id, tx.ref_id),
        player_id=tx.player_id,
        type=tx.type,
        amount_cents=tx.amount_cents,
        currency=tx.currency,
        round_id=tx.round_id,
        game_id=tx.game_id,
        # The bet a WIN/REFUND refers to, under the id the operator knows it by.
        original_transaction_id=operator_id(tx.client_id, tx.original_ref_id) if tx.original_ref_id else None,
    )


def cancel_request(tx: TxRow) -> OperatorTransactionRequest:
    """The compensating REFUND of a BET: its own operator id, pointing at the bet's."""
    bet_id = operator_id(tx.client_id, tx.ref_id)
    return OperatorTransactionRequest(
        transaction_id=cancel_id(bet_id),
        player_id=tx.player_id,
        type=TxType.REFUND,
        amount_cents=tx.amount_cents,
        currency=tx.currency,
        round_id=tx.round_id,
        game_id=tx.game_id,
        original_transaction_id=bet_id,
    )
