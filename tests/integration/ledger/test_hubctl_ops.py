"""`hubctl keys complete`, `stats` rate and bursts, `db maintenance`, and one-line failures, on a real database."""

from __future__ import annotations

import uuid

import asyncpg
import orjson
from pydantic import SecretStr

from hub_common.schemas import TxType
from hub_common.settings import DatabaseSettings
from hub_devstack.postgres import database_url_for
from hubctl.context import HubctlSettings
from support.hubctl import hubctl, hubctl_json
from support.ledger_it import Harness, command, insert_admitted
from support.roles import RoleDbSettings


def _settings(database_url: str, actor: str | None = None) -> HubctlSettings:
    return HubctlSettings(database=DatabaseSettings(url=SecretStr(database_url)), hubctl_actor=actor, dev_mode=False)


async def test_keys_complete_only_marks_a_key_whose_transaction_is_final(
    harness: Harness, role_db_settings: RoleDbSettings
) -> None:
    sre = role_db_settings("hubctl").url.get_secret_value()
    ctl = _settings(sre, actor="jane.doe")
    cmd = command("bet-key", TxType.BET, "p-1", 100)
    await insert_admitted(harness.pool, cmd)
    key = f"key-{cmd.ref_id}"

    refused = await hubctl(ctl, "keys", "complete", key, "--reason", "INC-9")
    assert refused.code == 1
    assert "still PENDING" in refused.err and f"hubctl tx resolve {cmd.ref_id}" in refused.err

    # The transaction ended but its key was left PROCESSING (the runbook's stuck key).
    await harness.pool.execute(
        "UPDATE transactions SET status = 'FAILED', completed_at = now() WHERE ref_id = $1", cmd.ref_id
    )
    no_reason = await hubctl(ctl, "keys", "complete", key)
    assert (no_reason.code, no_reason.err) == (1, "hubctl: give --reason (recorded in the audit row)\n")
    nobody = await hubctl(_settings(sre), "keys", "complete", key, "--reason", "INC-9")
    assert nobody.code == 1 and "set HUBCTL_ACTOR" in nobody.err
    dry = await hubctl_json(ctl, "keys", "complete", key, "--dry-run")
    assert dry["result"] == "dry run: would mark the key COMPLETED"
    assert await harness.pool.fetchval("SELECT status FROM idempotency_keys WHERE key = $1", key) == "PROCESSING"

    done = await hubctl_json(ctl, "keys", "complete", key, "--reason", "INC-9")
    assert done == {"key": key, "scope": cmd.client_id, "refId": cmd.ref_id, "result": "completed"}
    assert await harness.pool.fetchval("SELECT status FROM idempotency_keys WHERE key = $1", key) == "COMPLETED"
    row = await harness.pool.fetchrow(
        "SELECT entity, action, actor, os_user, reason, before::text AS before FROM audit_log"
    )
    assert row is not None
    assert (row["entity"], row["action"], row["actor"], row["reason"]) == (
        "idempotency_key",
        "key.complete",
        "jane.doe",
        "INC-9",
    )
    assert row["os_user"]
    assert orjson.loads(row["before"]) == {"status": "PROCESSING", "transactionStatus": "FAILED"}

    again = await hubctl(ctl, "keys", "complete", key, "--reason", "INC-9")
    assert again.code == 1 and "already COMPLETED" in again.err


async def test_stats_shows_the_runbook_rate_and_bursts(harness: Harness, role_db_settings: RoleDbSettings) -> None:
    sre = role_db_settings("hubctl").url.get_secret_value()
    for i in range(3):  # one burst: three admissions in the same second
        await insert_admitted(harness.pool, command(f"bet-burst-{i}", TxType.BET, "p-2", 100))
    await harness.pool.execute("UPDATE transactions SET created_at = date_trunc('second', now()), status = 'COMPLETED'")
    old = command("bet-old", TxType.BET, "p-3", 5_000)
    await insert_admitted(harness.pool, old)
    await harness.pool.execute(
        "UPDATE transactions SET created_at = now() - interval '6 days', status = 'COMPLETED' WHERE ref_id = 'bet-old'"
    )

    report = await hubctl_json(_settings(sre), "stats")
    assert [r["transaction_count"] for r in report["transaction_rate"]] == [3]
    assert [r["count"] for r in report["bursts"]] == [3]
    assert [(r["player_id"], int(r["total_volume"])) for r in report["top_players"]] == [("p-3", 5_000), ("p-2", 300)]
    one_day = await hubctl_json(_settings(sre), "stats", "--days", "1")
    assert [r["player_id"] for r in one_day["top_players"]] == ["p-2"]
    text = await hubctl(_settings(sre), "stats")
    assert text.code == 0 and "bursts:" in text.out and "transaction_rate:" in text.out


async def test_db_maintenance_vacuums_and_reports_sizes_and_index_usage(database_url: str) -> None:
    # VACUUM is the table owner's: maintenance runs with the owner's URL (DATABASE_OWNER_URL after `make up`).
    dry = await hubctl_json(_settings(database_url), "db", "maintenance", "--dry-run")
    assert dry["vacuum"] == []
    report = await hubctl_json(_settings(database_url), "db", "maintenance")
    vacuumed = {v["table"]: v["result"] for v in report["vacuum"]}
    for table in ("transactions", "idempotency_keys", "event_outbox", "webhook_outbox", "audit_log"):
        assert vacuumed[table] == "vacuumed and analyzed"
    sizes = {t["table"]: t for t in report["tables"]}
    assert sizes["transactions"]["total_bytes"] > 0 and sizes["transactions"]["last_vacuum"] is not None
    assert "transactions_pkey" in {i["index"] for i in report["indexes"]}
    # The test cluster does not preload pg_stat_statements: the report says so instead of failing.
    assert report["slow_statements"] == [] and "pg_stat_statements" in report["slow_statements_note"]
    text = await hubctl(_settings(database_url), "db", "maintenance", "--dry-run")
    assert text.code == 0 and "would VACUUM ANALYZE" in text.out and "transactions_pkey" in text.out


async def test_a_database_without_the_tables_is_one_line(postgres_admin_url: str) -> None:
    name = f"hub_empty_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(postgres_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        ctl = _settings(database_url_for(postgres_admin_url, name), actor="jane.doe")
        for argv in (("tx", "stuck"), ("keys", "cleanup", "--yes"), ("stats",), ("trace", "x", "--no-kafka")):
            ran = await hubctl(ctl, *argv)
            assert ran.code == 1, argv
            assert ran.err.startswith('hubctl: relation "') and ran.err.endswith(
                "(run `hub-migrate` against DATABASE_URL first)\n"
            )
            assert ran.err.count("\n") == 1
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
