"""`hubctl recovery plan|apply|verify --backup-time T`: bring the Hub back after PostgreSQL was restored.

1. `plan` (read-only): what the restored database lacks according to the journal on Kafka, and which consumer
   groups go back to the backup's time.
2. `apply` (services stopped): writes the final outcomes back (`hub_common.restore`, audited `recovery.restore`),
   marks what has no outcome yet possibly sent (audited `recovery.possibly-sent`; a row the backup lacks is
   re-created from its command) and moves the groups back (audited `recovery.rewind`); `--dry-run` shows the
   plan. Then start the services: the ledger finishes what was in flight, asking the operator first, the
   dispatcher re-creates the lost webhook rows (the RGS may get a webhook again, with the same eventId), the
   reconciler reads its feed again.
3. `verify` (services running): every outcome of the journal is in the database, nothing is left in flight, and
   the operator's records since the backup (read by the reconciler's feed) match; what does not is listed for a
   person (exit code 3). See docs/operations.md, "Database recovery".
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hub_common import db, restore
from hub_common.kafka_groups import group_lag, groups_on, rewind
from hub_common.reconciliation.report import feed_coverage, iso, mismatches
from hub_common.reconciliation.rules import IN_RANGE, NOT_MISMATCHES
from hubctl import audit, recovery
from hubctl.bulk import add_change_options, confirm, time_bound
from hubctl.cli import Subparsers, command, group
from hubctl.context import HubctlSettings, connection
from hubctl.errors import HubctlError
from hubctl.output import emit_json, fields, progress, progress_wanted, render, section

CONSUMER_GROUP = "consumer_group"
REWIND = "recovery.rewind"
NEEDS_A_PERSON = 3
_ITEM_COLUMNS = ["action", "refId", "type", "amountCents", "journal", "database", "detail"]


def register(sub: Subparsers) -> None:
    nested = group(sub, "recovery", help="after a database restore: plan, apply, verify", dest="recovery_command")
    plan = command(nested, "plan", help="what the restored database lacks, from the journal on Kafka", handler=run_plan)
    apply = command(nested, "apply", help="write outcomes back, rewind consumer groups (services stopped)",
                    handler=run_apply)  # fmt: skip
    verify = command(nested, "verify", help="check the Hub against the journal and the operator", handler=run_verify)
    for parser in (plan, apply, verify):
        parser.add_argument(
            "--backup-time",
            type=time_bound,
            required=True,
            help="when the restored backup was taken (the PITR target or the dump's start; ISO, UTC if naive)",
        )
        parser.add_argument(
            "--margin", type=float, default=300.0, metavar="SECONDS", help="read the journal from this much earlier"
        )
        parser.add_argument("--scan-limit", type=int, default=1_000_000, help="journal records per partition at most")
    plan.add_argument("--all", action="store_true", help="list the transactions that are fine too")
    add_change_options(apply, reason="database restored from a backup")
    apply.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    apply.add_argument("--progress", action="store_true", help="progress bar on stderr even when not a terminal")
    apply.add_argument("--key-ttl-h", type=float, default=24.0, help="expiry of re-created idempotency keys (24)")
    verify.add_argument("--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for the Hub to "
                        "finish what is in flight and for the operator feed to catch up")  # fmt: skip


def _since(args: argparse.Namespace) -> datetime:
    since: datetime = args.backup_time - timedelta(seconds=args.margin)
    if since > datetime.now(UTC):
        raise HubctlError("--backup-time is in the future")
    return since


async def _plan(args: argparse.Namespace, settings: HubctlSettings) -> tuple[recovery.Journal, list[recovery.Item]]:
    journal = await recovery.read_journal(settings.kafka, _since(args), limit=args.scan_limit)
    async with connection(settings) as conn:
        items = await recovery.compare(conn, journal)
    return journal, items


def _notes(journal: recovery.Journal) -> list[str]:
    return [f"{t}: stopped after --scan-limit records per partition" for t in sorted(journal.truncated)]


def _show(summary: dict[str, Any], items: list[dict[str, Any]], groups: list[dict[str, Any]]) -> None:
    fields(summary)
    section("transactions")
    render(items, as_json=False, columns=_ITEM_COLUMNS)
    section("consumer groups to rewind")
    render(groups, as_json=False, columns=["group", "state", "members", "recordsToReread"])


async def run_plan(args: argparse.Namespace, settings: HubctlSettings) -> int:
    journal, items = await _plan(args, settings)
    moves = await recovery.group_moves(settings.kafka, _since(args))
    shown = [i.to_json() for i in items if args.all or i.action != recovery.OK]
    summary = {
        "journalFrom": iso(_since(args)),
        "journalRecords": journal.records,
        **recovery.counts(items),
        "notes": _notes(journal) or "-",
    }
    if args.json:
        emit_json({**summary, "transactions": shown, "groups": [m.to_json() for m in moves]})
    else:
        _show(summary, shown, [m.to_json() for m in moves])
    return 0


async def run_apply(args: argparse.Namespace, settings: HubctlSettings) -> int:
    actor = None if args.dry_run else audit.actor(settings)
    journal, items = await _plan(args, settings)
    moves = await recovery.group_moves(settings.kafka, _since(args))
    busy = [m.group for m in moves if not m.group.idle]
    if busy:
        names = ", ".join(f"{g.group} ({g.state}: {', '.join(g.members) or '?'})" for g in busy)
        raise HubctlError(f"stop the Hub's services first; consumer groups with members: {names}")
    if journal.truncated:
        raise HubctlError(f"the journal read was cut ({'; '.join(_notes(journal))}): raise --scan-limit")
    to_restore = [i for i in items if i.action == recovery.RESTORE]
    to_mark = [i for i in items if i.action == recovery.REPROCESS]
    if actor is None:
        run_plan_output = {"result": "dry run: nothing changed", **recovery.counts(items)}
        if args.json:
            emit_json({**run_plan_output, "transactions": [i.to_json() for i in items if i.action != recovery.OK],
                       "groups": [m.to_json() for m in moves]})  # fmt: skip
        else:
            _show(
                run_plan_output, [i.to_json() for i in items if i.action != recovery.OK], [m.to_json() for m in moves]
            )
        return 0
    confirm(
        f"Write {len(to_restore)} outcomes back from the journal, mark {len(to_mark)} open transactions possibly "
        f"sent and rewind {len(moves)} consumer groups to {iso(_since(args))}?",
        assume_yes=args.yes,
    )
    results = await _restore_all(args, settings, actor, to_restore)
    marked = await _mark_all(args, settings, actor, to_mark)
    await _rewind_all(args, settings, actor, moves)
    results += marked
    summary = {
        "restored": sum(r["result"] in (restore.Result.INSERTED, restore.Result.FINISHED) for r in results),
        "conflicts": sum(r["result"] == restore.Result.CONFLICT for r in results),
        "markedPossiblySent": sum(r["result"] == restore.Result.MARKED for r in marked),
        "reprocessedByTheLedger": recovery.counts(items)[recovery.REPROCESS],
        "groupsRewound": len(moves),
        "next": "start the services, then: hubctl recovery verify --backup-time ... --wait 600",
    }
    conflicts = [r for r in results if r["result"] == restore.Result.CONFLICT]
    conflicts += [i.to_json() for i in items if i.action == recovery.CONFLICT]
    if args.json:
        emit_json({**summary, "conflicts": conflicts, "groups": [m.to_json() for m in moves]})
    else:
        fields(summary)
        if conflicts:
            section("for a person to decide")
            render(conflicts, as_json=False, columns=["refId", "journal", "database", "detail"])
    return NEEDS_A_PERSON if conflicts else 0


async def _restore_all(
    args: argparse.Namespace, settings: HubctlSettings, actor: audit.Actor, items: list[recovery.Item]
) -> list[dict[str, Any]]:
    ttl = timedelta(hours=args.key_ttl_h)

    async def one(conn: db.Connection, entry: recovery.Entry) -> restore.Restored:
        assert entry.final is not None  # a restore item has its final event
        return await restore.restore(
            conn,
            entry.final,
            entry.command,
            correlation_id=entry.final_correlation or entry.command_correlation,
            key_ttl=ttl,
            actor=actor.name,
            reason=args.reason,
        )

    return await _each(args, settings, "restore", items, one)


async def _mark_all(
    args: argparse.Namespace, settings: HubctlSettings, actor: audit.Actor, items: list[recovery.Item]
) -> list[dict[str, Any]]:
    """Every transaction with no outcome yet marked possibly sent, so the ledger asks the operator before deciding
    anything that assumes it was never sent (a row the backup lacks is re-created from its command first)."""
    ttl = timedelta(hours=args.key_ttl_h)

    async def one(conn: db.Connection, entry: recovery.Entry) -> restore.Restored:
        return await restore.mark_possibly_sent(
            conn,
            entry.transaction_id,
            entry.ref_id,
            entry.command,
            correlation_id=entry.command_correlation,
            key_ttl=ttl,
            actor=actor.name,
            reason=args.reason,
        )

    return await _each(args, settings, "mark", items, one)


async def _each(
    args: argparse.Namespace,
    settings: HubctlSettings,
    name: str,
    items: list[recovery.Item],
    change: Callable[[db.Connection, recovery.Entry], Awaitable[restore.Restored]],
) -> list[dict[str, Any]]:
    """`change` for each item, each in its own database transaction (one that fails leaves the others done)."""
    results = []
    async with connection(settings) as conn:
        with progress(name, len(items), enabled=progress_wanted(args.progress)) as step:
            for item in items:
                async with conn.transaction():
                    done = await change(conn, item.entry)
                results.append({**item.to_json(), "result": done.result, "detail": done.detail})
                step()
    return results


async def _rewind_all(
    args: argparse.Namespace, settings: HubctlSettings, actor: audit.Actor, moves: list[recovery.GroupMove]
) -> None:
    for move in moves:
        await rewind(settings.kafka, move.group.group, {tp: target for tp, (_, target) in move.moves.items()})
        before = {f"{tp.topic}:{tp.partition}": now for tp, (now, _) in move.moves.items()}
        after = {f"{tp.topic}:{tp.partition}": target for tp, (_, target) in move.moves.items()}
        async with connection(settings) as conn:
            await audit.write(
                conn, actor, audit.Entry(CONSUMER_GROUP, move.group.group, REWIND, args.reason, before, after)
            )


async def _verify_once(args: argparse.Namespace, settings: HubctlSettings) -> dict[str, Any]:
    since = _since(args)
    journal, items = await _plan(args, settings)
    open_items = [i.to_json() for i in items if i.action != recovery.OK]
    async with connection(settings) as conn:
        covered = await feed_coverage(conn)
        rows = []
        if covered is not None and covered > since:
            query = f"SELECT * FROM ({IN_RANGE}) j WHERE NOT (j.verdict <@ '{NOT_MISMATCHES}'::text[])"  # noqa: S608 - IN_RANGE and NOT_MISMATCHES are constants of hub_common.reconciliation.rules
            rows = [dict(r) for r in await conn.fetch(query, covered, since, covered)]
    operator = [
        {"refId": m.row.get("ref_id") or m.row.get("op_key"), "kind": m.kind.value, "detail": m.detail}
        for row in rows
        for m in mismatches(row)
    ]
    topics = [settings.kafka.topic(t) for t in recovery.REWOUND_TOPICS]
    lags = {
        g.group: await group_lag(settings.kafka, g.group, sorted({tp.topic for tp in g.committed}))
        for g in await groups_on(settings.kafka, topics)
    }
    return {
        "journalFrom": iso(since),
        "journalRecords": journal.records,
        **recovery.counts(items),
        "operatorFeedCoveredTo": iso(covered) if covered else None,
        "transactions": open_items,
        "operator": operator,
        "notes": _notes(journal),
        "groupLag": lags,
    }


async def run_verify(args: argparse.Namespace, settings: HubctlSettings) -> int:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + args.wait
    while True:
        found = await _verify_once(args, settings)
        covered = found["operatorFeedCoveredTo"]
        caught_up = covered is not None and datetime.fromisoformat(covered) >= datetime.now(UTC) - timedelta(minutes=1)
        settled = not any(i["action"] in (recovery.RESTORE, recovery.REPROCESS) for i in found["transactions"])
        if (settled and caught_up) or loop.time() >= deadline:
            break
        await asyncio.sleep(2.0)
    if not caught_up:
        found["notes"].append(
            f"the operator feed is read up to {covered or 'nothing yet'}: is the reconciler running? "
            "operator records after that were not compared"
        )
    problems = bool(found["transactions"] or found["operator"])
    found["result"] = "needs a person: see the lists" if problems else "consistent"
    if args.json:
        emit_json(found)
    else:
        fields({k: v for k, v in found.items() if k not in ("transactions", "operator", "notes")})
        section("transactions the database does not agree on")
        render(found["transactions"], as_json=False, columns=_ITEM_COLUMNS)
        section("operator records that do not match (reconciliation rules)")
        render(found["operator"], as_json=False, columns=["refId", "kind", "detail"])
        for note in found["notes"]:
            print(f"note: {note}", file=sys.stderr)
    return NEEDS_A_PERSON if problems else 0
