"""Database recovery drill (docs/operations.md, "Database recovery"), on the real broker and database.

Load runs through every real process; a pg_dump is taken in the middle of it; the load goes on, then some BETs
are left in flight: one the operator applied whose answer the ledger never got (the call hangs, then every call
fails), the others never applied (the operator answering 503). The Hub's services stop and the older dump is
restored, which holds none of those BETs. `hubctl recovery apply` writes back what the journal on Kafka says,
marks what has no outcome possibly sent and rewinds the consumer groups; the services start again once the
in-flight BETs are past their useful life. Every transaction the RGS was told COMPLETED (or REJECTED) is so
again; the BET the operator applied is COMPLETED from its record (not expired: its row says "never sent", but the
ledger asks first), the others end BET_EXPIRED with nothing debited; no transactionId is applied twice by the
operator, balances are what they were, and the one operator record the Hub never knew is listed by `hubctl
recovery verify` for a person to decide.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import orjson
from pydantic import SecretStr

from hub_common.kafka import COMMANDS, OPERATOR_TRANSACTIONS, TRANSACTIONS
from hub_common.kafka_groups import group_lag, groups_on
from hub_common.operator import operator_id
from hub_common.settings import DatabaseSettings, KafkaSettings
from hub_devstack.kafka import delete_topics
from hub_devstack.postgres_roles import DatabaseRoles
from hub_devstack.stack import create_database
from hub_devstack.stack_config import StackConfig
from hub_gateway.client import GatewayClient
from hubctl.context import HubctlSettings
from mock_operator.admin_client import OperatorAdminClient
from mock_operator.models import FaultConfig, PlayerSeed, RecordSeed
from support.hubctl import hubctl
from support.recovery_drill import HUB, MOCKS, Told, dump, post, restore, services
from support.stacks import own_stack
from support.waits import eventually

PLAYERS = [f"drill-{i}" for i in range(4)]
POOR = "drill-poor"
# Short, so the in-flight BETs are past it when the ledger gets to them again without a long wait; long enough
# for the load before them to be sent in time on a busy machine.
USEFUL_LIFE_S = 15


def _config(tmp_path: Path, kafka: str, roles: DatabaseRoles) -> StackConfig:
    return own_stack(
        tmp_path,
        "drill",
        kafka_bootstrap=kafka,
        admin_database_url=roles.admin_url,
        db_roles=roles,
        operator_rate_per_minute=6000,
        extra_env={
            "GATEWAY_OUTCOME_BUDGET_S": "1",
            "GATEWAY_BET_USEFUL_LIFE_S": str(USEFUL_LIFE_S),
            "LEDGER_BET_DEADLINE_S": "900",
            "LEDGER_RETRY_MAX_S": "1",
            "RECONCILER_FEED_POLL_INTERVAL_S": "1",
            "RECONCILER_FEED_DELAY_S": "0",
            "RECONCILER_DAILY_ENABLED": "false",
            "KAFKA_LAG_INTERVAL_S": "1",
        },
        ready_timeout_s=90,
        stop_grace_s=15,
    )


def _body(ref: str, kind: str, player: str, amount: int, **extra: str) -> dict[str, object]:
    return {"refId": ref, "type": kind, "playerId": player, "amountCents": amount, "currency": "EUR",
            "roundId": extra.pop("round", ref), "gameId": "slot-7", **extra}  # fmt: skip


async def _play(gateway: GatewayClient, phase: str, player: str) -> list[Told]:
    """A player's session: bets, a win on one round, a refund of another bet (in order: one player's money)."""
    told = []
    for i in range(4):
        told.append(
            await post(gateway, _body(f"{phase}-{player}-bet-{i}", "BET", player, 100 + i, round=f"{phase}-r{i}"))
        )
    told.append(await post(gateway, _body(f"{phase}-{player}-win", "WIN", player, 250, round=f"{phase}-r0")))
    told.append(
        await post(
            gateway,
            _body(f"{phase}-{player}-refund", "REFUND", player, 101, round=f"{phase}-r1",
                  originalRefId=f"{phase}-{player}-bet-1"),
        )
    )  # fmt: skip
    return told


async def _load(gateway: GatewayClient, phase: str) -> list[Told]:
    sessions = await asyncio.gather(*(_play(gateway, phase, p) for p in PLAYERS))
    rejected = await post(gateway, _body(f"{phase}-poor-bet", "BET", POOR, 10_000))
    return [t for session in sessions for t in session] + [rejected]


async def _final_statuses(gateway: GatewayClient, told: list[Told]) -> dict[str, str]:
    """What the RGS learns in the end for each refId (a 202 is followed by GET until final)."""
    final: dict[str, str] = {}

    async def settled() -> bool:
        for t in told:
            if t.ref_id not in final:
                answer = await gateway.get_transaction(t.ref_id)
                status = answer.body.get("status") if isinstance(answer.body, dict) else None
                if status in ("COMPLETED", "REJECTED", "FAILED"):
                    final[t.ref_id] = status
        return len(final) == len(told)

    await eventually(settled, timeout_s=120, step_s=0.5, what="every transaction final for the RGS")
    return final


async def _applied(operator: OperatorAdminClient, transaction_id: str) -> bool:
    return transaction_id in (await operator.ledger()).apply_counts


async def _rows(database_url: str, ref_ids: list[str]) -> dict[str, asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT * FROM transactions WHERE ref_id = ANY($1::text[])", ref_ids)
    finally:
        await conn.close()
    return {r["ref_id"]: r for r in rows}


async def _statuses(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {r["ref_id"]: r["status"] for r in await conn.fetch("SELECT ref_id, status FROM transactions")}
    finally:
        await conn.close()


async def test_restore_from_an_older_dump_loses_no_outcome_and_applies_nothing_twice(
    tmp_path: Path, kafka_bootstrap: str, db_roles: DatabaseRoles
) -> None:
    config = _config(tmp_path, kafka_bootstrap, db_roles)
    database_url = create_database(db_roles, config.database_name)
    kafka = KafkaSettings(bootstrap_servers=kafka_bootstrap, topic_prefix=config.topic_prefix)
    # hubctl as the SRE's own database role: the drill checks its privileges too.
    hubctl_url = db_roles.component_url("hubctl", config.database_name)
    ctl = HubctlSettings(
        kafka=kafka, database=DatabaseSettings(url=SecretStr(hubctl_url)), hubctl_actor="drill.sre",
        operator_url=config.url("mock-operator"), operator_client_id=config.secrets.operator_client_id,
        operator_secret=SecretStr(config.secrets.operator_secret),
    )  # fmt: skip
    backup = tmp_path / "hub.dump"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            with services(config, MOCKS, kafka=kafka_bootstrap, roles=db_roles):
                operator = OperatorAdminClient(session, config.url("mock-operator"))
                gateway = GatewayClient(
                    session, config.url("gateway"), config.secrets.client_id, SecretStr(config.secrets.client_secret)
                )
                seeds = [PlayerSeed(player_id=p, balance_cents=1_000_000, currency="EUR") for p in PLAYERS]
                await operator.seed_players([*seeds, PlayerSeed(player_id=POOR, balance_cents=100, currency="EUR")])

                with services(config, HUB, kafka=kafka_bootstrap, roles=db_roles):
                    told = await _load(gateway, "a")
                    # The backup is taken while the load goes on.
                    backup_time = datetime.now(UTC)
                    later = asyncio.create_task(_load(gateway, "b"))
                    await dump(database_url, backup)
                    told += await later
                    await operator.add_records(
                        [RecordSeed(transaction_id=f"outside-{uuid.uuid4().hex[:6]}", amount_cents=77, currency="EUR")]
                    )
                    final = await _final_statuses(gateway, told)
                    # In flight when the Hub stops (admitted, 202): one BET the operator applies while the call
                    # hangs, after which every call fails, so the ledger never learns it; the others the operator
                    # never applies (503).
                    applied_id = operator_id(config.secrets.client_id, "c-applied-bet")
                    await operator.set_faults(FaultConfig(timeout_after_apply_rate=1.0, hang_ms=60_000))
                    applied = await post(gateway, _body("c-applied-bet", "BET", PLAYERS[0], 66))
                    await eventually(
                        lambda: _applied(operator, applied_id), timeout_s=30, what="the operator to apply the BET"
                    )
                    await operator.set_faults(FaultConfig(error_rate=1.0, error_status=503))
                    in_flight = [await post(gateway, _body(f"c-{p}-bet", "BET", p, 55)) for p in PLAYERS]
                    admitted_by = datetime.now(UTC)
                    assert {t.http for t in [applied, *in_flight]} == {202}
                applied_before = (await operator.ledger()).apply_counts
                balances_before = {p: (await operator.player(p)).balance_cents for p in PLAYERS}
                assert set(final.values()) == {"COMPLETED", "REJECTED"} and list(final.values()).count("REJECTED") == 2
                assert all(n == 1 for n in applied_before.values()) and applied_id in applied_before

                # The disaster: the database goes back to the dump taken mid-load.
                await restore(db_roles, config.database_name, backup)
                await operator.clear_faults()
                restored = await _statuses(database_url)
                lost = [ref for ref in final if restored.get(ref) != final[ref]]
                assert lost, "the dump should predate some outcomes"
                await _groups_idle(kafka)

                plan = (
                    await hubctl(ctl, "recovery", "plan", "--backup-time", backup_time.isoformat(), "--json")
                ).json()
                reprocessed = len(in_flight) + 1
                assert (plan["restore"], plan["reprocess"], plan["conflict"]) == (len(lost), reprocessed, 0)
                assert {g["group"] for g in plan["groups"]} >= {f"{config.topic_prefix}hub-ledger"}
                done = await hubctl(ctl, "recovery", "apply", "--backup-time", backup_time.isoformat(),
                                    "--yes", "--json")  # fmt: skip
                assert done.code == 0, done.out + done.err
                assert (done.json()["conflicts"], done.json()["markedPossiblySent"]) == ([], reprocessed)
                # The restored database lacks the in-flight BETs: re-created from their commands, each PENDING
                # with no call the database knows of, as the backup would have it; and marked possibly sent.
                marked = await _rows(database_url, [applied.ref_id, *(t.ref_id for t in in_flight)])
                assert {(r["status"], r["possibly_sent_at"] is not None) for r in marked.values()} == {
                    ("PENDING", True)
                }
                # Past their useful life when the ledger gets to them again.
                await asyncio.sleep(max(0.0, (admitted_by + timedelta(seconds=USEFUL_LIFE_S + 1) - datetime.now(UTC))
                                        .total_seconds()))  # fmt: skip

                with services(config, HUB, kafka=kafka_bootstrap, roles=db_roles):
                    verified = await hubctl(ctl, "recovery", "verify", "--backup-time", backup_time.isoformat(),
                                            "--wait", "120", "--json")  # fmt: skip
                    report = orjson.loads(verified.out)
                    now = await _statuses(database_url)
                    assert {ref: now.get(ref) for ref in final} == final
                    await _groups_caught_up(kafka)
                    applied_after = (await operator.ledger()).apply_counts
                    balances_after = {p: (await operator.player(p)).balance_cents for p in PLAYERS}
                ended = await _rows(database_url, [applied.ref_id, *(t.ref_id for t in in_flight)])
                # The BET the operator applied: COMPLETED from its record, once; the others expired unsent.
                assert (ended[applied.ref_id]["status"], ended[applied.ref_id]["attempts"]) == ("COMPLETED", 1)
                assert {(ended[t.ref_id]["status"], ended[t.ref_id]["error_code"]) for t in in_flight} == {
                    ("REJECTED", "BET_EXPIRED")
                }
                # Nothing applied twice, nothing applied after the restart, no balance moved.
                assert applied_after == applied_before
                assert balances_after == balances_before
                # What the Hub's journal cannot explain is listed for a person: the operator-only record.
                assert verified.code == 3, verified.out + verified.err
                assert report["transactions"] == []
                assert [m["kind"] for m in report["operator"]] == ["MISSING_IN_HUB"]
                assert report["operator"][0]["refId"].startswith("outside-")
    finally:
        await delete_topics(kafka_bootstrap, config.topic_prefix)


async def _groups_idle(kafka: KafkaSettings) -> None:
    """The stopped services' groups have no member (a process killed after its grace keeps one until its session
    times out)."""
    topics = [kafka.topic(t) for t in (COMMANDS, TRANSACTIONS, OPERATOR_TRANSACTIONS)]

    async def idle() -> bool:
        return all(g.idle for g in await groups_on(kafka, topics))

    await eventually(idle, timeout_s=60, step_s=1, what="the Hub's consumer groups empty")


async def _groups_caught_up(kafka: KafkaSettings) -> None:
    """Every rewound group has read its topics to the end again (the reconciler's join included)."""
    topics = [kafka.topic(t) for t in (COMMANDS, TRANSACTIONS, OPERATOR_TRANSACTIONS)]

    async def caught_up() -> bool:
        for g in await groups_on(kafka, topics):
            lag = await group_lag(kafka, g.group, sorted({tp.topic for tp in g.committed}))
            if any(lag.values()):
                return False
        return True

    await eventually(caught_up, timeout_s=90, step_s=1, what="the rewound consumer groups caught up")
