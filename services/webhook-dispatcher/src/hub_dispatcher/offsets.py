"""Which offset is safe to commit per partition while deliveries finish out of order.

Records are handed to concurrent deliveries; a partition's commit point is its lowest unfinished offset, or,
when nothing is in flight, the offset after everything handed out (or skipped) so far.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aiokafka import TopicPartition


@dataclass
class PartitionOffsets:
    pending: set[int] = field(default_factory=set)
    upto: int | None = None
    committed: int | None = None

    def start(self, offset: int) -> None:
        self.pending.add(offset)

    def finish(self, offset: int) -> None:
        self.pending.discard(offset)

    def advance(self, upto: int) -> None:
        self.upto = upto if self.upto is None else max(self.upto, upto)

    def commit_point(self) -> int | None:
        if self.pending:
            return min(self.pending)
        return self.upto


class OffsetTracker:
    def __init__(self) -> None:
        self._parts: dict[TopicPartition, PartitionOffsets] = {}

    def partition(self, tp: TopicPartition) -> PartitionOffsets:
        """The live state of `tp`; a task keeps the object it got, so a reassignment orphans its updates."""
        return self._parts.setdefault(tp, PartitionOffsets())

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        for tp in tps:
            self._parts.pop(tp, None)

    def in_flight(self) -> int:
        return sum(len(p.pending) for p in self._parts.values())

    def committable(self, only: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        wanted = set(only) if only is not None else None
        result = {}
        for tp, part in self._parts.items():
            if wanted is not None and tp not in wanted:
                continue
            point = part.commit_point()
            if point is not None and point != part.committed:
                result[tp] = point
        return result

    def committed(self, offsets: dict[TopicPartition, int]) -> None:
        for tp, offset in offsets.items():
            if tp in self._parts:
                self._parts[tp].committed = offset
