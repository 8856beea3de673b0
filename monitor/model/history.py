"""A bounded time series: recent points kept exactly, older ones thinned, so memory stays flat."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class Thinned(Generic[T]):
    """Append-only list that halves its older half whenever it reaches `capacity`.

    After k compactions a point that is n appends old survives with spacing ~2^k, so a chart of a
    10-million-line run keeps its shape in `capacity` points while the last capacity/2 stay exact.
    """

    capacity: int = 4096
    points: list[T] = field(default_factory=list)

    def append(self, point: T) -> None:
        self.points.append(point)
        if len(self.points) >= self.capacity:
            keep = self.capacity // 2
            old, recent = self.points[:-keep], self.points[-keep:]
            self.points = old[::2] + recent

    def __len__(self) -> int:
        return len(self.points)

    def last(self) -> T | None:
        return self.points[-1] if self.points else None
