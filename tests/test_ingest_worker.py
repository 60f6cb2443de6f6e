"""The ingest worker against the real broker and real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import base64
import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, func, select, text

from ingest.sdk import PredictionLogger, encode_label, encode_prediction
from ingest.worker import IngestStats, IngestWorker
from monitor.imagestats import encode_png, image_stats
from monitor.schemas import Rejected
from monitor.settings import DatabaseSettings, IngestSettings, KafkaSettings, Settings
from monitor.store.db import make_engine, session_factory
from monitor.store.tables import Label, Prediction
from tests.conftest import poll_until

FAST = IngestSettings(batch_max_seconds=0.2, retry_initial_seconds=0.1, retry_max_seconds=0.4)


def produce(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, linger_ms=5)
    for i, value in enumerate(values):
        producer.send(topic, value=value, key=f"k{i}".encode())
    producer.flush()
    producer.close()


def read_topic(kafka: KafkaSettings, topic: str, n: int, timeout: float = 20) -> list[Any]:
    """The first ``n`` records of partition 0 of ``topic``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
    consumer.close()
    return got


def committed(kafka: KafkaSettings, partitions: int = 1) -> int:
    """Sum of the group's committed offsets on the predictions topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=kafka.group_id, enable_auto_commit=False
    )
    total = sum(
        consumer.committed(TopicPartition(kafka.predictions_topic, p)) or 0
        for p in range(partitions)
    )
    consumer.close()
    return total


@contextmanager
def running(worker: IngestWorker) -> Iterator[tuple[threading.Event, list[IngestStats]]]:
    """Run ``worker`` in a thread; stop it (and wait) on exit."""
    stop = threading.Event()
    out: list[IngestStats] = []
    thread = threading.Thread(target=lambda: out.append(worker.run(stop)), daemon=True)
    thread.start()
    try:
        yield stop, out
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def wait_for(condition: Callable[[], bool], timeout: float = 40, what: str = "") -> None:
    poll_until(condition, timeout, what, every=0.1)


def count_rows(url: str) -> int:
    engine = make_engine(DatabaseSettings(url=url))
    try:
        with engine.connect() as conn:
            return int(
                conn.execute(select(func.count(func.distinct(Prediction.request_id)))).scalar_one()
            )
    finally:
        engine.dispose()


def test_logs_land_once_with_fields_intact(
    db_url: str, make_topics: Callable[..., KafkaSettings], settings_for: Callable[..., Settings]
) -> None:
    kafka = make_topics(partitions=2)
    rng = np.random.default_rng(1)
    n = 300
    probs = rng.dirichlet(np.ones(10), size=n).astype(np.float32)
    emb = rng.normal(size=(n, 128)).astype(np.float32)
    images = rng.integers(0, 256, size=(n, 8, 8), dtype=np.uint8)
    with (
        PredictionLogger(kafka, "digits", "v1", embedding_dtype="float32") as exact,
        PredictionLogger(kafka, "digits", "v2", embedding_dtype="float16") as half,
    ):
        # a label that arrives before its prediction, and one after (below)
        exact.log_label("early", 7)
        ids32 = exact.log_batch(
            probs[:200],
            embeddings=emb[:200],
            images=images[:200],
            latency_ms=np.arange(200.0),
            arm="canary",
        )
        ids16 = half.log_batch(probs[200:], embeddings=emb[200:], images=images[200:])
        exact.log(probs[0], embedding=emb[0], request_id="early")
        exact.log(probs[1], embedding=emb[1], request_id="late")
        exact.log_label("late", 3)
        assert exact.dropped == 0 and half.dropped == 0
    thumb = base64.b64encode(encode_png(images[0])).decode()
    produce(
        kafka,
        kafka.predictions_topic,
        [
            json.dumps(
                {
                    "model": "digits",
                    "model_version": "v1",
                    "request_id": "thumb",
                    "timestamp": datetime.now(UTC).isoformat(),
                    "predicted_class": 0,
                    "probabilities": [0.1] * 10,  # the model's pinned shape: 10 classes
                    "thumbnail": thumb,
                }
            ).encode()
        ],
    )
    # the same logs again: a producer retry must not store anything twice
    produce(
        kafka,
        kafka.predictions_topic,
        [
            encode_prediction(
                "digits", "v1", ids32[0], probs[0], embedding=emb[0], embedding_dtype="float32"
            )
        ],
    )

    worker = IngestWorker(settings_for(db_url, kafka, ingest=FAST))
    stats = worker.run(idle_timeout=1.5)
    assert stats.stored == n + 3 and stats.duplicates == 1 and stats.dead_lettered == 0
    assert stats.labels == 2

    sessions = session_factory(make_engine(DatabaseSettings(url=db_url)))
    with sessions() as session:
        rows = {r.request_id: r for r in session.scalars(select(Prediction))}
        assert len(rows) == n + 3
        for i, rid in enumerate(ids32):
            row = rows[rid]
            assert row.model_version == "v1" and row.arm == "canary" and row.latency_ms == i
            assert np.array_equal(np.frombuffer(row.embedding or b"", "<f4"), emb[i])
            assert np.array_equal(np.frombuffer(row.probs, "<f4"), probs[i])
            assert row.predicted_class == int(np.argmax(probs[i]))
            assert row.confidence == pytest.approx(float(probs[i].max()))
            assert row.pixel_stats == pytest.approx(image_stats(images[i]))
        for i, rid in enumerate(ids16, start=200):
            row = rows[rid]
            assert row.embedding_dtype == "float16" and row.arm is None
            got = np.frombuffer(row.embedding or b"", "<f2").astype(np.float32)
            np.testing.assert_allclose(got, emb[i], rtol=1e-3, atol=1e-4)
        assert rows["early"].label == 7 and rows["late"].label == 3
        assert rows["thumb"].pixel_stats == pytest.approx(image_stats(images[0]))
        assert rows["thumb"].thumbnail == base64.b64decode(thumb)
        assert {lab.request_id: lab.label for lab in session.scalars(select(Label))} == {
            "early": 7,
            "late": 3,
        }
    assert committed(kafka, partitions=2) == n + 4
    assert (
        REGISTRY.get_sample_value(
            "driftwatch_ingest_messages_total",
            {"topic": kafka.predictions_topic, "outcome": "duplicate"},
        )
        == 1
    )


def test_poison_messages_are_dead_lettered(
    sqlite_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
) -> None:
    kafka = make_topics()
    now = datetime.now(UTC)

    def good(rid: str) -> bytes:
        return encode_prediction("digits", "v1", rid, [0.2, 0.8], embedding=np.ones(4, np.float32))

    def edit(**changes: Any) -> bytes:
        msg = json.loads(good("poison"))
        msg.update(changes)
        return json.dumps(msg).encode()

    poison = {
        "bad_json": b'{"model": "digits", ',
        "schema": edit(predicted_class="seven"),
        "nan": edit(probabilities=[math.nan, 1.0]),
        "dim": edit(embedding=[0.0] * 5),
        "oversized": edit(
            request_id="x" * 20,
            model_version="v" * 100,
            pixel_stats={f"s{i}": 0.5 for i in range(60)},
        )
        + b" " * 4000,
        "unknown_version": edit(schema_version=99),
        "future": edit(timestamp=(now + timedelta(hours=2)).isoformat()),
        "bad_image": edit(thumbnail=base64.b64encode(b"not a png").decode()),
        "unknown_model": edit(model="other"),
        "bad_sum": edit(probabilities=[0.5, 0.6]),
    }
    values = [good("g0"), *poison.values(), good("g1")]
    produce(kafka, kafka.predictions_topic, values)
    produce(kafka, kafka.labels_topic, [b'{"request_id": "g0"}', encode_label("digits", "g1", 1)])
    ingest = FAST.model_copy(
        update={
            "embedding_dims": {"digits": 4},
            "max_message_bytes": 4096,
            "allowed_models": ["digits"],
        }
    )
    stats = IngestWorker(settings_for(sqlite_url, kafka, ingest=ingest)).run(idle_timeout=1.5)
    assert stats.stored == 2 and stats.labels == 1 and stats.dead_lettered == len(poison) + 1

    records = read_topic(kafka, kafka.dead_letter_topic, len(poison) + 1)
    rejected = [Rejected.model_validate_json(r.value) for r in records]
    by_offset = {(r.topic, r.offset): r for r in rejected}
    expected = {
        "bad_json": "bad_json",
        "schema": "schema",
        "nan": "schema",
        "dim": "schema",
        "oversized": "oversized",
        "unknown_version": "unknown_version",
        "future": "schema",
        "bad_image": "bad_image",
        "unknown_model": "unknown_model",
        "bad_sum": "schema",
    }
    for offset, name in enumerate(poison, start=1):
        rej = by_offset[(kafka.predictions_topic, offset)]
        assert rej.reason == expected[name], (name, rej)
        assert base64.b64decode(rej.raw) == poison[name]
        assert rej.partition == 0 and rej.key == f"k{offset}"
    assert "NaN" in by_offset[(kafka.predictions_topic, 3)].error
    assert "model 'digits' uses 4" in by_offset[(kafka.predictions_topic, 4)].error
    assert "sum to" in by_offset[(kafka.predictions_topic, 10)].error
    assert by_offset[(kafka.labels_topic, 0)].reason == "schema"
    headers = dict(records[0].headers)
    assert headers["reason"] == rejected[0].reason.encode()
    assert headers["source_topic"] == rejected[0].topic.encode()
    assert count_rows(sqlite_url) == 2
    assert (
        REGISTRY.get_sample_value(
            "driftwatch_ingest_dead_letter_total",
            {"topic": kafka.predictions_topic, "reason": "schema"},
        )
        == 5
    )


def test_database_outage_stops_commits_and_retries(
    pg_url: str,
    pg_server_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
) -> None:
    kafka = make_topics()
    name = pg_url.rsplit("/", 1)[1]
    admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    first = [encode_prediction("digits", "v1", f"a{i}", [0.3, 0.7]) for i in range(100)]
    second = [encode_prediction("digits", "v1", f"b{i}", [0.3, 0.7]) for i in range(100)]
    worker = IngestWorker(settings_for(pg_url, kafka, ingest=FAST))
    produce(kafka, kafka.predictions_topic, first)
    try:
        with running(worker):
            wait_for(lambda: worker.stats.stored == 100, what="the first half")
            with admin.connect() as conn:  # the database goes away
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
                    )
                )
            produce(kafka, kafka.predictions_topic, second)
            wait_for(lambda: worker.stats.store_retries >= 3, what="retries")
            assert committed(kafka) == 100  # nothing committed while the database is down
            with admin.connect() as conn:
                conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            wait_for(lambda: worker.stats.stored == 200, what="recovery")
        assert worker.stats.duplicates == 0 and worker.stats.abandoned_batches == 0
        assert committed(kafka) == 200
        assert count_rows(pg_url) == 200
        assert REGISTRY.get_sample_value("driftwatch_ingest_store_retries_total") >= 3
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_locked_sqlite_stops_commits_and_retries(
    sqlite_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
) -> None:
    kafka = make_topics()
    # a short busy timeout, so each attempt against the locked file fails fast
    engine = create_engine(sqlite_url, connect_args={"timeout": 0.1})
    worker = IngestWorker(settings_for(sqlite_url, kafka, ingest=FAST), engine=engine)
    path = sqlite_url.removeprefix("sqlite:///")
    values = [encode_prediction("digits", "v1", f"c{i}", [0.3, 0.7]) for i in range(100)]
    with running(worker):
        wait_for(lambda: worker.assignment != frozenset(), what="the assignment")
        locker = sqlite3.connect(path, isolation_level=None)
        locker.execute("BEGIN EXCLUSIVE")  # the database is locked by someone else
        try:
            produce(kafka, kafka.predictions_topic, values)
            wait_for(lambda: worker.stats.store_retries >= 3, what="retries")
            assert committed(kafka) == 0 and worker.stats.stored == 0
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        wait_for(lambda: worker.stats.stored == 100, what="recovery")
    assert worker.stats.duplicates == 0 and committed(kafka) == 100
    assert count_rows(sqlite_url) == 100
    engine.dispose()


def test_two_workers_share_partitions_and_take_over(
    sqlite_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
) -> None:
    kafka = make_topics(partitions=4)
    settings = settings_for(sqlite_url, kafka, ingest=FAST)
    batches = [
        [encode_prediction("digits", "v1", f"{tag}{i}", [0.5, 0.5]) for i in range(200)]
        for tag in "abc"
    ]
    a, b = IngestWorker(settings), IngestWorker(settings)
    produce(kafka, kafka.predictions_topic, batches[0])
    with running(a):
        wait_for(lambda: a.stats.stored == 200, what="worker a alone")
        with running(b) as (stop_b, _):
            wait_for(
                lambda: (
                    len(a.assignment) > 0
                    and len(b.assignment) > 0
                    and len(a.assignment | b.assignment) == 8
                ),
                what="the split",
            )
            assert not a.assignment & b.assignment
            produce(kafka, kafka.predictions_topic, batches[1])
            wait_for(lambda: a.stats.stored + b.stats.stored == 400, what="both workers")
            assert b.stats.stored > 0
            stop_b.set()
        wait_for(lambda: len(a.assignment) == 8, what="worker a taking over")
        produce(kafka, kafka.predictions_topic, batches[2])
        wait_for(lambda: a.stats.stored + b.stats.stored == 600, what="the last third")
    assert count_rows(sqlite_url) == 600
    assert a.stats.duplicates + b.stats.duplicates == 0
    assert committed(kafka, partitions=4) == 600
