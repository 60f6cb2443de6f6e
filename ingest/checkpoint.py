"""The checkpoint of one batch: write -> dead-letter -> commit, as numbered steps.

1. **Write** the batch's rows in one transaction (on the writer thread, while the next batch is
   polled). An outage is retried with capped exponential backoff while the partitions are
   paused; a data error is isolated to its records by bisection (:mod:`ingest.isolation`),
   which become dead letters. After ``ingest.max_attempts`` failed attempts, if the store
   answers a probe, the batch is written record by record and whatever still fails is the
   data's: a batch is never retried for ever.
2. **Dead-letter** the records validation refused and those the store refused, and wait for the
   broker's acknowledgements (retried like step 1).
3. **Commit** the batch's offsets (last + 1 per partition).
4. **Count**: stats and Prometheus counters.

A crash before step 3 means the batch is read again and re-written harmlessly (idempotent keys).
The Kafka side (pausing, polling while paused, committing) is the worker's, behind :class:`Gate`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from ingest.batching import backoff, next_offsets
from ingest.deadletter import send_dead_letters
from ingest.isolation import bisect_write, describe, is_outage
from ingest.validate import Row, Validated, rejection
from monitor.errors import BrokerUnavailable, InvalidMessage, StoreUnavailable
from monitor.metrics import metric
from monitor.schemas import Rejected
from monitor.settings import Settings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import WriteCounts, probe_writable, write_batch

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class IngestStats:
    """Running totals of one :meth:`~ingest.worker.IngestWorker.run`."""

    consumed: int = 0
    stored: int = 0
    duplicates: int = 0
    labels: int = 0
    dead_lettered: int = 0
    batches: int = 0
    store_retries: int = 0
    isolated_batches: int = 0
    abandoned_batches: int = 0
    failed_commits: int = 0
    assigned_at: float | None = None  # time.monotonic() of the first partition assignment


@dataclass(frozen=True)
class Written:
    """What step 1 did: the counts, and the records the store refused (as dead letters)."""

    counts: WriteCounts
    refused: list[Rejected]


@dataclass
class InFlight:
    """A validated batch whose write runs on the writer thread."""

    records: list[Any]  # the consumed records, in poll order
    out: Validated
    future: Future[Written]
    generation: int
    started: float


class Abandoned(Exception):
    """The batch in flight was given up (shutdown or partitions revoked); nothing committed."""


class Gate(Protocol):
    """The worker's Kafka side, as the checkpoint needs it."""

    producer: Any

    def wait(self, seconds: float, generation: int) -> None:
        """Pause the partitions and keep the membership alive for ``seconds``; raises
        :class:`Abandoned` on shutdown or when ``generation`` is no longer current."""

    def resume(self) -> None:
        """Resume whatever :meth:`wait` paused."""

    def current(self, generation: int) -> bool:
        """Whether no revocation happened since ``generation``."""

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        """Commit ``offsets``; False when the group moved on (the records are re-read)."""


class Checkpoint:
    """Runs steps 1-4 for each batch the worker hands it."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        sessions: sessionmaker[Session],
        writer: ThreadPoolExecutor,
        stats: IngestStats,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.sessions = sessions
        self.writer = writer
        self.stats = stats

    # ------------------------------------------------------------------ step 1 (writer thread)

    def submit(self, rows: Sequence[Row], *, isolate: bool = False) -> Future[Written]:
        """Start step 1 for ``rows`` on the writer thread."""
        return self.writer.submit(self.write, rows, isolate=isolate)

    def write(self, rows: Sequence[Row], *, isolate: bool = False) -> Written:
        """Write ``rows``, cutting out the records whose data the store refuses.

        With ``isolate``, even an outage-like error of a record is blamed on the record as long
        as the store still answers a probe. Raises :class:`StoreUnavailable` on an outage.
        """

        def data_error(exc: BaseException) -> bool:
            return not is_outage(exc) or (isolate and self.store_answers())

        try:
            done, failed = bisect_write(self._write_rows, rows, fails=data_error)
        except Exception as exc:
            raise StoreUnavailable(f"database write failed: {describe(exc)}") from exc
        refused = [r for w in done for r in w.refused]
        refused += [
            rejection(InvalidMessage("store_refused", describe(exc)), row.record)
            for row, exc in failed
        ]
        return Written(sum((w.counts for w in done), WriteCounts()), refused)

    def _write_rows(self, rows: Sequence[Row]) -> Written:
        """One transaction; the rows the store screened out (shape, conflicts) as rejections."""
        preds = [r for r in rows if r.prediction is not None]
        with unit_of_work(self.sessions) as session:
            counts = write_batch(
                session,
                (),
                [r.label for r in rows if r.label is not None],
                rows=[r.prediction for r in preds if r.prediction is not None],
            )
        refused = [
            rejection(InvalidMessage(reason, detail), preds[i].record)
            for i, reason, detail in counts.refused
        ]
        return Written(counts, refused)

    def store_answers(self) -> bool:
        """Whether the store accepts a write right now (a probe that changes nothing)."""
        try:
            with self.sessions() as session:
                probe_writable(session)
                session.rollback()
            return True
        except Exception:
            return False

    # ------------------------------------------------------------------ steps 1-4

    def finish(self, item: InFlight, gate: Gate) -> bool:
        """Steps 1 (wait for the write) to 4 for ``item``; False when it was abandoned."""
        try:
            written = self._written(item, gate)  # 1
            rejected = item.out.rejected + written.refused
            if rejected:  # 2
                topic = self.settings.kafka.dead_letter_topic
                self._retrying(
                    lambda: send_dead_letters(gate.producer, topic, rejected),
                    "dead-letter",
                    item.generation,
                    gate,
                )
            if not gate.current(item.generation):
                raise Abandoned("partitions were revoked")
        except Abandoned as exc:
            self.stats.abandoned_batches += 1
            log.warning(
                "abandoned a batch of %d records without committing: %s", len(item.records), exc
            )
            return False
        offsets = next_offsets((r.topic, r.partition, r.offset) for r in item.records)
        if not gate.commit(offsets):  # 3
            self.stats.failed_commits += 1
        self._account(item, written, rejected, time.perf_counter() - item.started)  # 4
        return True

    def _written(self, item: InFlight, gate: Gate) -> Written:
        """Step 1: the write's outcome, retried after outages, isolated after many."""
        future: Future[Written] | None = item.future
        attempts = 0

        def attempt() -> Written:
            nonlocal future, attempts
            if future is None:
                isolate = attempts >= self.settings.ingest.max_attempts and self.store_answers()
                if isolate:
                    self.stats.isolated_batches += 1
                    log.warning("batch failed %d times: writing it record by record", attempts)
                future = self.submit(item.out.rows, isolate=isolate)
            try:
                return future.result()
            finally:
                future, attempts = None, attempts + 1

        return self._retrying(attempt, "store write", item.generation, gate)

    def _retrying(self, action: Callable[[], T], what: str, generation: int, gate: Gate) -> T:
        """Run ``action`` until it succeeds, backing off while the partitions are paused."""
        delays = backoff(
            self.settings.ingest.retry_initial_seconds, self.settings.ingest.retry_max_seconds
        )
        try:
            while True:
                try:
                    return action()
                except (StoreUnavailable, BrokerUnavailable) as exc:
                    delay = next(delays)
                    self.stats.store_retries += 1
                    metric("driftwatch_ingest_store_retries_total").inc()
                    log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
                gate.wait(delay, generation)
        finally:
            gate.resume()

    def _account(
        self, item: InFlight, written: Written, rejected: list[Rejected], seconds: float
    ) -> None:
        s, counts = self.stats, written.counts
        s.consumed += len(item.records)
        s.batches += 1
        s.stored += counts.stored
        s.duplicates += counts.duplicates
        s.labels += counts.labels
        s.dead_lettered += len(rejected)
        messages = metric("driftwatch_ingest_messages_total")
        pt, lt = self.settings.kafka.predictions_topic, self.settings.kafka.labels_topic
        messages.labels(topic=pt, outcome="stored").inc(counts.stored)
        messages.labels(topic=pt, outcome="duplicate").inc(counts.duplicates)
        messages.labels(topic=lt, outcome="stored").inc(counts.labels)
        dead = metric("driftwatch_ingest_dead_letter_total")
        for rej in rejected:
            messages.labels(topic=rej.topic, outcome="dead_letter").inc()
            dead.labels(topic=rej.topic, reason=rej.reason).inc()
        preds = metric("driftwatch_predictions_total")
        for (model, version, arm), n in counts.by_series.items():
            preds.labels(model=model, version=version, arm=arm).inc(n)
        metric("driftwatch_ingest_batch_seconds").observe(seconds)
