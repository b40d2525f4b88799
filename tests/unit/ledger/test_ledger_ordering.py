"""Per-player ordering."""

from __future__ import annotations

import asyncio

from hub_ledger.ordering import PlayerQueues, Work


async def test_one_player_in_order_players_concurrently() -> None:
    queues = PlayerQueues()
    log: list[str] = []
    release_a = asyncio.Event()
    bob_done = asyncio.Event()
    done = asyncio.Event()
    finished: list[str] = []

    def work(name: str, gate: asyncio.Event | None = None) -> Work:
        async def run() -> None:
            log.append(f"start {name}")
            if gate is not None:
                await gate.wait()
            log.append(f"end {name}")

        def on_done() -> None:
            finished.append(name)
            if name == "b1":
                bob_done.set()
            if len(finished) == 3:
                done.set()

        return Work(run, on_done)

    queues.submit("alice", work("a1", release_a))
    queues.submit("alice", work("a2"))
    queues.submit("bob", work("b1"))
    # bob finishes while alice's first command is still blocked, and alice's second has not started.
    await asyncio.wait_for(bob_done.wait(), 5)
    assert "start a2" not in log
    release_a.set()
    await asyncio.wait_for(done.wait(), 5)
    assert log.index("end a1") < log.index("start a2")
    assert queues.busy_players == 0
    await queues.close()


async def test_a_credit_queued_behind_its_players_work_is_announced() -> None:
    behind: list[str] = []
    queues = PlayerQueues(on_credit_behind=behind.append)
    gate = asyncio.Event()
    finished = asyncio.Event()

    async def blocked() -> None:
        await gate.wait()

    async def quick() -> None:
        return None

    queues.submit("alice", Work(blocked, lambda: None))
    queues.submit("bob", Work(quick, lambda: None, credit=True))  # nothing ahead of it: nothing to announce
    assert not queues.credit_waiting("alice")
    queues.submit("alice", Work(quick, finished.set, credit=True))
    assert behind == ["alice"]
    assert queues.credit_waiting("alice")
    gate.set()
    await asyncio.wait_for(finished.wait(), 5)
    assert not queues.credit_waiting("alice")
    await queues.close()
