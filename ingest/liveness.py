"""Liveness of an ingest worker you can page on: a poll heartbeat, true consumer lag read
from the broker on a timer (not from the worker's own loop, so it keeps moving while the
worker is paused, stalled or dead), and a supervisor that says when the worker died or stalled.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ingest.kafka_config import consumer_config
from ingest.offsets import log_ends
from monitor.metrics import metric
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)


class Heartbeat:
    """When the worker last polled the broker (``driftwatch_ingest_last_poll_timestamp_seconds``,
    and the modification time of ``path`` when given, at most once a second: what the chart's
    liveness probe reads)."""

    def __init__(self, path: Path | None = None) -> None:
        self.last: float | None = None  # time.monotonic() of the last poll
        self.path = path
        self._touched = 0.0

    def beat(self) -> None:
        self.last = time.monotonic()
        metric("driftwatch_ingest_last_poll_timestamp_seconds").set(time.time())
        if self.path is not None and self.last - self._touched >= 1.0:
            self.path.touch()
            self._touched = self.last


def heartbeat_age(path: Path) -> float:
    """Seconds since the heartbeat file was touched (infinite when it does not exist)."""
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return float("inf")


def partition_lag(consumer: Any, topics: list[str]) -> dict[tuple[str, int], int]:
    """High watermark minus the group's committed offset (or the earliest offset when none is
    committed yet) for every partition of ``topics``, read through ``consumer`` (one with the
    group's id that never subscribes: it is assigned the partitions to read their ends)."""
    from kafka import TopicPartition

    tps = [
        TopicPartition(topic, p)
        for topic in topics
        for p in sorted(consumer.partitions_for_topic(topic) or ())
    ]
    if not tps:
        return {}
    lag = {}
    committed = {tp: consumer.committed(tp) for tp in tps}
    for tp, (low, fetched, listed) in log_ends(consumer, tps).items():
        high = listed if fetched is None else fetched
        start = low if committed[tp] is None else committed[tp]
        lag[(tp.topic, tp.partition)] = max(high - start, 0)
    return lag


class LagMonitor:
    """A thread that refreshes ``driftwatch_ingest_consumer_lag`` every ``lag_refresh_seconds``
    from its own consumer (it never joins the group: it only reads offsets)."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.topics = [kafka.predictions_topic, kafka.labels_topic]
        self.lag: dict[tuple[str, int], int] = {}
        self._stop = threading.Event()
        self._consumer: Any = None
        self._thread = threading.Thread(target=self._loop, name="ingest-lag", daemon=True)

    def start(self) -> LagMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._close()

    def refresh(self) -> dict[tuple[str, int], int]:
        """Read the lag once and export it; returns it per (topic, partition)."""
        from kafka import KafkaConsumer

        if self._consumer is None:
            self._consumer = KafkaConsumer(**consumer_config(self.kafka))
        self.lag = partition_lag(self._consumer, self.topics)
        gauge = metric("driftwatch_ingest_consumer_lag")
        for (topic, partition), value in self.lag.items():
            gauge.labels(topic=topic, partition=str(partition)).set(value)
        return self.lag

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # a broker outage must not kill the monitor
                log.warning("consumer lag refresh failed: %s", exc)
                self._close()
            self._stop.wait(self.kafka.lag_refresh_seconds)
        self._close()

    def _close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close(autocommit=False)
            self._consumer = None


class Supervisor:
    """Runs ``target`` (an ingest worker's ``run``) in a thread and knows when it is unhealthy:
    it raised, it returned while nobody asked it to stop, or ``heartbeat`` went stale."""

    def __init__(
        self,
        target: Callable[[], Any],
        heartbeat: Heartbeat,
        *,
        stale_seconds: float,
        on_death: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.target, self.heartbeat, self.stale_seconds = target, heartbeat, stale_seconds
        self.on_death = on_death
        self.failure: str | None = None
        self.stopping = False
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)

    def start(self) -> Supervisor:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self.target()
            if not self.stopping:
                self.failure = "the ingest worker returned without being asked to stop"
        except BaseException as exc:
            self.failure = f"the ingest worker died: {type(exc).__name__}: {exc}"
            log.error("%s\n%s", self.failure, traceback.format_exc())
        if self.failure is not None and not self.stopping:
            self.on_death(self.failure)

    def problem(self) -> str | None:
        """Why ingest is not ready, or None."""
        if self.failure is not None:
            return self.failure
        last = self.heartbeat.last if self.heartbeat.last is not None else self.started
        age = time.monotonic() - last
        if age > self.stale_seconds:
            return f"the ingest worker has not polled for {age:.0f}s"
        return None
