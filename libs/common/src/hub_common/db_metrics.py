"""Latency of every statement a service's pool runs: `hub_db_query_duration_seconds{statement}`.

One place for every service: `hub_common.db.create_pool` registers `observe` as asyncpg's query logger on each
connection it opens, so no call site names its statements. The label is the statement's group, its verb and the
Hub table it works on (`select transactions`, `insert audit_log`, `commit`), computed once per distinct SQL text
and cached with the histogram's child: the hot path pays a dict lookup and one `observe`. Tables come from the
migrations, so a label can only ever be one of a known, small set.
"""

from __future__ import annotations

import re
from functools import cache

from asyncpg.connection import LoggedQuery
from prometheus_client import Histogram

QUERY_SECONDS = Histogram(
    "hub_db_query_duration_seconds",
    "PostgreSQL statement latency seen by the service's pool, by statement group (verb and Hub table)",
    ["statement"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

_VERBS = frozenset({"select", "insert", "update", "delete", "with"})
_CONTROL = {"begin": "begin", "start": "begin", "commit": "commit", "end": "commit", "rollback": "rollback"}
_OTHER = frozenset({"set", "reset", "show", "lock", "vacuum", "analyze", "listen", "unlisten", "notify", "close"})
_TOKEN = re.compile(r"--[^\n]*|'(?:[^']|'')*'|\"[^\"]*\"|[A-Za-z_][A-Za-z0-9_.]*|[()]")
_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)", re.IGNORECASE)
# Statements whose group is computed per call once this many distinct texts were seen (nothing in the services
# builds SQL text at run time, so this only bounds memory against a future mistake).
_CACHE_LIMIT = 2000
_children: dict[str, Histogram] = {}


@cache
def hub_tables() -> frozenset[str]:
    """Every table the migrations create (and the runner's own)."""
    from hub_common.db import load_migrations  # noqa: PLC0415 - db imports this module for its pools

    names = {m.lower() for migration in load_migrations() for m in _CREATE_TABLE.findall(migration.sql)}
    return frozenset(names | {"schema_migrations"})


def _tokens(sql: str) -> list[tuple[str, int]]:
    """Words (lower case, schema prefix dropped) with their parenthesis depth; comments and literals skipped."""
    found: list[tuple[str, int]] = []
    depth = 0
    for part in _TOKEN.findall(sql):
        if part == "(":
            depth += 1
        elif part == ")":
            depth = max(depth - 1, 0)
        elif part[0] not in "-'\"":
            found.append((part.lower().rpartition(".")[2], depth))
    return found


def _target(words: list[tuple[str, int]], start: int, verb: str) -> str | None:
    """The table the statement at `words[start]` (its verb) works on, when written right after it."""
    depth = words[start][1]
    after = {"insert": "into", "delete": "from", "select": "from", "update": None}[verb]
    for index in range(start + 1, len(words)):
        word, level = words[index]
        if level != depth:
            continue
        if after is None or word == after:
            following = words[index + 1][0] if after is not None and index + 1 < len(words) else word
            return following if following in hub_tables() else None
    return None


def statement_group(sql: str) -> str:
    """`<verb> <table>` for a statement on a Hub table, the verb alone otherwise (`select`, `commit`, `other`)."""
    words = _tokens(sql)
    if not words:
        return "other"
    first = words[0][0]
    if first in _CONTROL:
        return _CONTROL[first]
    if first not in _VERBS:
        return first if first in _OTHER else "other"
    start = 0
    if first == "with":
        # The statement after the CTEs: the first verb at the WITH's own level.
        start = next((i for i, (w, d) in enumerate(words) if i and d == 0 and w in _VERBS - {"with"}), 0)
        if start == 0:
            return "with"
    verb = words[start][0]
    table = _target(words, start, verb)
    if table is None:
        table = next((w for w, _ in words if w in hub_tables()), None)
    return f"{verb} {table}" if table else verb


def _child(sql: str) -> Histogram:
    child = _children.get(sql)
    if child is None:
        child = QUERY_SECONDS.labels(statement_group(sql))
        if len(_children) < _CACHE_LIMIT:
            _children[sql] = child
    return child


def observe(record: LoggedQuery) -> None:
    """asyncpg's query logger: called (soon after) each statement with its elapsed time."""
    _child(record.query).observe(record.elapsed)
