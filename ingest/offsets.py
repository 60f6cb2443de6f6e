"""Reset-log detection: never let a consumer silently skip records after a broker lost its log.

A broker that restarts without its data (in-memory storage, a lost volume, a recreated topic)
starts every partition again at offset 0, and usually forgets the group's committed offsets too.
A consumer that goes on from its old position then skips the new log's first records (all of
them, if more arrived than its old position before the first fetch). :class:`ResetGuard`
remembers how far this consumer has read each partition and, whenever partitions are
assigned, compares with what the broker says now:

- the committed offset is beyond the high watermark, or
- this consumer read the partition before and the broker no longer has a committed offset,
  or has one below the position the consumer had reached before the previous commit was lost,
  while the high watermark is below what was read (the log shrank).

Either means the log was reset. The policy (``kafka.offset_reset_policy``) is ``earliest``:
seek to the earliest available offset (records already stored are re-read harmlessly: writes
are idempotent), counted in ``driftwatch_ingest_offset_resets_total`` and logged; or ``fail``:
raise :class:`LogReset` from the next poll (kafka-python swallows errors raised inside a
rebalance listener) so the supervised worker stops and says why.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.errors import DriftwatchError
from monitor.metrics import metric

log = logging.getLogger(__name__)

Policy = Literal["earliest", "fail"]


class LogReset(DriftwatchError):
    """A partition's log was reset under the consumer group and the policy is ``fail``."""


@dataclass(frozen=True)
class Reset:
    """One detected reset: where the group was, where the log ends now, and why."""

    topic: str
    partition: int
    committed: int | None
    read_up_to: int | None
    high: int | None
    reason: str


def detect(committed: int | None, read_up_to: int | None, low: int, high: int | None) -> str | None:
    """Why the partition's log looks reset, or None. ``read_up_to`` is one past the last offset
    this consumer saw (None if it never read the partition); ``low``/``high`` the log's ends
    (``high`` None when no fetch confirmed it: then only the other signs count)."""
    if committed is not None and high is not None and committed > high:
        return f"committed offset {committed} is beyond the high watermark {high}"
    if read_up_to is not None and high is not None and read_up_to > high:
        return f"this consumer read up to {read_up_to} but the log now ends at {high}"
    if read_up_to is not None and committed is None:
        return f"the committed offset vanished after this consumer read up to {read_up_to}"
    if committed is not None and committed < low:
        return f"committed offset {committed} is below the earliest available offset {low}"
    return None


def log_ends(
    probe: Any, tps: list[Any], timeout: float = 5.0
) -> dict[Any, tuple[int, int | None, int]]:
    """(earliest, fetched high watermark or None, listed end) of each partition, read through
    ``probe``, a consumer of its own that is not subscribed (it is assigned ``tps`` here).

    Tansu answers ListOffsets(latest) with the last *batch's* base offset + 1, which undercounts
    the lag and would make a committed offset look beyond the end of the log; the high watermark
    a fetch response carries is right, so one fetch per partition confirms it.
    """
    lows, listed = probe.beginning_offsets(tps), probe.end_offsets(tps)
    probe.assign(tps)
    for tp in tps:
        probe.seek(tp, max(int(listed[tp]) - 1, int(lows[tp])))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(probe.highwater(tp) is not None for tp in tps):
            break
        probe.poll(timeout_ms=100, max_records=1)
    ends = {}
    for tp in tps:
        fetched = probe.highwater(tp)
        high = None if fetched is None else max(int(fetched), int(listed[tp]))
        ends[tp] = (int(lows[tp]), high, int(listed[tp]))
    return ends


@dataclass
class ResetGuard:
    """Per-consumer memory of read positions; call :meth:`observe` per poll and
    :meth:`on_assigned` from the rebalance listener."""

    policy: Policy = "earliest"
    #: makes a fresh, unsubscribed consumer for :func:`log_ends` (closed after each use)
    probe: Callable[[], Any] | None = None
    read_up_to: dict[tuple[str, int], int] = field(default_factory=dict)
    resets: list[Reset] = field(default_factory=list)
    failure: LogReset | None = None

    def observe(self, polled: Mapping[Any, Iterable[Any]]) -> None:
        """Remember one past the highest offset seen per partition in a poll's result; raise
        the :class:`LogReset` a ``fail`` policy recorded at assignment."""
        if self.failure is not None:
            raise self.failure
        for tp, records in polled.items():
            key = (tp.topic, tp.partition)
            for record in records:
                if record.offset + 1 > self.read_up_to.get(key, 0):
                    self.read_up_to[key] = record.offset + 1

    def on_assigned(self, consumer: Any, assigned: Iterable[Any]) -> list[Reset]:
        """Check each assigned partition; seek reset ones to their earliest offset (or raise)."""
        tps = list(assigned)
        if not tps:
            return []
        # committed first: it only grows afterwards, so it is never compared with older ends
        committed = {tp: consumer.committed(tp) for tp in tps}
        probe = self.probe() if self.probe is not None else None
        try:
            ends = log_ends(probe, tps) if probe is not None else {}
        finally:
            if probe is not None:
                probe.close(autocommit=False)
        found = []
        for tp in tps:
            key = (tp.topic, tp.partition)
            low, high, _ = ends.get(tp, (consumer.beginning_offsets([tp])[tp], None, 0))
            reason = detect(committed[tp], self.read_up_to.get(key), low, high)
            if reason is None:
                continue
            read = self.read_up_to.get(key)
            reset = Reset(tp.topic, tp.partition, committed[tp], read, high, reason)
            found.append(reset)
            self._recover(consumer, tp, reset, low)
        self.resets.extend(found)
        return found

    def _recover(self, consumer: Any, tp: Any, reset: Reset, low: int) -> None:
        metric("driftwatch_ingest_offset_resets_total").labels(
            topic=reset.topic, partition=str(reset.partition), policy=self.policy
        ).inc()
        if self.policy == "fail":
            log.error(
                "log reset on %s[%d]: %s; policy 'fail'", tp.topic, tp.partition, reset.reason
            )
            self.failure = LogReset(f"log reset on {tp.topic}[{tp.partition}]: {reset.reason}")
            return
        log.warning(
            "log reset on %s[%d]: %s; re-reading from the earliest offset %d",
            tp.topic,
            tp.partition,
            reset.reason,
            low,
        )
        consumer.seek(tp, low)
        self.read_up_to.pop((tp.topic, tp.partition), None)
