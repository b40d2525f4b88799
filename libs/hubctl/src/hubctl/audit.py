"""Who changes what: the actor of a command and the `audit_log` rows it writes.

Row shape (also used by the ledger and gateway): `entity` (`transaction`, `idempotency_key`, `webhook_outbox`),
`entity_id` (transaction id, key id, webhook id), `action` (see the constants), `actor` (`HUBCTL_ACTOR`),
`os_user` (set by the connection, see `hubctl.context`), `before`/`after` (JSON), `reason` (free text).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hub_common import audit as hub_audit
from hub_common import db
from hubctl.context import HubctlSettings, os_user
from hubctl.errors import HubctlError

TRANSACTION = "transaction"
KEY = "idempotency_key"
WEBHOOK = "webhook_outbox"

# Actions hubctl writes (the gateway's is ADMITTED, the ledger's are its transitions: processing, completed, ...).
TX_RESOLVE = "manual-resolve"
TX_REPLAY = "manual-replay"
KEY_COMPLETE = "key.complete"
KEY_CLEANUP = "key.cleanup"
WEBHOOK_REDRIVE = "webhook.redrive"
DLQ_REPLAY = "dlq.replay"


@dataclass(frozen=True)
class Actor:
    name: str
    os_user: str


def actor(settings: HubctlSettings) -> Actor:
    """The actor of a changing command: `HUBCTL_ACTOR`, which only a development stack may leave unset."""
    user = os_user()
    if settings.hubctl_actor and settings.hubctl_actor.strip():
        return Actor(settings.hubctl_actor.strip(), user)
    if settings.dev_mode:
        return Actor(f"hubctl:{user}", user)
    raise HubctlError(
        "set HUBCTL_ACTOR (your name or ticket, e.g. HUBCTL_ACTOR=jane.doe) before changing anything; "
        "only a development stack (HUB_DEV_MODE=1) defaults it to the OS user"
    )


@dataclass(frozen=True)
class Entry:
    entity: str
    entity_id: str
    action: str
    reason: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


async def write(conn: db.Connection, who: Actor, *entries: Entry) -> None:
    """The audit rows of one change; call it inside the change's database transaction."""
    await write_many(conn, who, entries)


async def write_many(conn: db.Connection, who: Actor, entries: Iterable[Entry]) -> None:
    await hub_audit.record_many(
        conn,
        (hub_audit.AuditEntry(e.entity, e.entity_id, e.action, who.name, e.before, e.after, e.reason) for e in entries),
    )
