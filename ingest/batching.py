"""The batching policy of the ingest worker: when to poll, how much, when a batch is cut, and
which offsets it commits. Pure: no broker, no clock (the caller passes elapsed times).

>>> policy = BatchPolicy(max_records=100, max_seconds=1.0)
>>> policy.room(buffered=40, inflight=0, consumed=0)
60
>>> policy.cut(buffered=40, elapsed=0.2, inflight=0, consumed=0, stopping=False)
False
>>> policy.cut(buffered=40, elapsed=1.0, inflight=0, consumed=0, stopping=False)
True
>>> next_offsets([("p", 0, 5), ("p", 0, 7), ("p", 1, 2)])
{('p', 0): 8, ('p', 1): 3}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: How often the loop comes back while a batch is being written, to commit it promptly.
INFLIGHT_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class BatchPolicy:
    """Cut a batch at ``max_records`` records or ``max_seconds`` after its first poll; stop a
    run after ``limit`` records (None: never)."""

    max_records: int
    max_seconds: float
    limit: int | None = None

    def room(self, buffered: int, inflight: int, consumed: int) -> int:
        """How many records the next poll may return."""
        room = self.max_records - buffered
        if self.limit is not None:
            room = min(room, self.limit - consumed - buffered - inflight)
        return room

    def poll_seconds(self, elapsed: float, writing: bool) -> float:
        """How long the next poll may wait (at least a millisecond)."""
        wait = self.max_seconds - elapsed
        if writing:
            wait = min(wait, INFLIGHT_POLL_SECONDS)
        return max(wait, 0.001)

    def cut(
        self, buffered: int, elapsed: float, inflight: int, consumed: int, stopping: bool
    ) -> bool:
        """Whether the buffered records form a batch now."""
        if not buffered:
            return False
        reached = self.limit is not None and consumed + buffered + inflight >= self.limit
        return buffered >= self.max_records or elapsed >= self.max_seconds or reached or stopping

    def finished(self, consumed: int) -> bool:
        """Whether the run has handled all the records it was asked for."""
        return self.limit is not None and consumed >= self.limit


def next_offsets(positions: Iterable[tuple[str, int, int]]) -> dict[tuple[str, int], int]:
    """The offsets to commit for records at ``(topic, partition, offset)``: last + 1 each."""
    last: dict[tuple[str, int], int] = {}
    for topic, partition, offset in positions:
        key = (topic, partition)
        if offset >= last.get(key, -1):
            last[key] = offset
    return {key: offset + 1 for key, offset in last.items()}


def backoff(initial: float, maximum: float) -> Iterator[float]:
    """Delays of capped exponential backoff.

    >>> import itertools
    >>> list(itertools.islice(backoff(0.5, 3.0), 5))
    [0.5, 1.0, 2.0, 3.0, 3.0]
    """
    delay = initial
    while True:
        yield delay
        delay = min(delay * 2, maximum)
