"""The producer SDK: logs reach Kafka in the wire schema; Kafka down or bad input never raises
into the caller and is counted."""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import pytest

from ingest.broker import free_port
from ingest.sdk import PredictionLogger
from ingest.worker import IngestWorker
from monitor.imagestats import STAT_NAMES, batch_stats, decode_image
from monitor.schemas import LabelEvent, Limits, PredictionLog, parse_message
from monitor.settings import IngestSettings, KafkaSettings, Settings
from tests.test_ingest_worker import read_topic


def test_logs_reach_kafka_in_the_wire_schema(make_topics: Callable[..., KafkaSettings]) -> None:
    kafka = make_topics()
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(10), size=50)
    emb = rng.normal(size=(50, 32)).astype(np.float32)
    images = rng.integers(0, 256, size=(50, 12, 12, 3), dtype=np.uint8)
    with PredictionLogger(kafka, "digits", "v3") as logger:
        ids = logger.log_batch(probs, embeddings=emb, images=images, arm="stable")
        one = logger.log(probs[0], embedding=emb[0], image=images[0], latency_ms=4.5, label=2)
        assert logger.log_label(ids[0], 9)
    assert logger.sent == 52 and logger.dropped == 0 and logger.failed == 0
    records = read_topic(kafka, kafka.predictions_topic, 51)
    logs = [parse_message(r.value, PredictionLog, Limits(), 100_000) for r in records]
    assert [log.request_id for log in logs] == [*ids, one]
    assert [r.key.decode() for r in records] == [*ids, one]
    expected = batch_stats(images)
    for i, log in enumerate(logs[:50]):
        assert log.model_version == "v3" and log.arm == "stable"
        assert log.embedding is not None and not isinstance(log.embedding, list)
        assert log.embedding.dtype == "float16"
        assert log.pixel_stats == pytest.approx(dict(zip(STAT_NAMES, expected[i], strict=True)))
    assert (logs[50].latency_ms, logs[50].label) == (4.5, 2)
    label = parse_message(
        read_topic(kafka, kafka.labels_topic, 1)[0].value, LabelEvent, Limits(), 4096
    )
    assert (label.request_id, label.label) == (ids[0], 9)


def test_kafka_down_drops_and_counts_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    kafka = KafkaSettings(bootstrap_servers=[f"127.0.0.1:{free_port()}"])  # nothing listens
    logger = PredictionLogger(
        kafka,
        "digits",
        "v1",
        max_queue=10,
        producer_config={"max_block_ms": 200, "request_timeout_ms": 1000},
    )
    with caplog.at_level(logging.WARNING, logger="driftwatch_sdk.logger"):
        accepted = [logger.log([0.5, 0.5]) for _ in range(500)]
        queued = sum(rid is not None for rid in accepted)
        assert logger.dropped == 500 - queued
        logger.close(timeout=10)
    assert logger.sent == 0 and logger.dropped + logger.failed == 500  # every log accounted for
    assert "driftwatch logger dropped a log" in caplog.text or "could not deliver" in caplog.text


def test_bad_input_is_counted_not_raised() -> None:
    kafka = KafkaSettings(bootstrap_servers=[f"127.0.0.1:{free_port()}"])
    logger = PredictionLogger(kafka, "digits", "v1")
    assert logger.log("not probabilities") is None  # type: ignore[arg-type]
    assert logger.log_batch(np.ones((3, 2)), images=np.ones((2, 5))) == []
    assert logger.dropped == 1 + 3
    logger.close(timeout=5)


def test_thumbnails_reach_the_store_through_broker_and_ingest_worker(
    db_url: str,
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
) -> None:
    """Small images arrive exact; a large one is halved to fit the ingest limit; one that
    cannot fit is left out and counted; pixel statistics always come from the full image."""
    from sqlalchemy import select

    from monitor.store.db import make_engine, session_factory
    from monitor.store.tables import Prediction

    kafka = make_topics()
    limit = 1024
    settings = settings_for(
        db_url, kafka, ingest=IngestSettings(batch_max_seconds=0.2, max_thumbnail_bytes=limit)
    )
    rng = np.random.default_rng(5)
    digits = rng.integers(0, 256, size=(20, 8, 8), dtype=np.uint8)
    large = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)  # ~12 KB as PNG
    thin = rng.integers(0, 256, size=(12, 400, 3), dtype=np.uint8)  # cannot be halved to fit
    probs = rng.dirichlet(np.ones(10), size=22)
    with PredictionLogger(
        kafka, "digits", "v1", send_thumbnails=True, max_thumbnail_bytes=limit
    ) as logger:
        ids = logger.log_batch(probs[:20], images=digits, labels=list(range(20)))
        big_id = logger.log(probs[20], image=large)
        thin_id = logger.log(probs[21], image=thin)
        plain = PredictionLogger(kafka, "digits", "v1")  # opt-in: no thumbnails by default
        plain_id = plain.log(probs[0], image=digits[0])
        plain.close()
    assert (logger.thumbnails_downscaled, logger.thumbnails_skipped) == (1, 1)
    assert logger.dropped == 0 and plain.thumbnails_skipped == 0
    stats = IngestWorker(settings).run(max_messages=23, idle_timeout=10)
    assert stats.consumed == 23 and stats.dead_lettered == 0, stats
    engine = make_engine(settings.database)
    with session_factory(engine)() as session:
        rows = {r.request_id: r for r in session.scalars(select(Prediction))}
    engine.dispose()
    local = batch_stats(digits)
    for i, rid in enumerate(ids):
        thumb = rows[rid].thumbnail
        assert thumb is not None and rows[rid].label == i
        image = decode_image(thumb)
        assert np.array_equal(image, digits[i])  # lossless
        assert rows[rid].pixel_stats == pytest.approx(dict(zip(STAT_NAMES, local[i], strict=True)))
        assert batch_stats(image[None])[0] == pytest.approx(local[i])
    big = rows[str(big_id)]
    assert big.thumbnail is not None and len(big.thumbnail) <= limit
    assert decode_image(big.thumbnail).shape == (16, 16, 3)
    assert big.pixel_stats == pytest.approx(
        dict(zip(STAT_NAMES, batch_stats(large[None])[0], strict=True))
    )
    assert rows[str(thin_id)].thumbnail is None and rows[str(thin_id)].pixel_stats is not None
    assert rows[str(plain_id)].thumbnail is None
