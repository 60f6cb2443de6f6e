"""Broker restarts: a log reset under the consumer group is detected and re-read from the
earliest offset, never skipped silently (the bundled broker, memory storage, restarted)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from ingest.broker import LocalBroker, free_port
from ingest.offsets import detect
from ingest.worker import IngestWorker
from monitor.schemas import PredictionLog
from monitor.settings import DatabaseSettings, IngestSettings, KafkaSettings, Settings
from monitor.store.db import make_engine
from monitor.store.tables import Prediction
from tests.conftest import poll_until


@pytest.mark.parametrize(
    ("committed", "read", "low", "high", "reset"),
    [
        (None, None, 0, 0, False),  # a new group on an empty log
        (10, 10, 0, 10, False),  # caught up
        (10, 25, 0, 30, False),  # read ahead of the last commit (normal)
        (10, 10, 0, 3, True),  # committed beyond the end of the log
        (None, 10, 0, 50, True),  # the broker forgot the group's offsets (memory restart)
        (None, 10, 0, 4, True),  # ... and the log is shorter than what was read
        (5, None, 8, 20, True),  # retention deleted past the committed offset
        (None, None, 0, 50, False),  # never read, nothing committed: auto_offset_reset decides
    ],
)
def test_detect(committed: int | None, read: int | None, low: int, high: int, reset: bool) -> None:
    assert (detect(committed, read, low, high) is not None) is reset


def _produce(kafka: KafkaSettings, logs: list[PredictionLog]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5)
    for item in logs:
        producer.send(kafka.predictions_topic, value=item.model_dump_json().encode())
    producer.flush()
    producer.close()


def _stored(url: str) -> set[str]:
    engine = make_engine(DatabaseSettings(url=url))
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(Prediction.request_id)).scalars())
    finally:
        engine.dispose()


def _resets(kafka: KafkaSettings) -> float:
    value = REGISTRY.get_sample_value(
        "driftwatch_ingest_offset_resets_total",
        {"topic": kafka.predictions_topic, "partition": "0", "policy": "earliest"},
    )
    return value or 0.0


def test_worker_rereads_a_restarted_broker_from_the_earliest_offset(
    sqlite_url: str,
    tmp_path: Path,
    settings_for: Callable[..., Settings],
    make_log: Callable[..., PredictionLog],
    wait_until: Callable[..., Any],
) -> None:
    with LocalBroker(log_path=tmp_path / "tansu.log") as broker:
        kafka = broker.fresh_topics()
        settings = settings_for(sqlite_url, kafka, ingest=IngestSettings(batch_max_seconds=0.2))
        worker = IngestWorker(settings)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            before = [make_log() for _ in range(20)]
            _produce(kafka, before)
            wait_until(lambda: len(_stored(sqlite_url)) == 20, what="first 20 logs stored")
            # the broker restarts empty: its log and the group's offsets are gone
            broker.stop()
            broker.start()
            broker.create_topics([kafka.predictions_topic, kafka.labels_topic])
            after = [make_log() for _ in range(50)]  # more than the old position (20)
            _produce(kafka, after)
            want = {item.request_id for item in before + after}
            wait_until(lambda: _stored(sqlite_url) == want, timeout=90, what="all 70 stored")
            assert _resets(kafka) >= 1
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    # which sign shows first depends on how much was produced before the worker rejoined
    signs = ("vanished", "beyond", "now ends at")
    resets = [r for r in worker.reset_guard.resets if r.topic == kafka.predictions_topic]
    assert resets and all(any(sign in r.reason for sign in signs) for r in resets)


@pytest.fixture
def s3_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A local S3 server (moto in server mode) with a ``tansu`` bucket; the broker's S3 env."""
    import boto3

    port = free_port()
    log = (tmp_path / "moto.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:

        def listening() -> bool:
            assert proc.poll() is None, "moto_server exited"
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                return True
            except OSError:
                return False

        poll_until(listening, 60, "moto_server to listen", every=0.1)
        creds = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds).create_bucket(
            Bucket="tansu"
        )
        yield {
            "AWS_ENDPOINT": endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def test_durable_broker_restart_loses_and_duplicates_nothing(
    s3_env: dict[str, str],
    sqlite_url: str,
    tmp_path: Path,
    settings_for: Callable[..., Settings],
    make_log: Callable[..., PredictionLog],
    wait_until: Callable[..., Any],
) -> None:
    broker = LocalBroker(storage="s3://tansu/", env=s3_env, log_path=tmp_path / "tansu.log")
    with broker:
        kafka = broker.fresh_topics()
        settings = settings_for(sqlite_url, kafka, ingest=IngestSettings(batch_max_seconds=0.2))
        worker = IngestWorker(settings)
        stop = threading.Event()
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        try:
            before = [make_log() for _ in range(100)]
            _produce(kafka, before)
            wait_until(lambda: len(_stored(sqlite_url)) == 100, timeout=90, what="100 stored")
            broker.stop()
            broker.start()  # the log and the group's offsets are in S3
            after = [make_log() for _ in range(150)]
            _produce(kafka, after)
            want = {item.request_id for item in before + after}
            wait_until(lambda: _stored(sqlite_url) == want, timeout=90, what="all 250 stored")
        finally:
            stop.set()
            thread.join(30)
    assert not thread.is_alive()
    # nothing re-delivered (no duplicate write) and no reset mistaken on the surviving log
    assert (worker.stats.consumed, worker.stats.duplicates) == (250, 0)
    assert worker.reset_guard.resets == []
