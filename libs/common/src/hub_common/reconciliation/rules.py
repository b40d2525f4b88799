"""The matching rules: Hub entries x operator records -> a verdict, as ONE SQL query template.

The table of rules (docs/reconciliation.md) is this module. The report selects entries by time, the continuous
join by operator id; both run `joined_query` and read the same `verdict` column, so the two can never disagree.

Hub entries (one per operator id the Hub may have used):
- TX: every transaction, under its stored operator id (`operator_id_sql`: `{clientId}:{refId}`, or the refId for
  rows admitted before refIds were per client). `sent` = the ledger called the operator for it
  (`attempts > 0`); a final row with no attempt had no operator effect (tombstone refunds, refunds of REJECTED or
  FAILED bets, a replayed second refund, rule rejections).
- CANCEL: the compensating REFUND of a FAILED bet, under the id stored in `ledger_compensations`.
Operator records come from `operator_transactions` (the feed, persisted by the reconciler).

A side missing from the selection is looked up by key (a range edge, or a cancel booked hours after its bet), so
an entry is matched wherever its partner lies in time. An operator record whose Hub entry lies outside the
selection belongs to that entry's day and is left out here.

`done_at` later than the feed's coverage means the operator record may exist but not have been read yet:
AWAITING_FEED, like IN_FLIGHT, is neither a match nor a mismatch.
"""

from __future__ import annotations

from enum import StrEnum

from hub_common.operator.ids import operator_id_sql


class MismatchKind(StrEnum):
    MISSING_IN_OPERATOR = "MISSING_IN_OPERATOR"
    MISSING_IN_HUB = "MISSING_IN_HUB"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    STATUS_MISMATCH = "STATUS_MISMATCH"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"


class Outcome(StrEnum):
    """Verdicts that are not mismatches."""

    MATCHED = "MATCHED"  # both sides agree
    NO_EFFECT = "NO_EFFECT"  # the Hub expects no operator record and there is none
    CANCELLED = "CANCELLED"  # a FAILED bet the operator applied, and its cancel too: net zero
    IN_FLIGHT = "IN_FLIGHT"  # the Hub has not finished it (or its cancel) yet
    AWAITING_FEED = "AWAITING_FEED"  # finished after the feed's coverage: the operator record may be unread


SETTLED = frozenset({Outcome.MATCHED, Outcome.NO_EFFECT, Outcome.CANCELLED})
UNDECIDED = frozenset({Outcome.IN_FLIGHT, Outcome.AWAITING_FEED})
# The verdicts that are not mismatches, as a SQL text[] literal (`NOT (verdict <@ '...'::text[])`: a mismatch).
NOT_MISMATCHES = "{" + ",".join(o.value for o in Outcome) + "}"

_OP_ID = operator_id_sql("t")


# A FAILED transaction's compensation row (the ledger writes one only with that transition): looked up for those
# few rows instead of joining every transaction of the range to the table.
def _compensation(column: str) -> str:
    return f"(SELECT c.{column} FROM ledger_compensations c WHERE c.transaction_id = t.id)"  # noqa: S608 - a column name of this module


# Hub entries; `{where}` selects transactions `t`.
_HUB_ENTRIES = f"""
    SELECT {_OP_ID} AS key, 'TX' AS role, t.id, t.ref_id, t.client_id, t.type, t.status, t.attempts > 0 AS sent,
           t.amount_cents, t.currency::text AS currency, t.created_at,
           CASE WHEN t.status = 'FAILED' THEN greatest(t.completed_at, {_compensation("updated_at")})
                ELSE t.completed_at END AS done_at,
           CASE WHEN t.status = 'FAILED' THEN {_compensation("status")} END AS cancel_status,
           CASE WHEN t.status = 'FAILED' THEN {_compensation("operator_transaction_id")} END AS cancel_key
    FROM transactions t
    WHERE {{where}}
    UNION ALL
    SELECT c.operator_transaction_id, 'CANCEL', t.id, t.ref_id, t.client_id, 'REFUND', c.status, true,
           (c.request->>'amountCents')::bigint, c.request->>'currency', t.created_at,
           CASE WHEN c.status = 'PENDING' THEN NULL ELSE c.updated_at END, c.status, NULL
    FROM ledger_compensations c JOIN transactions t ON t.id = c.transaction_id
    WHERE {{where}}
"""  # noqa: S608 - {where} is one of the two selections below, both constants

_COMPARE = """COALESCE(NULLIF(array_remove(ARRAY[
        CASE WHEN j.op_status <> 'COMPLETED' THEN 'STATUS_MISMATCH' END,
        CASE WHEN j.op_amount_cents <> j.amount_cents THEN 'AMOUNT_MISMATCH' END,
        CASE WHEN j.op_currency <> j.currency THEN 'CURRENCY_MISMATCH' END], NULL), '{}'), ARRAY['MATCHED'])"""

# $1 = the feed's coverage (operator records created before it have been read). The first branch is the agreeing
# pair, nearly every row: it is decided by a few comparisons before any other branch or array is looked at (the
# later branches give the same verdict for it).
VERDICT = f"""CASE
    WHEN j.role = 'TX' AND j.status = 'COMPLETED' AND j.sent AND j.done_at <= $1 AND j.op_status = 'COMPLETED'
         AND j.op_amount_cents = j.amount_cents AND j.op_currency = j.currency THEN ARRAY['MATCHED']
    WHEN j.role IS NULL THEN ARRAY['MISSING_IN_HUB']
    WHEN j.role = 'TX' AND j.status IN ('PENDING', 'PROCESSING') THEN ARRAY['IN_FLIGHT']
    WHEN j.done_at > $1 THEN ARRAY['AWAITING_FEED']
    WHEN j.role = 'TX' AND j.status = 'COMPLETED' AND j.sent THEN
        CASE WHEN j.op_key IS NULL THEN ARRAY['MISSING_IN_OPERATOR'] ELSE {_COMPARE} END
    WHEN j.role = 'TX' AND j.status = 'FAILED' AND j.type = 'BET' AND j.op_key IS NOT NULL THEN
        CASE WHEN EXISTS (SELECT 1 FROM operator_transactions x WHERE x.transaction_id = j.cancel_key)
                 THEN ARRAY['CANCELLED']
             WHEN j.cancel_status = 'PENDING' THEN ARRAY['IN_FLIGHT']
             ELSE ARRAY['STATUS_MISMATCH'] END
    WHEN j.role = 'TX' THEN
        CASE WHEN j.op_key IS NULL THEN ARRAY['NO_EFFECT'] ELSE ARRAY['STATUS_MISMATCH'] END
    WHEN j.op_key IS NULL THEN
        CASE j.status WHEN 'PENDING' THEN ARRAY['IN_FLIGHT'] WHEN 'COMPLETED' THEN ARRAY['MISSING_IN_OPERATOR']
                      ELSE ARRAY['NO_EFFECT'] END
    WHEN j.status = 'FAILED' THEN ARRAY['STATUS_MISMATCH']
    ELSE {_COMPARE}
END"""  # noqa: S608 - _COMPARE is a constant

_OP_COLUMNS = ("transaction_id", "operator_transaction_id", "status", "amount_cents", "currency", "created_at")
_HUB_COLUMNS = (
    "key",
    "role",
    "id",
    "ref_id",
    "client_id",
    "type",
    "status",
    "sent",
    "amount_cents",
    "currency",
    "created_at",
    "done_at",
    "cancel_status",
    "cancel_key",
)


def joined_query(hub_where: str, op_where: str) -> str:
    """Every Hub entry selected by `hub_where` and every operator record `o` selected by `op_where`, joined by
    operator id, with its `verdict` (text[]: one `Outcome`, or the mismatch kinds). $1 is the feed's coverage;
    the selections may use $2.. ."""
    hub_cols = ", ".join(f"h.{c}" for c in _HUB_COLUMNS)
    op_cols = ", ".join(f"o.{c} AS o_{c}" for c in _OP_COLUMNS)
    op_merged = ", ".join(
        f"COALESCE(o_{c}, (far).{c}) AS op_{c if c != 'transaction_id' else 'key'}" for c in _OP_COLUMNS
    )
    hub_entries = _HUB_ENTRIES.format(where=hub_where)
    # A Hub entry without a partner in the selection looks its record up by key (`far`): a guarded scalar
    # subquery, index probes for those few rows only (a LATERAL join is planned as a hash join over the whole
    # table). `OFFSET 0` keeps the verdict from being inlined into a query that selects from this one, where
    # every reference to it would evaluate it again.
    return f"""
SELECT j.*, {VERDICT} AS verdict FROM (
    SELECT {", ".join(_HUB_COLUMNS)}, {op_merged}
    FROM (SELECT {hub_cols}, {op_cols},
                 CASE WHEN o.transaction_id IS NULL
                      THEN (SELECT x FROM operator_transactions x WHERE x.transaction_id = h.key) END AS far
          FROM ({hub_entries}) h
          FULL JOIN (SELECT * FROM operator_transactions o WHERE {op_where}) o ON o.transaction_id = h.key
          WHERE h.key IS NOT NULL
             OR (NOT EXISTS (SELECT 1 FROM transactions t WHERE {_OP_ID} = o.transaction_id)
                 AND NOT EXISTS (SELECT 1 FROM ledger_compensations c
                                 WHERE c.operator_transaction_id = o.transaction_id))) p
) j OFFSET 0"""  # noqa: S608 - the selections are the constants IN_RANGE/by_keys; values are bind parameters


# The two selections: Hub entries created (and operator records created) in [$2, $3); or by operator id
# (`by_keys`; `BY_KEYS`: the ids in $2).
IN_RANGE = joined_query("t.created_at >= $2 AND t.created_at < $3", "o.created_at >= $2 AND o.created_at < $3")


def by_keys(keys: str) -> str:
    """`joined_query` for the operator ids the SQL set `keys` names (a bet whose cancel is named comes too); the
    transactions are found by index first (an OR of the two conditions would scan the whole table)."""
    return joined_query(
        f"""t.id = ANY(ARRAY(SELECT x.id FROM transactions x WHERE {operator_id_sql("x")} IN ({keys})
                            UNION ALL
                            SELECT k.transaction_id FROM ledger_compensations k
                            WHERE k.operator_transaction_id IN ({keys})))""",  # noqa: S608 - `keys` is a constant SQL set
        f"o.transaction_id IN ({keys})",
    )


BY_KEYS = by_keys("SELECT unnest($2::text[])")
