"""Reconciler benchmark: a date-range report over N Hub + ~N operator rows next to a plain PostgreSQL FULL OUTER
JOIN of the same tables to CSV (same run, same database), then the continuous join fed the same records.

Data is generated in SQL (generate_series), about 0.1 % of the rows in each category (rejected, tombstone refund,
missing in operator, amount, currency, status, missing in hub, in flight). The report runs as the CronJob form
(`python -m hub_reconciler reconcile --day D`), the join as the service, each a process whose peak RSS is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from bench.report import Report, Target, rss_mb
from bench.stack import PeakRss, fresh_database, infra, service, topic_prefix
from hub_common.kafka import OPERATOR_TRANSACTIONS, TRANSACTIONS, ensure_topics
from hub_common.operator.ids import operator_id_expr
from hub_common.settings import KafkaSettings

FULL_ROWS = 1_000_000
QUICK_ROWS = 20_000
DAY = date(2024, 1, 15)
PARTITIONS = 3
TARGET_RATIO = 2.0
TARGET_STREAM_PER_S = 20_000.0
TARGET_RSS_MB = 300.0

# Category by i % 1000 (0.1 % each); everything else is a matched COMPLETED BET. The operator knows row i as
# the operator id of refId 'r' || i of the client (hub_common.operator.ids).
_OP_ID = operator_id_expr("'rgs-demo'", "'r' || i")
_SEED = f"""
INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, request_hash, status,
                          attempts, created_at, updated_at, completed_at, operator_id)
SELECT md5('t' || i)::uuid, 'rgs-demo', 'r' || i,
       CASE WHEN i % 1000 = 2 THEN 'REFUND' ELSE 'BET' END, 'p-' || (i % 5000), 100 + i % 1000, 'EUR', 'h',
       CASE i % 1000 WHEN 1 THEN 'REJECTED' WHEN 8 THEN 'PROCESSING' ELSE 'COMPLETED' END,
       CASE WHEN i % 1000 = 2 THEN 0 ELSE 1 END,
       $1::timestamptz + (i * 86399.0 / $2) * interval '1 second',
       $1::timestamptz + (i * 86399.0 / $2) * interval '1 second',
       CASE WHEN i % 1000 = 8 THEN NULL ELSE $1::timestamptz + (i * 86399.0 / $2 + 0.5) * interval '1 second' END,
       {_OP_ID}
FROM generate_series(1, $2) AS i WHERE i % 1000 <> 7;
INSERT INTO operator_transactions (transaction_id, operator_transaction_id, player_id, type, amount_cents, currency,
                                   status, created_at, seen_at, record)
SELECT CASE WHEN i % 1000 = 7 THEN 'ghost' || i ELSE {_OP_ID} END, 'op-' || i, 'p-' || (i % 5000), 'BET',
       CASE WHEN i % 1000 = 4 THEN 1 ELSE 100 + i % 1000 END,
       CASE WHEN i % 1000 = 5 THEN 'USD' ELSE 'EUR' END,
       CASE WHEN i % 1000 = 6 THEN 'REVERSED' ELSE 'COMPLETED' END,
       $1::timestamptz + (i * 86399.0 / $2 + 0.2) * interval '1 second', $1::timestamptz + interval '2 days', '{{}}'
FROM generate_series(1, $2) AS i WHERE i % 1000 NOT IN (1, 2, 3, 8);
INSERT INTO operator_feed_state (name, window_from, window_to, cursor, covered_to)
VALUES ('operator', $1::timestamptz, $1::timestamptz + interval '2 days', NULL, $1::timestamptz + interval '2 days');
ANALYZE transactions; ANALYZE operator_transactions;
"""  # noqa: S608 - _OP_ID is hub_common.operator.ids' expression over literals

_UNSETTLED = "SELECT EXISTS (SELECT 1 FROM reconciliation_join WHERE pending AND due_at < now() - interval '2 s')"
_PLAIN_JOIN = """
SELECT t.ref_id, t.type, t.status, t.amount_cents, t.currency, o.transaction_id, o.status, o.amount_cents, o.currency
FROM transactions t FULL OUTER JOIN operator_transactions o ON o.transaction_id = t.operator_id
"""


async def seed(database_url: str, rows: int) -> tuple[int, int]:
    start = datetime.combine(DAY, datetime.min.time(), UTC)
    conn = await asyncpg.connect(database_url)
    try:
        for statement in _SEED.replace("$1::timestamptz", f"'{start.isoformat()}'::timestamptz").split(";\n"):
            if statement.strip():
                await conn.execute(statement.replace("$2", str(rows)))
        hub = await conn.fetchval("SELECT count(*) FROM transactions")
        operator = await conn.fetchval("SELECT count(*) FROM operator_transactions")
    finally:
        await conn.close()
    return int(hub), int(operator)


async def plain_join(database_url: str, out: Path) -> float:
    conn = await asyncpg.connect(database_url)
    try:
        started = time.monotonic()
        await conn.copy_from_query(_PLAIN_JOIN, output=out, format="csv", header=True)
        return time.monotonic() - started
    finally:
        await conn.close()


async def _wait_exit(svc: Any, rss: PeakRss, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while svc.proc.poll() is None and time.monotonic() < deadline:
        rss.sample()
        await asyncio.sleep(0.05)
    return svc.proc.poll() if svc.proc.poll() is not None else -1


async def publish_events(kafka: KafkaSettings, database_url: str) -> int:
    """One hub.transactions event per final Hub row and one operator.transactions record per operator row."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    sent = 0
    now = datetime.now(UTC).isoformat()
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            async for r in conn.cursor(
                "SELECT id::text AS id, ref_id, status FROM transactions WHERE status <> 'PROCESSING'"
            ):
                value = orjson.dumps(
                    {
                        "schema": "TransactionEvent/1",
                        "eventId": r["ref_id"],
                        "occurredAt": now,
                        "correlationId": "bench",
                        "payload": {
                            "clientId": "rgs-demo",
                            "transaction": {"transactionId": r["id"], "refId": r["ref_id"], "status": r["status"]},
                        },
                    }
                )
                await producer.send(kafka.topic(TRANSACTIONS), value, key=r["ref_id"].encode())
                sent += 1
            # As the feed poller publishes them: stamped with the time it read (and stored) each record.
            async for r in conn.cursor(
                "SELECT transaction_id, amount_cents, currency, status, created_at, seen_at FROM operator_transactions"
            ):
                payload = {
                    "transactionId": r["transaction_id"],
                    "amountCents": r["amount_cents"],
                    "currency": r["currency"],
                    "status": r["status"],
                    "createdAt": r["created_at"].isoformat(),
                }
                value = orjson.dumps(
                    {
                        "schema": "OperatorRecord/1",
                        "eventId": r["transaction_id"],
                        "occurredAt": r["seen_at"].isoformat(),
                        "correlationId": "bench",
                        "payload": payload,
                    }
                )
                await producer.send(kafka.topic(OPERATOR_TRANSACTIONS), value, key=r["transaction_id"].encode())
                sent += 1
        await producer.flush()
    finally:
        await conn.close()
        await producer.stop()
    return sent


async def _records_consumed(session: aiohttp.ClientSession, url: str) -> float:
    try:
        async with session.get(url + "/metrics") as response:
            text = await response.text()
    except (aiohttp.ClientError, OSError):
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("hub_reconciliation_records_total{")
    )


async def stream_run(env: dict[str, str], total: int, timeout_s: float) -> tuple[float, float, float]:
    """(records/s from first to last record consumed, peak RSS MiB, seconds until every id was settled)."""
    stream_env = {
        **env,
        "RECONCILER_FEED_ENABLED": "false",
        "RECONCILER_DAILY_ENABLED": "false",
        "RECONCILER_GRACE_WINDOW_S": "1",
        "RECONCILER_SWEEP_INTERVAL_S": "1",
    }
    async with service("reconciler", "hub_reconciler", stream_env, port_env="RECONCILER_PORT") as svc:
        rss = PeakRss(svc)
        first = last = None
        deadline = time.monotonic() + timeout_s
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                rss.sample()
                consumed = await _records_consumed(session, svc.url)
                now = time.monotonic()
                if consumed > 0 and first is None:
                    first = now
                if consumed >= total:
                    last = now
                    break
                # Every scrape costs the service a /metrics rendering: twice a second is precise enough.
                await asyncio.sleep(0.5)
        conn = await asyncpg.connect(env["DATABASE_URL"])
        try:
            while time.monotonic() < deadline:
                rss.sample()
                if not await conn.fetchval(_UNSETTLED):
                    break
                await asyncio.sleep(0.5)
            settled = time.monotonic() - (first or time.monotonic())
        finally:
            await conn.close()
        rss.sample()
    rate = total / (last - first) if first is not None and last is not None and last > first else 0.0
    return rate, rss.peak_mb, settled


async def run(quick: bool) -> Report:
    rows = QUICK_ROWS if quick else FULL_ROWS
    report = Report("reconciler")
    async with infra() as stack, fresh_database(stack, "bench_reconciler") as database:
        kafka = KafkaSettings(
            bootstrap_servers=stack.kafka_bootstrap, topic_prefix=topic_prefix("reconciler"), partitions=PARTITIONS
        )
        await ensure_topics(kafka, [TRANSACTIONS, OPERATOR_TRANSACTIONS])
        started = time.monotonic()
        hub, operator = await seed(database.owner_url, rows)
        seed_s = time.monotonic() - started
        workdir = Path(tempfile.mkdtemp(prefix="hub-bench-reconciler-"))
        join_s = await plain_join(database.owner_url, workdir / "plain-join.csv")
        env = {
            "DATABASE_URL": database.url("reconciler"),
            "KAFKA_BOOTSTRAP_SERVERS": stack.kafka_bootstrap,
            "KAFKA_TOPIC_PREFIX": kafka.topic_prefix,
            "RECONCILER_REPORT_DIR": str(workdir),
            "RECONCILER_DAILY_FEED_WAIT_S": "0",
            # No operator is called (the feed is off), but the settings refuse to start without a real secret.
            "RECONCILER_OPERATOR__SECRET": secrets.token_urlsafe(32),
            "TELEMETRY_LOG_LEVEL": "WARNING",
        }
        report_s, report_rss, summary = await cli_report(env)
        sent = await publish_events(kafka, database.owner_url)
        rate, stream_rss, settled_s = await stream_run(env, sent, timeout_s=1800.0)
    ratio = report_s / join_s if join_s else float("inf")
    report.rows += [
        {"step": "plain FULL OUTER JOIN to CSV", "rows": hub + operator, "seconds": join_s},
        {"step": "reconciliation report", "rows": hub + operator, "seconds": report_s, "peak_rss_mb": report_rss},
        {"step": "continuous join (consume)", "rows": sent, "per_s": rate, "peak_rss_mb": stream_rss},
        {"step": "continuous join (all settled)", "rows": sent, "seconds": settled_s},
    ]
    report.notes.append(f"{hub} Hub rows, {operator} operator rows, seeded in {seed_s:.1f} s (SQL generate_series)")
    report.notes.append(f"report byKind: {summary.get('byKind')}, inFlight {summary.get('inFlight')}")
    report.notes.append("the machine is shared: figures vary with the other work running on it")
    report.targets += [
        Target("report / plain join", ratio, TARGET_RATIO, kind="max", unit="x"),
        Target("stream records/s", rate, TARGET_STREAM_PER_S, unit="/s"),
        Target("report peak RSS", report_rss, TARGET_RSS_MB, kind="max", unit=" MB"),
        Target("stream peak RSS", stream_rss, TARGET_RSS_MB, kind="max", unit=" MB"),
    ]
    return report


async def cli_report(env: dict[str, str]) -> tuple[float, float, dict[str, Any]]:
    """Run `python -m hub_reconciler reconcile --day DAY` (the CronJob form); (report s, peak RSS MiB, summary)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub_reconciler",
        "reconcile",
        "--day",
        DAY.isoformat(),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    peak = 0.0
    while proc.returncode is None:
        with contextlib.suppress(OSError):
            peak = max(peak, rss_mb(proc.pid)[1])
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 0.05)
    output = (await proc.stdout.read()).decode() if proc.stdout else ""
    try:
        row = orjson.loads(output.strip().splitlines()[-1])
        summary = orjson.loads(row["summary"]) if isinstance(row.get("summary"), str) else row.get("summary") or {}
    except (orjson.JSONDecodeError, IndexError, KeyError) as exc:
        raise RuntimeError(f"reconcile --day failed ({proc.returncode}):\n{output[-2000:]}") from exc
    return float(summary.get("durationS", 0.0)), peak, summary
