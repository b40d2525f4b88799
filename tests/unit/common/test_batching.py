"""Group commit (`hub_common.batching`): examples of each policy, then properties over random workloads."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hub_common.batching import GroupCommit, GroupCommitClosedError, OnFailure
from hub_common.errors import InfrastructureError


class Recorder:
    """A batch step that records each batch, can be held at its start, and fails on demand."""

    def __init__(self, *, fail_on: str | None = None, down: bool = False) -> None:
        self.down = down
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self.running = 0
        self.most_running = 0
        self._fail_on = fail_on

    async def run(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate.wait()
            await asyncio.sleep(0)
        finally:
            self.running -= 1
        if self.down:
            raise ConnectionError("database unreachable")
        if self._fail_on is not None and self._fail_on in items:
            raise ValueError(f"cannot handle {self._fail_on}")
        return [item.upper() for item in items]


def split(recorder: Recorder, *, max_batch: int = 10, max_in_flight: int = 1) -> GroupCommit[str, str]:
    return GroupCommit(
        "test",
        recorder.run,
        key=lambda item: item.split(":")[0],
        max_batch=max_batch,
        max_in_flight=max_in_flight,
        on_failure=OnFailure.SPLIT,
        shared_errors=(ConnectionError,),
    )


def share(recorder: Recorder, *, max_batch: int = 100) -> GroupCommit[str, str]:
    return GroupCommit("test", recorder.run, max_batch=max_batch, on_failure=OnFailure.SHARE, write_abandoned=True)


async def test_calls_of_one_tick_share_a_batch_and_each_caller_gets_its_own_result() -> None:
    recorder = Recorder()
    group = share(recorder)
    results = await asyncio.gather(*(group.submit(name) for name in "abcde"))
    assert results == list("ABCDE")
    assert recorder.batches == [list("abcde")]


async def test_calls_arriving_while_a_batch_runs_share_the_next_one_and_batches_are_capped() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = share(recorder, max_batch=3)
    first = asyncio.create_task(group.submit("a"))
    await recorder.entered.wait()
    later = [asyncio.create_task(group.submit(name)) for name in "bcdef"]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await asyncio.gather(first, *later) == list("ABCDEF")
    assert recorder.batches == [["a"], ["b", "c", "d"], ["e", "f"]]


async def test_up_to_max_in_flight_batches_run_at_once() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = split(recorder, max_batch=2, max_in_flight=2)
    calls = [asyncio.create_task(group.submit(name)) for name in "abcde"]
    for _ in range(3):
        await asyncio.sleep(0)
    assert recorder.batches == [["a", "b"], ["c", "d"]]
    recorder.gate.set()
    assert await asyncio.gather(*calls) == list("ABCDE")
    assert recorder.batches[2:] == [["e"]]
    assert recorder.most_running == 2


async def test_split_retries_a_failed_batch_item_by_item_and_only_the_bad_item_fails() -> None:
    recorder = Recorder(fail_on="poison")
    recorder.gate.clear()
    group = split(recorder)
    blocker = asyncio.create_task(group.submit("x"))
    await recorder.entered.wait()
    calls = [asyncio.create_task(group.submit(name)) for name in ("a", "poison", "b")]
    await asyncio.sleep(0)
    recorder.gate.set()
    await blocker
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert results[0] == "A" and results[2] == "B"
    assert isinstance(results[1], ValueError)
    assert recorder.batches[1:] == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]


async def test_split_fails_the_whole_batch_at_once_on_a_shared_error() -> None:
    recorder = Recorder(down=True)
    group = split(recorder)
    results = await asyncio.gather(*(group.submit(name) for name in "ab"), return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert recorder.batches == [["a", "b"]]  # not tried again one by one


async def test_share_hands_the_error_to_every_caller_and_the_next_batch_works() -> None:
    recorder = Recorder(fail_on="poison")
    group = share(recorder)
    failed = await asyncio.gather(*(group.submit(name) for name in ("a", "poison")), return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in failed)
    assert await group.submit("b") == "B"
    assert recorder.batches == [["a", "poison"], ["b"]]


async def test_two_items_with_one_key_never_share_a_batch() -> None:
    recorder = Recorder()
    group = split(recorder)
    assert await asyncio.gather(*(group.submit(name) for name in ("p:1", "q:1", "p:2"))) == ["P:1", "Q:1", "P:2"]
    assert recorder.batches == [["p:1", "q:1"], ["p:2"]]


@pytest.mark.parametrize(("write_abandoned", "written"), [(False, [["a"], ["c"]]), (True, [["a"], ["b", "c"]])])
async def test_an_abandoned_item_is_written_only_when_asked(write_abandoned: bool, written: list[list[str]]) -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group: GroupCommit[str, str] = GroupCommit("t", recorder.run, max_batch=10, write_abandoned=write_abandoned)
    running = asyncio.create_task(group.submit("a"))
    await recorder.entered.wait()
    gave_up = asyncio.create_task(group.submit("b"))
    kept = asyncio.create_task(group.submit("c"))
    await asyncio.sleep(0)
    gave_up.cancel()
    recorder.gate.set()
    assert (await running, await kept) == ("A", "C")
    assert gave_up.cancelled()
    assert recorder.batches == written


async def test_close_fails_running_queued_and_later_callers_with_a_retryable_error() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = split(recorder, max_batch=1)
    running = asyncio.create_task(group.submit("a"))
    await recorder.entered.wait()
    queued = asyncio.create_task(group.submit("b"))
    await asyncio.sleep(0)
    await group.close()
    for call in (running, queued):
        with pytest.raises(GroupCommitClosedError):
            await call
    with pytest.raises(GroupCommitClosedError):
        await group.submit("c")
    assert recorder.batches == [["a"]]
    assert issubclass(GroupCommitClosedError, InfrastructureError)


# --- properties --------------------------------------------------------------------------------------------

workloads = st.lists(st.tuples(st.integers(0, 5), st.booleans()), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    workload=workloads,
    limits=st.tuples(st.integers(1, 8), st.integers(1, 3)),
    policy=st.sampled_from(OnFailure),
    keyed=st.booleans(),
    waves=st.integers(1, 4),
)
def test_every_caller_gets_its_own_outcome_within_the_limits(
    workload: list[tuple[int, bool]], limits: tuple[int, int], policy: OnFailure, keyed: bool, waves: int
) -> None:
    """Items are (key, bad). A bad item makes its batch fail. Whatever the timing of the calls:
    no batch is larger than `max_batch`, has a key twice (when keyed), or runs beside more than `max_in_flight`
    batches; a good item's caller gets its own result unless SHARE put it in a batch with a bad item; a bad
    item's caller always gets the error; and each good item is committed exactly once."""
    max_batch, max_in_flight = limits
    items = [f"{key}:{index}:{'bad' if bad else 'ok'}" for index, (key, bad) in enumerate(workload)]
    batches: list[list[str]] = []
    committed: list[str] = []
    running = [0, 0]

    async def run(batch: Sequence[str]) -> list[str]:
        batches.append(list(batch))
        running[0] += 1
        running[1] = max(running[1], running[0])
        try:
            await asyncio.sleep(0)
        finally:
            running[0] -= 1
        if any(item.endswith("bad") for item in batch):
            raise ValueError("bad item")
        committed.extend(batch)
        return [item.upper() for item in batch]

    async def scenario() -> list[str | BaseException]:
        group: GroupCommit[str, str] = GroupCommit(
            "prop",
            run,
            max_batch=max_batch,
            max_in_flight=max_in_flight,
            on_failure=policy,
            key=(lambda item: item.split(":")[0]) if keyed else None,
        )
        calls: list[asyncio.Task[str]] = []
        for wave in range(waves):  # calls arrive over a few loop iterations, not all in one
            calls += [asyncio.create_task(group.submit(item)) for item in items[wave::waves]]
            await asyncio.sleep(0)
        done = await asyncio.gather(*calls, return_exceptions=True)
        await group.close()
        order = [item for wave in range(waves) for item in items[wave::waves]]
        by_item = dict(zip(order, done, strict=True))
        return [by_item[item] for item in items]

    results = asyncio.run(scenario())

    assert all(len(batch) <= max_batch for batch in batches)
    assert running[1] <= max_in_flight
    if keyed:
        assert all(len({i.split(":")[0] for i in batch}) == len(batch) for batch in batches)
    failed_with_bad = {item for batch in batches if any(i.endswith("bad") for i in batch) for item in batch}
    for item, result in zip(items, results, strict=True):
        if item.endswith("bad"):
            assert isinstance(result, ValueError)
        elif policy is OnFailure.SPLIT:
            assert result == item.upper()
        else:
            assert result == item.upper() or (isinstance(result, ValueError) and item in failed_with_bad)
    good = [item for item, result in zip(items, results, strict=True) if result == item.upper()]
    assert sorted(committed) == sorted(good)
