"""A ledger frozen past its lease is fenced: an SRE takes the transaction over and finishes it, and when the ledger
wakes up its retry loop notices it lost ownership and stops: one final state, no operator effect from it.

The ledger is a real process frozen with SIGSTOP (a GC pause, a frozen VM, a partitioned node): its timers and
leases run on, it does not know it was gone.
"""

from __future__ import annotations

import aiohttp
import orjson

from hub_common.schemas import TxStatus, TxType
from hubctl.context import HubctlSettings
from mock_operator.models import FaultConfig, PlayerSeed
from support.hubctl import hubctl
from support.ledger_faults import Rig, Service, ledger_service, running
from support.ledger_it import OPERATOR_SECRET, command, insert_admitted, op_id, send
from support.roles import RoleDbSettings
from support.waits import eventually


async def _leases_lost(ledger: Service) -> float:
    async with aiohttp.ClientSession() as session, session.get(f"{ledger.url}/metrics") as response:
        text = await response.text()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith("hub_ledger_leases_lost_total")]
    return sum(values)


async def test_a_frozen_ledger_is_fenced_by_an_sres_takeover_and_stops(
    rig: Rig, role_db_settings: RoleDbSettings
) -> None:
    ctl = HubctlSettings(
        database=role_db_settings("hubctl"),
        kafka=rig.kafka,
        operator_url=rig.operator_service.url,
        operator_secret=OPERATOR_SECRET,
        hubctl_actor="jane.doe",
    )
    await rig.operator.seed_players([PlayerSeed(player_id="fence-p", balance_cents=10_000, currency="EUR")])
    await rig.operator.set_faults(FaultConfig(error_rate=1.0, error_status=500))
    win = command("fence-win", TxType.WIN, "fence-p", 700)
    ledger = ledger_service(
        "ledger",
        rig.log_dir,
        kafka=rig.kafka,
        database_url=rig.ledger_database_url,
        operator_url=rig.operator_service.url,
    )
    async with running(ledger):
        await insert_admitted(rig.pool, win)
        await send(rig.producer, win)

        async def retrying() -> bool:
            status = await rig.pool.fetchval("SELECT status FROM transactions WHERE ref_id = $1", win.ref_id)
            return status == "PROCESSING" and (await rig.operator.stats()).total_calls >= 3

        await eventually(retrying, what="the ledger retrying the WIN")
        ledger.pause()
        try:

            async def expired() -> bool:
                return bool(
                    await rig.pool.fetchval(
                        "SELECT lease_expires_at <= now() FROM transactions WHERE ref_id = $1", win.ref_id
                    )
                )

            await eventually(expired, what="the frozen ledger's lease to run out")
            # The operator is back, and the SRE finishes the transaction the frozen ledger still believes it owns.
            await rig.operator.clear_faults()
            resolved = await hubctl(ctl, "--json", "tx", "resolve", win.ref_id, "--reason", "INC-11")
        finally:
            ledger.resume()
        assert resolved.code == 0, resolved.err
        assert orjson.loads(resolved.out)["status"] == "FAILED"

        async def stopped() -> bool:
            return await _leases_lost(ledger) >= 1

        await eventually(stopped, what="the woken ledger to notice it lost the transaction")
        await eventually(lambda: _final_event(rig, win.ref_id), what="the final event")

    row = await rig.pool.fetchrow("SELECT * FROM transactions WHERE ref_id = $1", win.ref_id)
    assert row is not None
    assert (row["status"], row["lease_owner"]) == ("FAILED", "hubctl:jane.doe")
    # One final state (the SRE's), one operator effect (none: the WIN was never applied, and the fenced ledger
    # sent nothing after waking up).
    assert [s for s in rig.events.of(win.ref_id) if s.is_final] == [TxStatus.FAILED]
    assert op_id(win.ref_id) not in (await rig.operator.ledger()).apply_counts
    assert (await rig.operator.player("fence-p")).balance_cents == 10_000
    actions = await rig.pool.fetch(
        "SELECT action, actor FROM audit_log WHERE entity_id = $1 ORDER BY id", str(row["id"])
    )
    assert [(a["action"], a["actor"]) for a in actions] == [("processing", "ledger"), ("manual-resolve", "jane.doe")]
    assert "lease lost" in ledger.log_path.read_text()


async def _final_event(rig: Rig, ref_id: str) -> bool:
    return any(s.is_final for s in rig.events.of(ref_id))
