"""The commit point of a partition while records finish out of order (`hub_common.offsets`)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from hub_common.kafka import TopicPartition
from hub_common.offsets import OffsetTracker

TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


def test_commit_point_is_the_lowest_unfinished_offset() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    part = tracker.partition(TP0)
    for offset in (10, 11, 12):
        part.start(offset)
    part.finish(11)
    part.finish(12)
    assert tracker.committable() == {TP0: 10}
    tracker.committed({TP0: 10})
    assert tracker.committable() == {}
    part.finish(10)
    assert tracker.committable() == {TP0: 13}
    assert tracker.in_flight() == 0


def test_skipped_records_advance_the_commit_point() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    tracker.partition(TP0).advance(5)  # e.g. poison records parked in the .dlq, or events ignored
    tracker.partition(TP1).advance(3)
    assert tracker.committable() == {TP0: 5, TP1: 3}
    assert tracker.committable(only=[TP1]) == {TP1: 3}


def test_a_paused_partition_never_commits_past_the_record_it_waits_for() -> None:
    tracker: OffsetTracker[TopicPartition] = OffsetTracker()
    part = tracker.partition(TP0)
    part.start(0)
    part.advance(1)  # stopped at offset 1 (not due), although the batch went up to 5
    part.finish(0)
    assert tracker.committable() == {TP0: 1}
    part.advance(0)  # never moves backwards
    assert part.commit_point() == 1


def test_forgotten_partitions_ignore_late_finishes() -> None:
    tracker: OffsetTracker[str] = OffsetTracker()
    old = tracker.partition("a")
    old.start(7)
    tracker.forget(["a"])
    assert tracker.committable() == {}
    fresh = tracker.partition("a")
    fresh.start(7)  # re-delivered after the reassignment
    old.finish(7)
    assert tracker.in_flight() == 1
    assert tracker.committable() == {"a": 7}


@settings(max_examples=200, deadline=None)
@given(data=st.data(), count=st.integers(1, 30), skipped=st.integers(0, 5))
def test_the_commit_point_never_passes_an_unfinished_record_and_never_moves_back(
    data: st.DataObject, count: int, skipped: int
) -> None:
    """Offsets 0..count-1 are handed out in order (then `skipped` more are fetched but need no work), and
    finish in any order, with commits in between: what is committable is always the lowest unfinished offset
    (or the end), only ever grows, and reaches the end once everything finished."""
    tracker: OffsetTracker[str] = OffsetTracker()
    part = tracker.partition("p")
    for offset in range(count):
        part.start(offset)
    part.advance(count + skipped)
    finish_order = data.draw(st.permutations(range(count)))
    commits = data.draw(st.lists(st.booleans(), min_size=count, max_size=count))
    unfinished = set(range(count))
    last = -1
    for offset, commit in zip(finish_order, commits, strict=True):
        part.finish(offset)
        unfinished.discard(offset)
        expected = min(unfinished) if unfinished else count + skipped
        offered = tracker.committable()
        if expected > last:
            assert offered == {"p": expected}
        else:
            assert offered == {}
        if commit and offered:
            tracker.committed(offered)
            last = offered["p"]
        assert tracker.in_flight() == len(unfinished)
    assert part.commit_point() == count + skipped
