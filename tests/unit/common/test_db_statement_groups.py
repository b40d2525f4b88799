"""The label of `hub_db_query_duration_seconds`: a statement's verb and the Hub table it works on, from a small,
known set whatever the SQL text (the histogram's cardinality stays bounded)."""

from __future__ import annotations

import pytest

from hub_common.db_metrics import hub_tables, statement_group


@pytest.mark.parametrize(
    ("sql", "group"),
    [
        ("SELECT 1", "select"),
        ("BEGIN ISOLATION LEVEL READ COMMITTED;", "begin"),
        ("COMMIT;", "commit"),
        ("SELECT id FROM transactions WHERE ref_id = $1 FOR UPDATE", "select transactions"),
        ("INSERT INTO audit_log (entity) VALUES ($1)", "insert audit_log"),
        ("UPDATE public.transactions SET attempts = attempts + 1 WHERE id = $1", "update transactions"),
        ("DELETE FROM idempotency_keys WHERE expires_at < now()", "delete idempotency_keys"),
        # The statement after the CTEs decides; the literal and the comment are not words of the statement.
        (
            "-- transition\nWITH moved AS (UPDATE transactions SET reason = 'from x' RETURNING id)\n"
            "INSERT INTO event_outbox (event_id) SELECT gen_random_uuid() FROM moved",
            "insert event_outbox",
        ),
        ("SELECT count(*) FROM (SELECT 1 FROM webhook_outbox) s", "select webhook_outbox"),
        ("SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL;", "select"),
        ("VACUUM ANALYZE transactions", "vacuum"),
        ("EXPLAIN SELECT 1", "other"),
    ],
)
def test_statement_group(sql: str, group: str) -> None:
    assert statement_group(sql) == group


def test_tables_come_from_the_migrations() -> None:
    assert {"transactions", "audit_log", "operator_transactions", "schema_migrations"} <= hub_tables()
