"""The whole Hub from the launcher, on the session's broker and cluster, with free ports and its own prefix.

This is the launcher's acceptance test: every service ready, the demo traffic of `make up` answered as the
contract says, webhooks delivered, then every process stopped.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from hub_devstack.demo import render_table, run_demo
from hub_devstack.postgres import database_url_for
from hub_devstack.procs import free_port, port_is_free
from hub_devstack.stack import run_stack
from hub_devstack.stack_config import SERVICES, StackConfig


async def test_stack_runs_the_demo_end_to_end(tmp_path: Path, kafka_bootstrap: str, postgres_admin_url: str) -> None:
    tag = uuid.uuid4().hex[:8]
    config = StackConfig(
        state_dir=tmp_path,
        ports={spec.name: free_port() for spec in SERVICES},
        kafka_bootstrap=kafka_bootstrap,
        admin_database_url=postgres_admin_url,
        database_name=f"hub_stack_{tag}",
        topic_prefix=f"s{tag}.",
        extra_env={"DISPATCHER_RETRY_SCHEDULE_MS": "[200, 400]", "RECONCILER_FEED_ENABLED": "false"},
        ready_timeout_s=90,
    )
    with run_stack(config) as running:
        facts = running.facts
        assert facts.database_url == database_url_for(postgres_admin_url, f"hub_stack_{tag}")
        result = await run_demo(facts, settle_timeout_s=30)
        services = running.services
    table = render_table(result)
    by_ref = {(r.ref_id, r.type): r for r in result.rows}
    for row in result.rows:
        assert row.final_status in {"COMPLETED", "REJECTED"}, table
        assert row.webhook, table
    over = [r for r in result.rows if r.type == "BET" and r.amount_cents == 50_000]
    assert [(r.http_status, r.final_status) for r in over] == [(422, "REJECTED")], table
    (retry,) = [r for (_, kind), r in by_ref.items() if kind.endswith("(retry)")]
    assert retry.replayed and retry.http_status == 201, table
    assert result.balances == {"demo-alice": 10_350, "demo-bob": 5_000, "demo-carol": 950}, table
    assert all(s.proc.returncode is not None for s in services)
    assert all(port_is_free(port) for port in config.ports.values())
    assert (tmp_path / "logs" / "gateway.log").is_file()
