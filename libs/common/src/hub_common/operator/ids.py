"""The id under which the operator knows a Hub transaction: ONE place for Python and for SQL.

Today the operator id is the refId and the compensating cancel of a BET is `<operator id>:cancel`. When refIds
become unique per client, the operator id becomes a function of (clientId, refId) stored on the transaction row:
change `operator_id` and `operator_id_sql` here, together, and every caller (ledger, reconciler, hubctl) follows.
"""

from __future__ import annotations

CANCEL_SUFFIX = ":cancel"


def operator_id(client_id: str, ref_id: str) -> str:
    """The transactionId the Hub sends to the operator for the transaction `ref_id` of `client_id`."""
    del client_id  # refIds are globally unique today; the security change makes the id depend on the client
    return ref_id


def cancel_id(operator_tx_id: str) -> str:
    """The transactionId of the compensating REFUND that cancels the BET sent as `operator_tx_id`."""
    return operator_tx_id + CANCEL_SUFFIX


def operator_id_sql(alias: str) -> str:
    """The SQL expression of `operator_id` over the `transactions` row aliased `alias` (indexed: ref_id UNIQUE)."""
    return f"{alias}.ref_id"
