"""`hubctl db maintenance`: the runbook's weekly database tasks in one command.

VACUUM ANALYZE of every Hub table (the tables of the migrations, in the connection's schema), the slowest
statements from pg_stat_statements when that extension is installed, table and index sizes with dead rows and
the last (auto)vacuum, and index usage (an index never scanned is listed as such). `--dry-run` reports
without vacuuming. VACUUM only warns about a table the role does not own: those warnings are reported.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import asyncpg

from hub_common import db
from hubctl.cli import Subparsers, command, group
from hubctl.context import HubctlSettings, connection
from hubctl.output import render, section

_TABLES = """SELECT c.relname AS table
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind = 'r' AND n.nspname = current_schema() ORDER BY c.relname"""

_SIZES = """SELECT s.relname AS table, pg_size_pretty(pg_total_relation_size(s.relid)) AS total,
                   pg_size_pretty(pg_relation_size(s.relid)) AS data,
                   pg_size_pretty(pg_indexes_size(s.relid)) AS indexes,
                   pg_total_relation_size(s.relid) AS total_bytes, s.n_live_tup AS live_rows,
                   s.n_dead_tup AS dead_rows, GREATEST(s.last_vacuum, s.last_autovacuum) AS last_vacuum,
                   GREATEST(s.last_analyze, s.last_autoanalyze) AS last_analyze
            FROM pg_stat_user_tables s WHERE s.schemaname = current_schema()
            ORDER BY pg_total_relation_size(s.relid) DESC"""

_INDEXES = """SELECT s.relname AS table, s.indexrelname AS index, s.idx_scan AS scans,
                     pg_size_pretty(pg_relation_size(s.indexrelid)) AS size,
                     pg_relation_size(s.indexrelid) AS size_bytes, i.indisunique AS is_unique
              FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
              WHERE s.schemaname = current_schema()
              ORDER BY s.idx_scan ASC, pg_relation_size(s.indexrelid) DESC"""

_SLOW = """SELECT query, calls, round(mean_exec_time::numeric, 3)::float8 AS mean_ms,
                  round(max_exec_time::numeric, 3)::float8 AS max_ms,
                  round(total_exec_time::numeric, 1)::float8 AS total_ms
           FROM pg_stat_statements
           WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
           ORDER BY mean_exec_time DESC LIMIT $1"""


def register(sub: Subparsers) -> None:
    nested = group(sub, "db", help="database maintenance (runbook weekly tasks)", dest="db_command")
    maintenance = command(
        nested, "maintenance", help="VACUUM ANALYZE, slow statements, table/index sizes, index usage", handler=run
    )
    maintenance.add_argument("--dry-run", action="store_true", help="report only, vacuum nothing")
    maintenance.add_argument("--slow", type=int, default=10, help="slowest statements listed (default 10)")


async def _vacuum(conn: asyncpg.Connection, tables: list[str]) -> list[dict[str, Any]]:
    warnings: list[str] = []

    def listen(_: db.Connection, message: asyncpg.PostgresLogMessage) -> None:
        warnings.append(str(message))

    conn.add_log_listener(listen)
    done = []
    try:
        for table in tables:
            warnings.clear()
            started = time.monotonic()
            # Not inside a transaction (VACUUM refuses one); the name comes from pg_class, quoted.
            await conn.execute(f"VACUUM (ANALYZE) {_quote(table)}", timeout=None)
            result = "; ".join(warnings) or "vacuumed and analyzed"
            done.append({"table": table, "seconds": round(time.monotonic() - started, 3), "result": result})
    finally:
        conn.remove_log_listener(listen)
    return done


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _slow_statements(conn: asyncpg.Connection, limit: int) -> tuple[list[dict[str, Any]], str | None]:
    installed = await conn.fetchval("SELECT true FROM pg_extension WHERE extname = 'pg_stat_statements'")
    if not installed:
        return (
            [],
            "pg_stat_statements is not installed (CREATE EXTENSION pg_stat_statements; needs shared_preload_libraries)",
        )
    try:
        return [dict(r) for r in await conn.fetch(_SLOW, limit)], None
    except asyncpg.ObjectNotInPrerequisiteStateError as exc:
        return [], f"pg_stat_statements is installed but not loaded: {exc}"


async def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    async with connection(settings) as conn:
        tables = [r["table"] for r in await conn.fetch(_TABLES)]
        vacuum = [] if args.dry_run else await _vacuum(conn, tables)
        slow, slow_note = await _slow_statements(conn, args.slow)
        report = {
            "vacuum": vacuum,
            "slow_statements": slow,
            "slow_statements_note": slow_note,
            "tables": [dict(r) for r in await conn.fetch(_SIZES)],
            "indexes": [dict(r) for r in await conn.fetch(_INDEXES)],
        }
    if args.json:
        render(report, as_json=True)
        return 0
    if args.dry_run:
        print(f"dry run: would VACUUM ANALYZE {', '.join(tables)}")
    else:
        section("vacuum")
        render(vacuum, as_json=False, columns=["table", "seconds", "result"])
    section("slow statements (pg_stat_statements)")
    if slow_note:
        print(slow_note)
    else:
        render(slow, as_json=False, columns=["mean_ms", "max_ms", "calls", "total_ms", "query"])
    section("tables")
    render(
        report["tables"],
        as_json=False,
        columns=["table", "total", "data", "indexes", "live_rows", "dead_rows", "last_vacuum", "last_analyze"],
    )
    section("indexes (least used first)")
    render(report["indexes"], as_json=False, columns=["table", "index", "scans", "size", "is_unique"])
    return 0
