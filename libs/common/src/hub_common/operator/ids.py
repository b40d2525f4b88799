"""The id under which the operator knows a Hub transaction: ONE place for Python and for SQL.

RefIds are unique per RGS client, the operator has one id space: the Hub sends a transaction as
`{clientId}:{refId}` (`operator_id`), derived here once, at admission, and stored on the row
(`transactions.operator_id`, unique) and in the command on hub.commands. Everything after admission reads the
column (`operator_id_sql` in SQL, `TxRow.operator_id` in Python) or the command's field (a row re-created from
it), never derives it again: rows admitted before the change keep the refId they were sent under (the migration
backfilled them; their commands name no operator id, `command_operator_id`), and a retry, a resolve or the
reconciler's join always uses the id that was actually sent.

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


def command_operator_id(named: str | None, ref_id: str) -> str:
    """The operator id of an admitted command: the one it names (`TransactionCommand.operator_id`, set at
    admission with the row's); a command admitted by a release before migration 008 names none, and was sent under
    its bare refId, which stays its operator id (as the migration's backfill and its trigger give such rows)."""
    return named if named is not None else ref_id


def cancel_id(operator_tx_id: str) -> str:
    """The transactionId of the compensating REFUND that cancels the BET sent as `operator_tx_id`."""
    return CANCEL_PREFIX + operator_tx_id


def operator_id_sql(alias: str) -> str:
    """The operator id of the `transactions` row aliased `alias`, in SQL (the stored column; unique index)."""
    return f"{alias}.operator_id"


def operator_id_expr(client_sql: str, ref_sql: str) -> str:
    """`operator_id` as a SQL expression over two SQL expressions, for rows generated in SQL (benchmarks, tests)."""
    return f"({client_sql} || '{SEPARATOR}' || {ref_sql})"
