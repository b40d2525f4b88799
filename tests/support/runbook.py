"""The runbook's SQL, parsed out of the runbook itself, and a way to run every statement against a database.

The statements are parsed at test time (```sql blocks, `psql -c "..."` commands and the SQL typed at an
interactive psql prompt in ```bash blocks), so a query added to the runbook is covered without touching a test.
`<...>` placeholders are replaced by ids of seeded rows, and a statement with a placeholder must find its row.

The statements run as the SRE role (hub_hubctl) inside a transaction that is rolled back: the runbook's
"kill idle connections" query must not reach other sessions (a shared development cluster, or the services of a
running stack), and its UPDATE/DELETE statements must not change the rows the next statement is checked against.
Used by the schema test (tests/integration/ledger) and the compose stack test (tests/containers).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from hub_common.operator import operator_id

REPO_ROOT = Path(__file__).resolve().parents[2]
# The runbook's source of truth sits beside the repository; docs/runbook.md is the copy versioned with the code
# (for clones without ../shared). When both exist they must agree, so the copy can never go stale unnoticed.
RUNBOOK = REPO_ROOT.parent / "shared" / "seed" / "000_5aa4d8c5ce69ca05.txt"
RUNBOOK_COPY = REPO_ROOT / "docs" / "runbook.md"

# The tables this repository owns that the runbook queries, plus the generic health views it uses.
SUBJECTS = ("transactions", "idempotency_keys", "webhook_outbox", "pg_stat_activity", "pg_tables")
SUBJECT_RE = re.compile(r"\b(" + "|".join(SUBJECTS) + r")\b")
_FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
_PSQL_C = re.compile(r"\bpsql\b[^\n\"]*?-c\s+\"([^\"]*)\"")
_SQL_START = re.compile(r"^(SELECT|UPDATE|DELETE|INSERT|WITH)\b")
_PLACEHOLDER = re.compile(r"<([a-z][a-z-]*)>")


@dataclass(frozen=True)
class Statement:
    line: int
    sql: str

    @property
    def placeholders(self) -> list[str]:
        return _PLACEHOLDER.findall(self.sql)


def _strip_comment(line: str) -> str:
    # The runbook's SQL has no string literal containing "--".
    return line.split("--", 1)[0].rstrip()


def _split_sql(text: str, first_line: int) -> list[Statement]:
    statements: list[Statement] = []
    current: list[str] = []
    start = first_line
    for offset, raw in enumerate(text.splitlines()):
        line = _strip_comment(raw)
        if not line.strip():
            continue
        if not current:
            start = first_line + offset
        current.append(line)
        if line.endswith(";"):
            statements.append(Statement(start, "\n".join(current).rstrip(";")))
            current = []
    if current:
        statements.append(Statement(start, "\n".join(current)))
    return statements


def _bash_sql(text: str, first_line: int) -> list[Statement]:
    """`psql ... -c "SQL"` (with `\\` line continuations) and SQL typed at a psql prompt."""
    statements: list[Statement] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        command = line
        end = index
        while command.rstrip().endswith("\\") and end + 1 < len(lines):
            end += 1
            command = command.rstrip()[:-1] + " " + lines[end].strip()
        psql = _PSQL_C.search(command)
        if psql is not None:
            statements.append(Statement(first_line + index, " ".join(psql.group(1).split())))
            index = end + 1
            continue
        if _SQL_START.match(line.strip()):
            block = [line]
            while not block[-1].rstrip().endswith(";") and index + len(block) < len(lines):
                block.append(lines[index + len(block)])
            statements.extend(_split_sql("\n".join(block), first_line + index))
            index += len(block)
            continue
        index += 1
    return statements


def runbook_statements(text: str) -> list[Statement]:
    """Every SQL statement of the runbook that touches one of SUBJECTS, with its line number."""
    found: list[Statement] = []
    for fence in _FENCE.finditer(text):
        language, body = fence.group(1), fence.group(2)
        first_line = text.count("\n", 0, fence.start(2)) + 1
        if language == "sql":
            found.extend(_split_sql(body, first_line))
        elif language in ("bash", "sh", "shell", ""):
            found.extend(_bash_sql(body, first_line))
    return [s for s in found if SUBJECT_RE.search(s.sql)]


def read_runbook() -> str:
    if not RUNBOOK_COPY.is_file():
        pytest.fail(f"runbook copy missing at {RUNBOOK_COPY}: its SQL cannot be checked against the schema")
    copy = RUNBOOK_COPY.read_text()
    if RUNBOOK.is_file() and RUNBOOK.read_text() != copy:
        pytest.fail(f"{RUNBOOK_COPY} differs from {RUNBOOK}: copy the runbook again")
    return copy


# --- a database with rows the runbook's statements can find -------------------------------------------


@dataclass(frozen=True)
class Seeded:
    transaction_id: uuid.UUID
    ref_id: str
    webhook_id: uuid.UUID
    key: str
    processing_key_id: uuid.UUID

    def value(self, placeholder: str) -> str:
        values = {
            "transaction-id": str(self.transaction_id),
            "ref-id": self.ref_id,
            "mismatched-ref-id": self.ref_id,
            "webhook-id": str(self.webhook_id),
            "idempotency-key": self.key,
            "idempotency-key-id": str(self.processing_key_id),
        }
        if placeholder not in values:
            pytest.fail(f"the runbook uses a new placeholder <{placeholder}>: map it to a seeded row in this test")
        return values[placeholder]


async def _transaction(
    conn: asyncpg.Connection, ref_id: str, status: str, *, age: str, tx_type: str = "BET", completed: bool = False
) -> uuid.UUID:
    tx_id = uuid.uuid4()
    await conn.execute(
        f"""INSERT INTO transactions (id, client_id, ref_id, type, player_id, amount_cents, currency, round_id,
                request_hash, status, reason, operator_transaction_id, created_at, updated_at, completed_at,
                operator_id)
            VALUES ($1, 'rgs-demo', $2, $3, 'p-runbook', 250, 'EUR', 'r-1', 'hash', $4, $5, $6,
                    now() - interval '{age}', now() - interval '{age}', {"now()" if completed else "NULL"}, $7)""",  # noqa: S608 - {age} is one of the test's literal intervals
        tx_id,
        ref_id,
        tx_type,
        status,
        None if status in ("PENDING", "PROCESSING") else f"{status.lower()} in the seed",
        "op-seed" if status == "COMPLETED" else None,
        operator_id("rgs-demo", ref_id),
    )
    return tx_id


async def _key(conn: asyncpg.Connection, key: str, status: str, tx_id: uuid.UUID | None, *, age: str) -> uuid.UUID:
    key_id = uuid.uuid4()
    await conn.execute(
        f"""INSERT INTO idempotency_keys (id, key, scope, request_hash, status, transaction_id, created_at,
                expires_at)
            VALUES ($1, $2, 'rgs-demo', 'hash', $3, $4, now() - interval '{age}',
                    now() - interval '{age}' + interval '24 hours')""",  # noqa: S608 - {age} is one of the test's literal intervals
        key_id,
        key,
        status,
        tx_id,
    )
    return key_id


async def _webhook(
    conn: asyncpg.Connection, tx_id: uuid.UUID | None, status: str, created_at: datetime, retries: int
) -> uuid.UUID:
    webhook_id = uuid.uuid4()
    await conn.execute(
        """INSERT INTO webhook_outbox (id, transaction_id, client_id, event_type, payload, status, retry_count,
               next_retry_at, last_error, created_at, delivered_at)
           VALUES ($1, $2, 'rgs-demo', 'transaction.completed', '{"refId": "seed"}', $3, $4, now(), $5,
                   $6, CASE WHEN $3 = 'DELIVERED' THEN now() END)""",
        webhook_id,
        tx_id,
        status,
        retries,
        None if status == "DELIVERED" else "HTTP 500 from the RGS",
        created_at,
    )
    return webhook_id


async def seed(conn: asyncpg.Connection) -> Seeded:
    now = await conn.fetchval("SELECT now()")
    done = await _transaction(conn, "rb-done", "COMPLETED", age="2 minutes", completed=True)
    await _transaction(conn, "rb-win", "COMPLETED", age="1 minute", tx_type="WIN", completed=True)
    stuck = await _transaction(conn, "rb-stuck", "PENDING", age="10 minutes")
    await _transaction(conn, "rb-failed", "FAILED", age="3 minutes", completed=True)
    await _transaction(conn, "rb-rejected", "REJECTED", age="4 minutes", completed=True)
    await _key(conn, "key-done", "COMPLETED", done, age="2 minutes")
    processing = await _key(conn, "key-stuck", "PROCESSING", stuck, age="2 hours")
    await _key(conn, "key-expired", "COMPLETED", None, age="3 days")
    webhook = await _webhook(conn, done, "DELIVERED", now, 0)
    await _webhook(conn, done, "FAILED", now, 2)
    await _webhook(conn, stuck, "DEAD_LETTER", now, 7)
    await _webhook(conn, None, "DEAD_LETTER", datetime(2024, 1, 15, 12, tzinfo=UTC), 7)
    return Seeded(done, "rb-done", webhook, "key-done", processing)


# Break-glass statements: deleting a money record is beyond the SRE role (hub_hubctl); they run as the schema
# owner, on purpose and visibly (docs/security.md). Everything else in the runbook runs as the SRE role.
_OWNER_ONLY = re.compile(r"^DELETE FROM transactions\b")


async def _run_rolled_back(conn: asyncpg.Connection, sql: str) -> str:
    tx = conn.transaction()
    await tx.start()
    try:
        return str(await conn.execute(sql))
    finally:
        await tx.rollback()


async def run_runbook(sre: asyncpg.Connection, owner: asyncpg.Connection) -> tuple[list[str], int]:
    """Seed rows (as the schema owner), then run every runbook statement as the SRE role, each rolled back; a
    break-glass statement must be refused to the SRE role and then runs as the owner. Returns the failures
    (explained) and how many break-glass statements ran."""
    failures: list[str] = []
    break_glass = 0
    seeded = await seed(owner)
    for statement in runbook_statements(read_runbook()):
        sql = _PLACEHOLDER.sub(lambda m: seeded.value(m.group(1)), statement.sql)
        conn = sre
        if _OWNER_ONLY.match(sql):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await _run_rolled_back(sre, sql)
            conn, break_glass = owner, break_glass + 1
        try:
            status = await _run_rolled_back(conn, sql)
        except asyncpg.PostgresError as exc:
            failures.append(f"line {statement.line}: {type(exc).__name__}: {exc}\n{sql}")
            continue
        rows = int(status.split()[-1]) if status.split()[-1].isdigit() else 0
        if statement.placeholders and rows == 0:
            failures.append(f"line {statement.line}: found no row for {statement.placeholders} ({status})\n{sql}")
    return failures, break_glass
