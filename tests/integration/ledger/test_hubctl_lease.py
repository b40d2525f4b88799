"""SRE commands cannot race the ledger: `hubctl tx resolve|replay` refuse a transaction whose lease the ledger
holds, and take over one whose lease expired (fencing the old holder), finishing a BET through the ledger's own
cancel-and-refund path."""

from __future__ import annotations

from collections.abc import Callable

import orjson
import pytest

from hub_common.operator import cancel_id
from hub_common.schemas import TxStatus, TxType
from hub_common.settings import KafkaSettings
from hub_ledger.app import create_app
from hub_ledger.settings import LedgerSettings
from hubctl.context import HubctlSettings
from mock_operator.models import FaultConfig
from support.apps import serve
from support.hubctl import hubctl
from support.ledger_it import OPERATOR_SECRET, Harness, command, op_id
from support.roles import RoleDbSettings
from support.waits import eventually


@pytest.fixture
def ctl(role_db_settings: RoleDbSettings, operator_url: str, kafka_settings: KafkaSettings) -> HubctlSettings:
    return HubctlSettings(
        database=role_db_settings("hubctl"),
        kafka=kafka_settings,
        operator_url=operator_url,
        operator_secret=OPERATOR_SECRET,
        hubctl_actor="jane.doe",
    )


async def _mid_retry(harness: Harness, ref_id: str, calls: int = 3) -> None:
    """The ledger holds the transaction and has tried the operator several times (every call fails)."""

    async def retrying() -> bool:
        row = await harness.row(ref_id)
        return row["status"] == "PROCESSING" and (await harness.operator.stats()).total_calls >= calls

    await eventually(retrying, what=f"the ledger retrying {ref_id}")


async def _lease_expired(harness: Harness, ref_id: str) -> bool:
    return bool(
        await harness.pool.fetchval(
            "SELECT lease_expires_at <= now() FROM transactions WHERE ref_id = $1",
            ref_id,
        )
    )


async def _audit(harness: Harness, tx_id: object) -> list[tuple[str, str]]:
    rows = await harness.pool.fetch(
        "SELECT action, actor FROM audit_log WHERE entity = 'transaction' AND entity_id = $1 ORDER BY id", str(tx_id)
    )
    return [(r["action"], r["actor"]) for r in rows]


async def test_resolve_while_the_ledger_retries_is_refused_one_final_state_one_operator_effect(
    harness: Harness, make_settings: Callable[..., LedgerSettings], ctl: HubctlSettings
) -> None:
    win = command("win-racing", TxType.WIN, "p-1", 500)
    await harness.operator.set_faults(FaultConfig(error_rate=1.0, error_status=500))
    async with serve(create_app(make_settings())):
        await harness.admit(win)
        await _mid_retry(harness, win.ref_id)

        refused = await hubctl(ctl, "tx", "resolve", win.ref_id)
        replay_refused = await hubctl(ctl, "tx", "replay", win.ref_id)
        dry_refused = await hubctl(ctl, "tx", "resolve", win.ref_id, "--dry-run")

        row = await harness.row(win.ref_id)
        assert row["status"] == "PROCESSING"
        await harness.operator.clear_faults()
        event = await harness.events.wait_final(win.ref_id)

    for ran in (refused, replay_refused, dry_refused):
        assert ran.code == 1
        assert ran.err.startswith("hubctl: refused: refId win-racing (client rgs-demo) is held by ledger@"), ran.err
        assert "nothing changed" in ran.err
    # One final state, decided by the ledger; one operator effect.
    assert event.transaction.status is TxStatus.COMPLETED
    finals = [s for s in harness.events.of(win.ref_id) if s.is_final]
    assert finals == [TxStatus.COMPLETED]
    assert (await harness.operator.ledger()).apply_counts == {op_id(win.ref_id): 1}
    assert (await harness.operator.player("p-1")).balance_cents == 10_500
    assert await _audit(harness, row["id"]) == [("processing", "ledger"), ("completed", "ledger")]

    again = await hubctl(ctl, "--json", "tx", "resolve", win.ref_id)
    assert orjson.loads(again.out)["result"] == "already COMPLETED: nothing to do"


async def test_resolve_takes_over_an_expired_lease_and_cancels_the_bet_through_the_compensator(
    harness: Harness, make_settings: Callable[..., LedgerSettings], ctl: HubctlSettings
) -> None:
    bet = command("bet-orphaned", TxType.BET, "p-2", 300)
    await harness.operator.set_faults(FaultConfig(error_rate=1.0, error_status=503))
    # The ledger stops mid-retry (a crash, a lost node): its lease stays until it runs out.
    async with serve(create_app(make_settings())):
        await harness.admit(bet)
        await _mid_retry(harness, bet.ref_id)
    held = await hubctl(ctl, "tx", "resolve", bet.ref_id)
    assert (held.code, "held by ledger@" in held.err) == (1, True), held.err

    await eventually(lambda: _lease_expired(harness, bet.ref_id), what="the stopped ledger's lease to run out")
    await harness.operator.clear_faults()
    resolved = await hubctl(ctl, "--json", "tx", "resolve", bet.ref_id, "--reason", "INC-7")

    assert resolved.code == 0, resolved.err
    result = orjson.loads(resolved.out)
    assert (result["result"], result["status"], result["cancelQueued"]) == ("resolved", "FAILED", True)
    row = await harness.row(bet.ref_id)
    assert (row["status"], row["error_code"], row["lease_owner"]) == (
        "FAILED",
        "OPERATOR_UNAVAILABLE",
        "hubctl:jane.doe",
    )
    assert "INC-7: operator never applied it; cancelled with a refund" in row["reason"]
    assert "took it over from ledger@" in row["reason"]
    comp = await harness.pool.fetchrow("SELECT operator_transaction_id, status FROM ledger_compensations")
    assert comp is not None
    assert (comp["operator_transaction_id"], comp["status"]) == (cancel_id(op_id(bet.ref_id)), "PENDING")

    # A ledger sends the cancel, as for a BET it gave up on itself; the BET itself is never sent again.
    async with serve(create_app(make_settings())):

        async def cancelled() -> bool:
            return bool(await harness.pool.fetchval("SELECT status = 'COMPLETED' FROM ledger_compensations"))

        await eventually(cancelled, what="the compensating refund")
        event = await harness.events.wait_final(bet.ref_id)
    records = {r.transaction_id: r for r in (await harness.operator.ledger()).transactions}
    assert set(records) == {cancel_id(op_id(bet.ref_id))}
    assert records[cancel_id(op_id(bet.ref_id))].original_transaction_id == op_id(bet.ref_id)
    assert (await harness.operator.player("p-2")).balance_cents == 10_000
    assert event.transaction.status is TxStatus.FAILED
    assert [s for s in harness.events.of(bet.ref_id) if s.is_final] == [TxStatus.FAILED]
    assert await _audit(harness, row["id"]) == [
        ("processing", "ledger"),
        ("manual-resolve", "jane.doe"),
        ("compensation", "ledger"),
    ]


async def test_replay_takes_over_an_expired_lease_and_hands_it_back_to_the_ledger(
    harness: Harness, make_settings: Callable[..., LedgerSettings], ctl: HubctlSettings
) -> None:
    win = command("win-orphaned", TxType.WIN, "p-3", 200)
    await harness.operator.set_faults(FaultConfig(error_rate=1.0, error_status=503))
    async with serve(create_app(make_settings())):
        await harness.admit(win)
        await _mid_retry(harness, win.ref_id)
    await eventually(lambda: _lease_expired(harness, win.ref_id), what="the stopped ledger's lease to run out")
    await harness.operator.clear_faults()

    replayed = await hubctl(ctl, "--json", "tx", "replay", win.ref_id, "--reason", "INC-8")
    assert replayed.code == 0, replayed.err
    assert orjson.loads(replayed.out)["result"] == "replayed"
    row = await harness.row(win.ref_id)
    # Handed back: hubctl's lease ended when the command was requeued, so a ledger takes it at once.
    assert row["lease_owner"] == "hubctl:jane.doe"
    assert await _lease_expired(harness, win.ref_id)

    async with serve(create_app(make_settings())):
        event = await harness.events.wait_final(win.ref_id)
    assert event.transaction.status is TxStatus.COMPLETED
    assert (await harness.operator.ledger()).apply_counts == {op_id(win.ref_id): 1}
    assert (await harness.operator.player("p-3")).balance_cents == 10_200
