"""Per-player ordering and the commit point of a partition."""

from __future__ import annotations

import asyncio

from hub_ledger.ordering import OffsetTracker, PlayerQueues, Work


def test_commit_point_is_the_lowest_unfinished_offset() -> None:
    tracker: OffsetTracker[int] = OffsetTracker()
    for offset in (10, 11, 12):
        tracker.started(0, offset)
    tracker.finished(0, 11)
    tracker.finished(0, 12)
    assert tracker.committable() == {0: 10}
    tracker.mark_committed({0: 10})
    assert tracker.committable() == {}
    tracker.finished(0, 10)
    assert tracker.committable() == {0: 13}
    assert tracker.in_flight == 0


def test_offsets_seen_but_not_handled_here_still_advance_the_commit_point() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    tracker.seen("a", 5)  # e.g. records 0..4 were dead-lettered
    assert tracker.committable() == {"a": 5}


def test_forgotten_partition_is_not_committed() -> None:
    tracker: OffsetTracker[int] = OffsetTracker()
    tracker.started(1, 0)
    tracker.forget(1)
    assert tracker.committable() == {}


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
