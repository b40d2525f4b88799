"""Which offset is safe to commit per partition while records finish out of order.

Records are handed to concurrent work; a partition's commit point is its lowest unfinished offset, or, when
nothing is in flight, the offset after everything handed out (or skipped: dead-lettered, ignored) so far. So a
crash re-delivers everything unfinished, and at-least-once holds. The point never moves backwards.

Work keeps the `PartitionOffsets` object it started on: once the partition is forgotten (revoked, or assigned
afresh), a late finish lands on the orphaned object and cannot move the new owner's commit point.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)


@dataclass
class PartitionOffsets:
    pending: set[int] = field(default_factory=set)
    upto: int | None = None
    committed: int | None = None

    def start(self, offset: int) -> None:
        """`offset` was handed out; everything before it was fetched."""
        self.pending.add(offset)
        self.advance(offset + 1)

    def finish(self, offset: int) -> None:
        self.pending.discard(offset)

    def advance(self, upto: int) -> None:
        """Everything before `upto` was fetched (handed out, or handled without work: a poison record)."""
        self.upto = upto if self.upto is None else max(self.upto, upto)

    def commit_point(self) -> int | None:
        if self.pending:
            return min(self.pending)
        return self.upto


class OffsetTracker(Generic[P]):
    def __init__(self) -> None:
        self._parts: dict[P, PartitionOffsets] = {}

    def partition(self, partition: P) -> PartitionOffsets:
        """The live state of `partition`, created on first use."""
        part = self._parts.get(partition)
        if part is None:
            part = self._parts[partition] = PartitionOffsets()
        return part

    def forget(self, partitions: Iterable[P]) -> None:
        """The partitions are another consumer's business now, or start afresh from the committed offsets."""
        for partition in partitions:
            self._parts.pop(partition, None)

    def in_flight(self) -> int:
        return sum(len(part.pending) for part in self._parts.values())

    def committable(self, only: Iterable[P] | None = None) -> dict[P, int]:
        """Commit points that moved past the last `committed` (of `only`, or every partition)."""
        wanted = set(only) if only is not None else None
        result: dict[P, int] = {}
        for partition, part in self._parts.items():
            if wanted is not None and partition not in wanted:
                continue
            point = part.commit_point()
            if point is not None and (part.committed is None or point > part.committed):
                result[partition] = point
        return result

    def committed(self, offsets: dict[P, int]) -> None:
        for partition, offset in offsets.items():
            part = self._parts.get(partition)
            if part is not None:
                part.committed = offset if part.committed is None else max(part.committed, offset)
