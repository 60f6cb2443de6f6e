"""The ingest worker: a Kafka consumer group member that moves prediction logs and labels from
the ``predictions`` and ``labels`` topics into the SQL store, exactly once in effect.

Run several in one consumer group (``driftwatch ingest``) to share the partitions. The loop
(:meth:`IngestWorker.run`) polls and cuts batches by :mod:`ingest.batching`; validation is
:mod:`ingest.validate`; write -> dead-letter -> commit is :mod:`ingest.checkpoint`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

from sqlalchemy import Engine

from ingest.batching import BatchPolicy
from ingest.checkpoint import Abandoned, Checkpoint, InFlight, IngestStats
from ingest.deadletter import MAX_REQUEST_BYTES
from ingest.kafka_config import FETCH_MAX_WAIT_MS as FETCH_MAX_WAIT_MS
from ingest.kafka_config import consumer_config, producer_config
from ingest.liveness import Heartbeat
from ingest.offsets import ResetGuard
from ingest.validate import Validator
from monitor.errors import BrokerUnavailable
from monitor.metrics import metric
from monitor.settings import Settings
from monitor.store.db import make_engine, session_factory

__all__ = ["IngestStats", "IngestWorker"]

log = logging.getLogger(__name__)


class IngestWorker:
    """Consume, validate, then write -> dead-letter -> commit, batch by batch.

    1. Poll records until ``ingest.batch_max_messages`` or ``ingest.batch_max_seconds``
       (:class:`~ingest.batching.BatchPolicy`).
    2. Validate each record (:class:`~ingest.validate.Validator`: the msgspec fast lane, the
       pydantic schema for the rest); a record that fails in any way becomes a rejection.
    3. Start writing the batch on the writer thread while the next one is polled.
    4. Finish it with :class:`~ingest.checkpoint.Checkpoint`: wait for the write (outages are
       retried with the partitions paused, bad records cut out and dead-lettered), dead-letter,
       commit, count. Batches are committed strictly in poll order.

    On rebalance, records not yet committed are dropped (their new owner reads them again from
    the committed offset). On shutdown, the batch in flight is finished, or abandoned without a
    commit if the database is down.
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
        self._stopping: Callable[[], bool] = self._stop.is_set
        self._generation = 0  # bumped on every revocation
        self._buffer: list[Any] = []
        self._assigned = False
        self._paused = False
        #: (topic, partition) pairs this worker owns right now.
        self.assignment: frozenset[tuple[str, int]] = frozenset()
        self._consumer: Any = None
        self.producer: Any = None
        self._writer = ThreadPoolExecutor(max_workers=1)
        self.checkpoint = Checkpoint(settings, self.engine, self.sessions, self._writer, self.stats)
        self.heartbeat = Heartbeat(self.ingest.heartbeat_file)  # the last poll (liveness)
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
        if stop_event is not None:
            self._stopping = lambda: self._stop.is_set() or stop_event.is_set()
        policy = BatchPolicy(
            self.ingest.batch_max_messages, self.ingest.batch_max_seconds, max_messages
        )
        self._open()
        try:
            self._loop(policy, idle_timeout)
        finally:
            self._close()
        return self.stats

    def _loop(self, policy: BatchPolicy, idle_timeout: float | None) -> None:
        """Poll, cut batches, finish them in order; the per-poll place of the worker."""
        last_record = batch_started = time.monotonic()
        inflight: InFlight | None = None
        while not self._stopping():
            writing = len(inflight.records) if inflight else 0
            room = policy.room(len(self._buffer), writing, self.stats.consumed)
            elapsed = time.monotonic() - batch_started
            if room > 0:
                timeout = policy.poll_seconds(elapsed, inflight is not None)
                polled = self._consumer.poll(
                    timeout_ms=max(int(timeout * 1000), 1), max_records=room
                )
            else:  # the records asked for are in hand: only the batch in flight is left
                polled = {}
                if inflight is not None:
                    wait_futures([inflight.future], timeout=0.05)
            self._polled(polled)
            now = time.monotonic()
            if polled or not self._assigned:
                last_record = now  # idleness counts from the first partition assignment
            writing = len(inflight.records) if inflight else 0
            elapsed = now - batch_started
            if policy.cut(
                len(self._buffer), elapsed, writing, self.stats.consumed, self._stopping()
            ):
                batch, self._buffer = self._buffer, []
                nxt = self._start(batch)
                if inflight is not None:
                    self.checkpoint.finish(inflight, self)
                inflight = nxt
            elif inflight is not None and inflight.future.done():
                self.checkpoint.finish(inflight, self)
                inflight = None
            if not self._buffer:
                batch_started = time.monotonic()
            if policy.finished(self.stats.consumed):
                break
            if idle_timeout is not None and not inflight and now - last_record >= idle_timeout:
                break
        if inflight is not None:
            self.checkpoint.finish(inflight, self)

    def _open(self) -> None:
        from kafka import KafkaConsumer, KafkaProducer
        from kafka.errors import KafkaError

        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="driftwatch-writer")
        self.checkpoint.writer = self._writer
        try:
            self._consumer = KafkaConsumer(**consumer_config(self.kafka))
            self._consumer.subscribe(
                [self.kafka.predictions_topic, self.kafka.labels_topic], listener=_listener(self)
            )
            # a dict merge: a pass-through producer option cannot clash as a duplicate keyword
            self.producer = KafkaProducer(
                **{**producer_config(self.kafka), "max_request_size": MAX_REQUEST_BYTES}
            )
        except KafkaError as exc:
            self._close()
            raise BrokerUnavailable(
                f"cannot reach Kafka at {self.kafka.bootstrap_servers}: {exc}"
            ) from exc

    def _offset_probe(self) -> Any:
        """A consumer outside the group, for reset-log checks (ingest/offsets.py)."""
        from kafka import KafkaConsumer

        return KafkaConsumer(**consumer_config(self.kafka, group=False))

    def _polled(self, polled: dict[Any, list[Any]]) -> None:
        """Every poll: the heartbeat, the reset guard's positions, the buffer."""
        self.heartbeat.beat()
        self.reset_guard.observe(polled)
        for records in polled.values():
            self._buffer.extend(records)

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None
        if self.producer is not None:
            self.producer.close(timeout=10)
            self.producer = None
        self._writer.shutdown(wait=True)
        if self._own_engine:
            self.engine.dispose()

    # ------------------------------------------------------------------ rebalance

    def on_revoked(self) -> None:
        """Partitions were taken away: drop what is not committed (its new owner re-reads it)."""
        self._generation += 1
        self.assignment = frozenset()
        if self._buffer:
            log.info("partitions revoked: dropping %d uncommitted records", len(self._buffer))
        self._buffer = []

    def on_assigned(self, assigned: frozenset[tuple[str, int]]) -> None:
        """Partitions were given to this worker (the on-assignment place of the worker)."""
        self._assigned = True
        self.assignment = assigned
        if self.stats.assigned_at is None:
            self.stats.assigned_at = time.monotonic()
        log.info("assigned %s", sorted(assigned))

    # ------------------------------------------------------------------ the checkpoint's gate

    def _start(self, batch: list[Any]) -> InFlight:
        """Validate ``batch`` and start writing it on the writer thread."""
        started = time.perf_counter()
        out = self.validator.validate(
            (r.topic, r.partition, r.offset, r.key, r.value) for r in batch
        )
        return InFlight(batch, out, self.checkpoint.submit(out.rows), self._generation, started)

    def current(self, generation: int) -> bool:
        return generation == self._generation

    def wait(self, seconds: float, generation: int) -> None:
        """Back off for ``seconds`` with the partitions paused, keeping the membership alive."""
        if not self._paused:
            self._consumer.pause(*self._consumer.assignment())
            self._paused = True
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self._stopping():
                raise Abandoned("shutting down")
            # The paused partitions return nothing, but partitions newly assigned by a
            # rebalance may: keep those for the next batch.
            self._polled(self._consumer.poll(timeout_ms=100))
            if generation != self._generation:
                raise Abandoned("partitions were revoked")

    def resume(self) -> None:
        if self._paused and self._consumer is not None:
            self._consumer.resume(*self._consumer.paused())
        self._paused = False

    def commit(self, offsets: dict[tuple[str, int], int]) -> bool:
        from kafka import TopicPartition
        from kafka.errors import CommitFailedError, KafkaError
        from kafka.structs import OffsetAndMetadata

        tps = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in offsets.items()}
        try:
            self._consumer.commit(tps)
        except (CommitFailedError, KafkaError) as exc:
            # The group moved on; the new owner re-reads these records and stores nothing twice.
            log.warning("offset commit failed (records will be re-read idempotently): %s", exc)
            return False
        lag = metric("driftwatch_ingest_consumer_lag")
        for tp, off in tps.items():
            high = self._consumer.highwater(tp)
            if high is not None:
                lag.labels(topic=tp.topic, partition=str(tp.partition)).set(
                    max(high - off.offset, 0)
                )
        return True


def _listener(worker: IngestWorker) -> Any:
    from kafka import ConsumerRebalanceListener

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
        def on_partitions_revoked(self, revoked: Any) -> None:
            worker.on_revoked()

        def on_partitions_assigned(self, assigned: Any) -> None:
            worker.on_assigned(frozenset((tp.topic, tp.partition) for tp in assigned))
            worker.reset_guard.on_assigned(worker._consumer, assigned)

    return Listener()
