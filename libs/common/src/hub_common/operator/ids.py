"""The id under which the operator knows a Hub transaction: ONE place for Python and for SQL.

RefIds are unique per RGS client, the operator has one id space: the Hub sends a transaction as
`{clientId}:{refId}` (`operator_id`), derived here once, at admission, and stored on the row
(`transactions.operator_id`, unique). Everything after admission reads the column (`operator_id_sql` in SQL,
`TxRow.operator_id` in Python), never derives it again: rows admitted before the change keep the refId they were
sent under (the migration backfilled them), and a retry, a resolve or the reconciler's join always uses the id
that was actually sent.

Unambiguous because a client id cannot contain `:` (`hub_common.schemas.client_id_problem`, checked where clients
are configured and on every command): the first `:` separates the client from the refId, whatever the refId holds.

The compensating cancel of a BET is `cancel:{operator id}` (`cancel_id`). A prefix, not a suffix: every string
`{clientId}:{anything}` is an operator id some refId of that client could produce (`bet-1:cancel` is a valid
refId), while `cancel` is reserved and never a client id, so no refId can collide with a cancel.
"""

from __future__ import annotations

SEPARATOR = ":"
# `cancel` is a reserved client id (hub_common.schemas.RESERVED_CLIENT_IDS): no operator id starts with this.
CANCEL_PREFIX = "cancel:"


def operator_id(client_id: str, ref_id: str) -> str:
    """The transactionId the Hub sends to the operator for the transaction `ref_id` of `client_id`.

    Called once per transaction, when its row is inserted; afterwards the stored column is the truth."""
    return f"{client_id}{SEPARATOR}{ref_id}"


def cancel_id(operator_tx_id: str) -> str:
    """The transactionId of the compensating REFUND that cancels the BET sent as `operator_tx_id`."""
    return CANCEL_PREFIX + operator_tx_id


def operator_id_sql(alias: str) -> str:
    """The operator id of the `transactions` row aliased `alias`, in SQL (the stored column; unique index)."""
    return f"{alias}.operator_id"


def operator_id_expr(client_sql: str, ref_sql: str) -> str:
    """`operator_id` as a SQL expression over two SQL expressions, for rows generated in SQL (benchmarks, tests)."""
    return f"({client_sql} || '{SEPARATOR}' || {ref_sql})"
