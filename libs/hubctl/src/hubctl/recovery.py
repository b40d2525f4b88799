"""After PostgreSQL was restored from a backup: what the restored database lacks, and how the Hub gets it back.

The Hub's journal is on Kafka: hub.commands holds every admission and hub.transactions every transition, the final
one being what the RGS was told (the gateway's answer and the webhook both come from it). Both are read from
`since` = the backup's time minus a margin (clocks, transactions in flight at the backup) and compared with the
database, one transaction at a time:

- `restore`: a final outcome the database lacks (row missing, or still open): written back from the event by
  `hub_common.restore` (no operator call, no new event).
- `reprocess`: admitted but not final in the journal, or open in the restored database: the operator may have
  applied it after the backup although the restored row says it was never sent, so `apply` marks it possibly
  sent (`hub_common.restore.mark_possibly_sent`, re-creating a missing row from its command under the operator
  id the command names). The ledger finishes it once its consumer group reads hub.commands again from `since`
  (or its sweeper finds it): it asks the operator first (GET); the operator's record finishes it, and only when
  the operator has none do the ordinary rules decide (a BET past its useful life expires, nothing debited).
- `ok`: the database already agrees. `conflict`: a person decides (listed with the reason).

The consumer groups whose work lives in the database (those with offsets on hub.commands, hub.transactions,
operator.transactions: the ledger, the dispatcher, the reconciler's join) are moved back to the first record at
or after `since`, never forward; Kafka accepts that only while a group has no member, i.e. its service is stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub_common import db
from hub_common.envelope import EnvelopeError, decode
from hub_common.kafka import COMMANDS, OPERATOR_TRANSACTIONS, TRANSACTIONS, TopicPartition
from hub_common.kafka_groups import GroupOffsets, groups_on, offsets_at
from hub_common.kafka_scan import RawRecord, scan
from hub_common.schemas import TransactionCommand, TransactionEvent
from hub_common.settings import KafkaSettings

RESTORE = "restore"
REPROCESS = "reprocess"
OK = "ok"
CONFLICT = "conflict"
# Topics whose consumers keep their results in PostgreSQL: their groups read again from the backup's time.
REWOUND_TOPICS = (COMMANDS, TRANSACTIONS, OPERATOR_TRANSACTIONS)


@dataclass
class Entry:
    """One transaction as the journal tells it."""

    transaction_id: str
    ref_id: str
    command: TransactionCommand | None = None
    command_correlation: str = ""
    final: TransactionEvent | None = None
    final_correlation: str = ""
    final_at_ms: int = 0


@dataclass
class Journal:
    entries: dict[str, Entry] = field(default_factory=dict)
    truncated: set[str] = field(default_factory=set)
    records: int = 0

    def entry(self, transaction_id: str, ref_id: str) -> Entry:
        found = self.entries.get(transaction_id)
        if found is None:
            found = self.entries[transaction_id] = Entry(transaction_id, ref_id)
        return found

    def add(self, record: RawRecord) -> None:
        try:
            envelope = decode(record.value)
            if envelope.schema_name.startswith("TransactionCommand/"):
                cmd = envelope.payload_as(TransactionCommand)
                entry = self.entry(cmd.transaction_id, cmd.ref_id)
                entry.command, entry.command_correlation = cmd, envelope.correlation_id
            elif envelope.schema_name.startswith("TransactionEvent/"):
                event = envelope.payload_as(TransactionEvent)
                tx = event.transaction
                entry = self.entry(tx.transaction_id, tx.ref_id)
                if tx.status.is_final and record.timestamp_ms >= entry.final_at_ms:
                    entry.final, entry.final_correlation = event, envelope.correlation_id
                    entry.final_at_ms = record.timestamp_ms
        except EnvelopeError:
            return  # a record that is not ours (its consumer dead-lettered it); nothing to restore from


async def read_journal(kafka: KafkaSettings, since: datetime, *, limit: int) -> Journal:
    """hub.commands and hub.transactions from `since`, at most `limit` records per partition."""
    journal = Journal()
    found = await scan(
        kafka,
        [kafka.topic(COMMANDS), kafka.topic(TRANSACTIONS)],
        since_ms=int(since.timestamp() * 1000),
        max_per_partition=limit,
    )
    for record in sorted(found.records, key=lambda r: r.timestamp_ms):
        journal.add(record)
    journal.records = sum(found.read.values())
    journal.truncated = found.truncated
    return journal


@dataclass(frozen=True)
class Item:
    """What recovery does (or did) for one transaction."""

    action: str
    entry: Entry
    database: str
    detail: str
    # The database row's own facts, for a transaction the journal read does not hold (open in the database only).
    row: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        entry = self.entry
        cmd = entry.command
        tx = entry.final.transaction if entry.final is not None else None
        row = self.row or {}
        return {
            "action": self.action,
            "refId": entry.ref_id,
            "transactionId": entry.transaction_id,
            "type": (tx.type if tx else cmd.type if cmd else row.get("type")),
            "playerId": (tx.player_id if tx else cmd.player_id if cmd else row.get("player_id")),
            "amountCents": (tx.amount_cents if tx else cmd.amount_cents if cmd else row.get("amount_cents")),
            "journal": tx.status.value if tx else "admitted" if cmd or not self.row else "not read",
            "database": self.database,
            "detail": self.detail,
        }


_POSSIBLY_SENT = "no outcome yet: marked possibly sent, the ledger asks the operator first"


async def compare(conn: db.Connection, journal: Journal) -> list[Item]:
    """Each journal transaction against the database, final outcomes first in the order they were reached; then
    the transactions open in the database that the journal read does not mention (admitted before it, and not
    finished: they too may have reached the operator after the backup)."""
    ids = [uuid.UUID(t) for t in journal.entries]
    rows = {
        str(r["id"]): dict(r)
        for r in await conn.fetch(
            """SELECT id, ref_id, type, player_id, amount_cents, status FROM transactions
               WHERE id = ANY($1::uuid[]) OR status IN ('PENDING', 'PROCESSING')
               ORDER BY created_at""",
            ids,
        )
    }
    items = []
    ordered = sorted(journal.entries.values(), key=lambda e: (e.final is None, e.final_at_ms))
    for entry in ordered:
        found = rows.get(entry.transaction_id)
        status = found["status"] if found else None
        database = status or "missing"
        open_row = status in (None, "PENDING", "PROCESSING")
        if entry.final is not None:
            final = entry.final.transaction.status.value
            if status == final:
                items.append(Item(OK, entry, database, "database agrees"))
            elif open_row and (status is not None or entry.command is not None):
                items.append(Item(RESTORE, entry, database, f"the RGS was told {final}"))
            elif open_row:
                items.append(Item(CONFLICT, entry, database, "no row and no command in the journal: widen --margin"))
            else:
                items.append(Item(CONFLICT, entry, database, f"database says {status}, the journal {final}"))
        elif status is None and entry.command is None:
            items.append(Item(CONFLICT, entry, database, "no row and no command in the journal: widen --margin"))
        elif open_row:
            items.append(Item(REPROCESS, entry, database, f"admitted, {_POSSIBLY_SENT}"))
        else:
            items.append(Item(OK, entry, database, "final in the database"))
    for tx_id, found in rows.items():
        if tx_id not in journal.entries:
            entry = Entry(tx_id, found["ref_id"])
            row = {k: found[k] for k in ("type", "player_id", "amount_cents")}
            items.append(Item(REPROCESS, entry, found["status"], f"open in the database, {_POSSIBLY_SENT}", row))
    return items


@dataclass(frozen=True)
class GroupMove:
    """A consumer group and where it goes back to, per partition: (committed now, target)."""

    group: GroupOffsets
    moves: dict[TopicPartition, tuple[int, int]]

    def to_json(self) -> dict[str, Any]:
        per_topic: dict[str, int] = {}
        for tp, (now, target) in self.moves.items():
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + now - target
        return {
            "group": self.group.group,
            "state": self.group.state,
            "members": list(self.group.members),
            "recordsToReread": per_topic,
        }


async def group_moves(kafka: KafkaSettings, since: datetime) -> list[GroupMove]:
    """The groups to move back: every group with offsets on the rewound topics that is past `since`."""
    topics = [kafka.topic(t) for t in REWOUND_TOPICS]
    targets = await offsets_at(kafka, topics, int(since.timestamp() * 1000))
    moves = []
    for group in await groups_on(kafka, topics):
        back = {tp: (now, targets[tp]) for tp, now in group.committed.items() if tp in targets and targets[tp] < now}
        if back:
            moves.append(GroupMove(group, back))
    return moves


def counts(items: Sequence[Item]) -> dict[str, int]:
    found = {RESTORE: 0, REPROCESS: 0, OK: 0, CONFLICT: 0}
    for item in items:
        found[item.action] += 1
    return found
