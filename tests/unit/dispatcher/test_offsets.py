from __future__ import annotations

from aiokafka import TopicPartition

from hub_dispatcher.offsets import OffsetTracker

TP0 = TopicPartition("t", 0)
TP1 = TopicPartition("t", 1)


def test_commit_point_is_the_lowest_unfinished_offset() -> None:
    tracker = OffsetTracker()
    part = tracker.partition(TP0)
    for offset in (10, 11, 12):
        part.start(offset)
    part.advance(13)
    part.finish(11)
    part.finish(12)
    assert tracker.committable() == {TP0: 10}
    tracker.committed({TP0: 10})
    assert tracker.committable() == {}
    part.finish(10)
    assert tracker.committable() == {TP0: 13}


def test_skipped_records_advance_the_commit_point() -> None:
    tracker = OffsetTracker()
    tracker.partition(TP0).advance(5)  # e.g. poison records parked in the .dlq, or PENDING events ignored
    tracker.partition(TP1).advance(3)
    assert tracker.committable() == {TP0: 5, TP1: 3}
    assert tracker.committable(only=[TP1]) == {TP1: 3}


def test_a_paused_partition_never_commits_past_the_record_it_waits_for() -> None:
    tracker = OffsetTracker()
    part = tracker.partition(TP0)
    part.start(0)
    part.advance(1)  # stopped at offset 1 (not due), although the batch went up to 5
    part.finish(0)
    assert tracker.committable() == {TP0: 1}
    part.advance(0)  # never moves backwards
    assert part.commit_point() == 1


def test_forgotten_partitions_ignore_late_finishes() -> None:
    tracker = OffsetTracker()
    old = tracker.partition(TP0)
    old.start(7)
    old.advance(8)
    tracker.forget([TP0])
    old.finish(7)
    assert tracker.committable() == {}
    assert tracker.in_flight() == 0
