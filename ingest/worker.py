"""The ingest worker: a Kafka consumer group member that moves prediction logs and labels from
the ``predictions`` and ``labels`` topics into the SQL store, exactly once in effect.

Run several in one consumer group (``driftwatch ingest``) to share the partitions.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from ingest.kafka_config import FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from ingest.kafka_config import client_config, consumer_config, producer_config
from ingest.liveness import Heartbeat
from ingest.offsets import ResetGuard
from ingest.validate import Validated, Validator
from monitor.errors import BrokerUnavailable, StoreUnavailable
from monitor.metrics import metric
from monitor.settings import Settings
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.ingest_repo import WriteCounts, write_batch

log = logging.getLogger(__name__)

kafka_client_config = client_config  # moved to ingest/kafka_config.py; ingest/sdk.py imports it


@dataclass
class IngestStats:
    """Running totals of one :meth:`IngestWorker.run`."""

    consumed: int = 0
    stored: int = 0
    duplicates: int = 0
    labels: int = 0
    dead_lettered: int = 0
    batches: int = 0
    store_retries: int = 0
    abandoned_batches: int = 0
    failed_commits: int = 0
    assigned_at: float | None = None  # time.monotonic() of the first partition assignment


@dataclass
class _InFlight:
    """A validated batch whose database write runs on the writer thread."""

    batch: list[Any]
    out: Validated
    future: Future[WriteCounts]
    generation: int
    started: float


class _AbandonedError(Exception):
    """The in-flight batch was given up (shutdown or partitions revoked)."""


class IngestWorker:
    """Consume, validate, store, dead-letter, commit: in that order, batch by batch.

    Each batch goes through these steps:

    1. Poll records from the subscribed topics until ``ingest.batch_max_messages`` records or
       ``ingest.batch_max_seconds`` have gathered.
    2. Validate each record: prediction logs through the msgspec fast lane
       (:mod:`ingest.fastpath`), anything it does not vouch for and every label through the
       pydantic schema (thumbnail-only logs get pixel statistics here); invalid records become
       ``Rejected`` ones.
    3. Write all logs and labels in ONE database transaction with idempotent keys
       ``(model, request_id)`` (``ON CONFLICT DO NOTHING``), on the writer thread while the next
       batch is polled and validated; a replayed batch stores nothing twice. If the database
       fails, retry with capped exponential backoff while the partitions are paused (the group
       membership stays alive); nothing is committed meanwhile.
    4. Send the rejected records to the dead-letter topic and flush the producer.
    5. Only then commit the batch's offsets (last offset + 1 per partition), batches strictly in
       the order they were polled.

    A crash anywhere before step 5 means the batch is read again and re-written harmlessly. On
    rebalance, records not yet committed are dropped (their new owner reads them again from the
    committed offset). On shutdown, the batch in flight is finished, or abandoned without a
    commit if the database is down.

    Parameters
    ----------
    settings
        The Driftwatch settings (``kafka``, ``database`` and ``ingest`` are read).
    engine
        An engine to write with; by default one is made from ``settings.database``.
    """

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.kafka = settings.kafka
        self.ingest = settings.ingest
        self._own_engine = engine is None
        self.engine = engine if engine is not None else make_engine(settings.database)
        self.sessions = session_factory(self.engine)
        self.validator = Validator(
            settings.ingest,
            predictions_topic=self.kafka.predictions_topic,
            labels_topic=self.kafka.labels_topic,
        )
        self.stats = IngestStats()
        self._stop = threading.Event()
        self._generation = 0  # bumped on every revocation
        self._buffer: list[Any] = []
        self._assigned = False
        #: (topic, partition) pairs this worker owns right now.
        self.assignment: frozenset[tuple[str, int]] = frozenset()
        self._consumer: Any = None
        self._producer: Any = None
        self._writer: ThreadPoolExecutor = ThreadPoolExecutor(max_workers=1)
        # HOOK (ingest/liveness.py, ingest/offsets.py): poll heartbeat, reset-log detection
        self.heartbeat = Heartbeat()
        self.reset_guard = ResetGuard(self.kafka.offset_reset_policy, self._offset_probe)

    # ------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Ask :meth:`run` to finish the current batch and return (safe from signal handlers)."""
        self._stop.set()

    def run(
        self,
        stop_event: threading.Event | None = None,
        *,
        max_messages: int | None = None,
        idle_timeout: float | None = None,
    ) -> IngestStats:
        """Consume until stopped, until ``max_messages`` records were handled, or until no
        record arrived for ``idle_timeout`` seconds (counted from the first partition
        assignment, since joining the group takes a few seconds); returns the totals."""
        stopping: Callable[[], bool] = (
            (lambda: self._stop.is_set() or stop_event.is_set())
            if stop_event
            else self._stop.is_set
        )
        self._open()
        last_record = time.monotonic()
        inflight: _InFlight | None = None
        try:
            batch_started = time.monotonic()
            while not stopping():
                pending = len(self._buffer) + (len(inflight.batch) if inflight else 0)
                room = self.ingest.batch_max_messages - len(self._buffer)
                if max_messages is not None:
                    room = min(room, max_messages - self.stats.consumed - pending)
                wait = self.ingest.batch_max_seconds - (time.monotonic() - batch_started)
                if inflight is not None:
                    wait = min(wait, 0.05)  # come back soon to commit the batch being written
                if room > 0:
                    polled = self._consumer.poll(
                        timeout_ms=max(int(wait * 1000), 0) or 1, max_records=room
                    )
                else:  # max_messages are in hand: only the batch in flight is left to finish
                    polled = {}
                    if inflight is not None:
                        wait_futures([inflight.future], timeout=0.05)
                self.heartbeat.beat()  # HOOK: liveness heartbeat + reset-log positions
                self.reset_guard.observe(polled)
                for records in polled.values():
                    self._buffer.extend(records)
                now = time.monotonic()
                if polled:
                    last_record = now
                full = len(self._buffer) >= self.ingest.batch_max_messages
                due = now - batch_started >= self.ingest.batch_max_seconds
                pending = len(self._buffer) + (len(inflight.batch) if inflight else 0)
                enough = max_messages is not None and self.stats.consumed + pending >= max_messages
                if self._buffer and (full or due or enough or stopping()):
                    batch, self._buffer = self._buffer, []
                    nxt = self._start(batch)
                    if inflight is not None:
                        self._finish(inflight, stopping)
                    inflight = nxt
                elif inflight is not None and inflight.future.done():
                    self._finish(inflight, stopping)
                    inflight = None
                if not self._buffer:
                    batch_started = time.monotonic()
                if max_messages is not None and self.stats.consumed >= max_messages:
                    break
                if not self._assigned:
                    last_record = now  # idleness counts from the first partition assignment
                elif (
                    idle_timeout is not None and now - last_record >= idle_timeout and not inflight
                ):
                    break
            if inflight is not None:
                self._finish(inflight, stopping)
        finally:
            self._close()
        return self.stats

    def _open(self) -> None:
        from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer
        from kafka.errors import KafkaError

        worker = self

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
            def on_partitions_revoked(self, revoked: Any) -> None:
                worker._generation += 1
                worker.assignment = frozenset()
                if worker._buffer:
                    log.info(
                        "partitions revoked: dropping %d uncommitted records", len(worker._buffer)
                    )
                worker._buffer = []

            def on_partitions_assigned(self, assigned: Any) -> None:
                worker._assigned = True
                worker.assignment = frozenset((tp.topic, tp.partition) for tp in assigned)
                if worker.stats.assigned_at is None:
                    worker.stats.assigned_at = time.monotonic()
                worker.reset_guard.on_assigned(worker._consumer, assigned)  # HOOK: reset log
                log.info("assigned %s", sorted((tp.topic, tp.partition) for tp in assigned))

        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwatch-writer")
        try:
            self._consumer = KafkaConsumer(**consumer_config(self.kafka))
            self._consumer.subscribe(
                [self.kafka.predictions_topic, self.kafka.labels_topic], listener=Listener()
            )
            self._producer = KafkaProducer(**producer_config(self.kafka))
        except KafkaError as exc:
            self._close()
            raise BrokerUnavailable(
                f"cannot reach Kafka at {self.kafka.bootstrap_servers}: {exc}"
            ) from exc

    def _offset_probe(self) -> Any:  # HOOK: a consumer outside the group for ingest/offsets.py
        from kafka import KafkaConsumer

        return KafkaConsumer(**consumer_config(self.kafka, group=False))

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None
        self._writer.shutdown(wait=True)
        if self._own_engine:
            self.engine.dispose()

    # ------------------------------------------------------------------ one batch

    def _start(self, batch: list[Any]) -> _InFlight:
        """Steps 2 and 3a: validate ``batch`` and start writing it on the writer thread."""
        started = time.perf_counter()
        out = self.validator.validate(
            (r.topic, r.partition, r.offset, r.key, r.value) for r in batch
        )
        future = self._writer.submit(self._write, out)
        return _InFlight(batch, out, future, self._generation, started)

    def _finish(self, item: _InFlight, stopping: Callable[[], bool]) -> None:
        """Steps 3b to 5: wait for the write (retrying it), dead-letter, commit, count."""
        try:
            try:
                counts: WriteCounts = item.future.result()
            except StoreUnavailable as exc:
                log.warning("store write failed, retrying: %s", exc)
                self.stats.store_retries += 1
                metric("driftwatch_ingest_store_retries_total").inc()
                counts = self._retrying(
                    lambda: self._writer.submit(self._write, item.out).result(),
                    "store",
                    item.generation,
                    stopping,
                )
            if self._generation != item.generation:
                raise _AbandonedError("partitions were revoked")
            if item.out.rejected:
                self._retrying(
                    lambda: self._dead_letter(item.out), "dead-letter", item.generation, stopping
                )
        except _AbandonedError as exc:
            self.stats.abandoned_batches += 1
            log.warning(
                "abandoned a batch of %d records without committing: %s", len(item.batch), exc
            )
            return
        self._commit(item.batch)
        self._account(item.batch, item.out, counts, time.perf_counter() - item.started)

    def _write(self, out: Validated) -> WriteCounts:
        try:
            with unit_of_work(self.sessions) as session:
                return write_batch(
                    session,
                    out.logs,
                    out.labels,
                    rows=out.rows,
                    keep_thumbnails=self.ingest.store_thumbnails,
                )
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"database write failed: {exc}") from exc

    def _dead_letter(self, out: Validated) -> None:
        from kafka.errors import KafkaError

        try:
            futures = []
            for rej in out.rejected:
                headers = [
                    ("reason", rej.reason.encode()),
                    ("source_topic", rej.topic.encode()),
                    ("source_partition", str(rej.partition).encode()),
                    ("source_offset", str(rej.offset).encode()),
                ]
                futures.append(
                    self._producer.send(
                        self.kafka.dead_letter_topic,
                        value=rej.model_dump_json().encode(),
                        key=None if rej.key is None else rej.key.encode(),
                        headers=headers,
                    )
                )
            self._producer.flush(timeout=30)
            for future in futures:
                future.get(timeout=0)
        except KafkaError as exc:
            raise BrokerUnavailable(f"dead-letter send failed: {exc}") from exc

    def _retrying(
        self, action: Callable[[], Any], what: str, generation: int, stopping: Callable[[], bool]
    ) -> Any:
        """Run ``action`` until it succeeds, backing off while the partitions are paused."""
        delay = self.ingest.retry_initial_seconds
        paused = False
        try:
            while True:
                try:
                    return action()
                except (StoreUnavailable, BrokerUnavailable) as exc:
                    self.stats.store_retries += 1
                    metric("driftwatch_ingest_store_retries_total").inc()
                    log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
                if not paused:
                    self._consumer.pause(*self._consumer.assignment())
                    paused = True
                deadline = time.monotonic() + delay
                while time.monotonic() < deadline:
                    if stopping():
                        raise _AbandonedError("shutting down")
                    # Keeps the group membership alive; the paused partitions return nothing, but
                    # partitions newly assigned by a rebalance may: keep those for the next batch.
                    polled = self._consumer.poll(timeout_ms=100)
                    self.heartbeat.beat()  # HOOK: liveness heartbeat + reset-log positions
                    self.reset_guard.observe(polled)
                    for records in polled.values():
                        self._buffer.extend(records)
                    if self._generation != generation:
                        raise _AbandonedError("partitions were revoked")
                delay = min(delay * 2, self.ingest.retry_max_seconds)
        finally:
            if paused and self._consumer is not None:
                self._consumer.resume(*self._consumer.paused())

    def _commit(self, batch: list[Any]) -> None:
        from kafka import TopicPartition
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        last: dict[Any, int] = {}
        for r in batch:
            tp = TopicPartition(r.topic, r.partition)
            if r.offset >= last.get(tp, -1):
                last[tp] = r.offset
        offsets = {tp: OffsetAndMetadata(off + 1, "", -1) for tp, off in last.items()}
        try:
            self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on; the new owner re-reads these records and stores nothing twice.
            self.stats.failed_commits += 1
            log.warning("offset commit failed (records will be re-read idempotently): %s", exc)
            return
        lag = metric("driftwatch_ingest_consumer_lag")
        for tp, off in offsets.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(high - off.offset, 0)
                )

    def _account(
        self, batch: list[Any], out: Validated, counts: WriteCounts, seconds: float
    ) -> None:
        s = self.stats
        s.consumed += len(batch)
        s.batches += 1
        s.stored += counts.stored
        s.duplicates += counts.duplicates
        s.labels += counts.labels
        s.dead_lettered += len(out.rejected)
        messages = metric("driftwatch_ingest_messages_total")
        pt, lt = self.kafka.predictions_topic, self.kafka.labels_topic
        messages.labels(topic=pt, outcome="stored").inc(counts.stored)
        messages.labels(topic=pt, outcome="duplicate").inc(counts.duplicates)
        messages.labels(topic=lt, outcome="stored").inc(counts.labels)
        dead = metric("driftwatch_ingest_dead_letter_total")
        for rej in out.rejected:
            messages.labels(topic=rej.topic, outcome="dead_letter").inc()
            dead.labels(topic=rej.topic, reason=rej.reason).inc()
        preds = metric("driftwatch_predictions_total")
        for (model, version, arm), n in counts.by_series.items():
            preds.labels(model=model, version=version, arm=arm).inc(n)
        metric("driftwatch_ingest_batch_seconds").observe(seconds)
