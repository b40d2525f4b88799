"""The demo traffic of `make up`, through the whole Hub started by the same launcher.

Every row answered as the contract says, every webhook delivered, balances as expected.
"""

from __future__ import annotations

from hub_devstack.demo import render_table, run_demo
from hub_devstack.stack import RunningStack
from hub_devstack.stack_config import StackConfig


async def test_stack_runs_the_demo_end_to_end(stack: RunningStack, stack_config: StackConfig) -> None:
    facts = stack.facts
    assert facts.database_url.endswith(f"/{stack_config.database_name}")
    result = await run_demo(facts, settle_timeout_s=30)
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
    assert (stack_config.log_dir / "gateway.log").is_file()
