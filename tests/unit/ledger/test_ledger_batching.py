"""Group commit: calls that wait share the next batch; one bad item fails only its own caller."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from hub_ledger.batching import Batcher


class Recorder:
    """A batch step that records each batch and can be held at its start."""

    def __init__(self, *, fail_on: str | None = None, down: bool = False) -> None:
        self.down = down
        self.batches: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.entered = asyncio.Event()
        self._fail_on = fail_on

    async def run(self, items: Sequence[str]) -> list[str]:
        self.batches.append(list(items))
        self.entered.set()
        await self.gate.wait()
        if self.down:
            raise ConnectionError("database unreachable")
        if self._fail_on in items:
            raise ValueError(f"cannot handle {self._fail_on}")
        return [item.upper() for item in items]


def batcher(recorder: Recorder, *, max_batch: int = 10, max_in_flight: int = 1) -> Batcher[str, str]:
    return Batcher(
        "test",
        recorder.run,
        key=lambda item: item.split(":")[0],
        max_batch=max_batch,
        max_in_flight=max_in_flight,
        shared_errors=(ConnectionError,),
    )


async def test_a_lone_call_runs_at_once_and_calls_arriving_meanwhile_share_the_next_batch() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = batcher(recorder)
    first = asyncio.create_task(group.submit("a"))
    await recorder.entered.wait()
    waiting = [asyncio.create_task(group.submit(name)) for name in ("b", "c", "d")]
    await asyncio.sleep(0)
    recorder.gate.set()
    assert await first == "A"
    assert await asyncio.gather(*waiting) == ["B", "C", "D"]
    assert recorder.batches == [["a"], ["b", "c", "d"]]


async def test_batches_are_capped_and_run_up_to_max_in_flight_at_once() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = batcher(recorder, max_batch=2, max_in_flight=2)
    calls = [asyncio.create_task(group.submit(name)) for name in ("a", "b", "c", "d", "e")]
    for _ in range(3):
        await asyncio.sleep(0)
    # "a" and "b" each found a free slot; the rest wait for one and then go two at a time.
    assert recorder.batches == [["a"], ["b"]]
    recorder.gate.set()
    assert await asyncio.gather(*calls) == ["A", "B", "C", "D", "E"]
    assert recorder.batches[2:] == [["c", "d"], ["e"]]


async def test_a_failing_batch_is_retried_item_by_item_and_only_the_bad_item_fails() -> None:
    recorder = Recorder(fail_on="poison")
    recorder.gate.clear()
    group = batcher(recorder)
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


async def test_an_infrastructure_error_fails_the_whole_batch_at_once() -> None:
    recorder = Recorder(down=True)
    recorder.gate.clear()
    group = batcher(recorder)
    blocker = asyncio.create_task(group.submit("x"))
    await recorder.entered.wait()
    calls = [asyncio.create_task(group.submit(name)) for name in ("a", "b")]
    await asyncio.sleep(0)
    recorder.gate.set()
    results = await asyncio.gather(blocker, *calls, return_exceptions=True)
    assert all(isinstance(r, ConnectionError) for r in results)
    assert recorder.batches == [["x"], ["a", "b"]]  # not tried again one by one


async def test_two_calls_with_one_key_never_share_a_batch() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = batcher(recorder)
    blocker = asyncio.create_task(group.submit("x"))
    await recorder.entered.wait()
    calls = [asyncio.create_task(group.submit(name)) for name in ("p:1", "q:1", "p:2")]
    await asyncio.sleep(0)
    recorder.gate.set()
    await blocker
    assert await asyncio.gather(*calls) == ["P:1", "Q:1", "P:2"]
    assert recorder.batches[1:] == [["p:1", "q:1"], ["p:2"]]


async def test_a_cancelled_caller_is_left_out_and_close_cancels_the_rest() -> None:
    recorder = Recorder()
    recorder.gate.clear()
    group = batcher(recorder)
    running = asyncio.create_task(group.submit("a"))
    await recorder.entered.wait()
    gave_up = asyncio.create_task(group.submit("b"))
    queued = asyncio.create_task(group.submit("c"))
    await asyncio.sleep(0)
    gave_up.cancel()
    await group.close()
    for call in (running, gave_up, queued):
        with pytest.raises(asyncio.CancelledError):
            await call
    assert recorder.batches == [["a"]]
