"""The dispatcher purges its own table: DELIVERED webhook_outbox rows past the retention, nothing else."""

from __future__ import annotations

import asyncpg

from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_dispatcher.app import create_app
from support.apps import serve
from support.dispatcher_it import dispatcher_settings
from support.waits import eventually


async def test_old_delivered_webhooks_are_purged_and_dead_letters_kept(
    kafka_settings: KafkaSettings, db_settings: DatabaseSettings, db: asyncpg.Connection
) -> None:
    await db.execute(
        """INSERT INTO webhook_outbox (id, client_id, event_type, payload, status, delivered_at) VALUES
           (gen_random_uuid(), 'rgs-demo', 'transaction.completed', '{}', 'DELIVERED', now() - interval '31 days'),
           (gen_random_uuid(), 'rgs-demo', 'transaction.completed', '{}', 'DELIVERED', now() - interval '29 days'),
           (gen_random_uuid(), 'rgs-demo', 'transaction.completed', '{}', 'DEAD_LETTER', now() - interval '90 days')"""
    )
    settings = dispatcher_settings(kafka_settings, db_settings, "http://127.0.0.1:9/webhooks", purge_interval_s=0.2)
    async with serve(create_app(settings)):

        async def purged() -> bool:
            return bool(await db.fetchval("SELECT count(*) FROM webhook_outbox") == 2)

        await eventually(purged)
    statuses = sorted(r["status"] for r in await db.fetch("SELECT status FROM webhook_outbox"))
    assert statuses == ["DEAD_LETTER", "DELIVERED"]
