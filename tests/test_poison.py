"""The poison suite: every kind of bad message we could think of, through the real broker and
the real databases (SQLite and PostgreSQL).

Each kind is a row of :data:`KINDS`: what is sent, to which topic, and the reason its dead
letter must carry. ``crasher`` marks the kinds that stopped ingest for good before per-record
isolation (each is also run alone at the head of its own partition, in front of good logs).
"""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from ingest.checkpoint import IngestStats
from ingest.sdk import encode_label
from ingest.validate import Validator
from ingest.worker import IngestWorker
from monitor.imagestats import encode_png
from monitor.schemas import Rejected
from monitor.settings import DatabaseSettings, IngestSettings, KafkaSettings, Settings
from monitor.store.db import make_engine
from monitor.store.tables import Label, Prediction

NOW = datetime.now(UTC)
INGEST = IngestSettings(
    batch_max_seconds=0.2,
    retry_initial_seconds=0.1,
    retry_max_seconds=0.4,
    max_message_bytes=262_144,
    max_attempts=3,
)


def _png(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width`` x ``height`` over a few bytes of image data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


GOOD_THUMB = _b64(encode_png(np.full((8, 8), 100, np.uint8)))
STATS = {"brightness": 0.5, "contrast": 0.1}


def pred(rid: str, **changes: Any) -> bytes:
    """A valid prediction log (10 classes) with ``changes`` applied (None deletes a field)."""
    msg: dict[str, Any] = {
        "model": "digits",
        "model_version": "v1",
        "request_id": rid,
        "timestamp": NOW.isoformat(),
        "predicted_class": 1,
        "probabilities": [0.05, 0.55] + [0.05] * 8,
        "embedding": {"dtype": "float32", "dim": 4, "data": _b64(np.ones(4, "<f4").tobytes())},
    }
    for key, value in changes.items():
        if value is None:
            msg.pop(key, None)
        else:
            msg[key] = value
    return json.dumps(msg).encode()


def label(rid: str, **changes: Any) -> bytes:
    msg = json.loads(encode_label("digits", rid, 3))
    msg.update(changes)
    return json.dumps(msg).encode()


def raw_replace(value: bytes, old: bytes, new: bytes) -> bytes:
    assert old in value
    return value.replace(old, new, 1)


@dataclass(frozen=True)
class Kind:
    name: str
    value: bytes | None
    reason: str
    topic: str = "predictions"
    crasher: bool = False
    stage: str = "validate"  # or "store": valid alone, refused against what is stored


def _kinds() -> list[Kind]:
    rid = "poison"
    emb = {"dtype": "float32", "dim": 4, "data": _b64(np.ones(4, "<f4").tobytes())}
    return [
        # -- not a message at all
        Kind("truncated_json", b'{"model": "digits", ', "bad_json"),
        Kind("empty_value", b"", "bad_json"),
        Kind("tombstone", None, "bad_json"),
        Kind("not_utf8", b"\xff\xfe\x00{", "bad_json"),
        Kind("json_array", b"[1, 2, 3]", "schema"),
        Kind("json_null", b"null", "schema"),
        Kind("deep_nesting", b"[" * 100_000 + b"]" * 100_000, "bad_json"),
        Kind("lone_surrogate_id", raw_replace(pred("X"), b'"X"', b'"\\ud800x"'), "bad_json"),
        Kind("unknown_version", pred(rid, schema_version=99), "unknown_version"),
        Kind("unknown_field", pred(rid, extra_field=1), "schema"),
        Kind("missing_model", pred(rid, model=None), "schema"),
        # -- identifiers
        Kind("path_traversal_model", pred(rid, model="a/../../etc"), "schema"),
        Kind("empty_version", pred(rid, model_version=""), "schema"),
        Kind("nul_request_id", pred("bad\x00id"), "schema", crasher=True),
        Kind("newline_request_id", pred("bad\nid"), "schema"),
        Kind("empty_request_id", pred(""), "schema"),
        Kind("long_request_id", pred("r" * 129), "schema"),
        # -- timestamps
        Kind(
            "year_1_with_offset",
            pred(rid, timestamp="0001-01-01T00:00:00+05:00"),
            "schema",
            crasher=True,
        ),
        Kind("year_9999_with_offset", pred(rid, timestamp="9999-12-31T23:59:59-05:00"), "schema"),
        Kind("before_1970", pred(rid, timestamp="1969-07-20T20:17:00Z"), "schema"),
        Kind("older_than_window", pred(rid, timestamp="2001-01-01T00:00:00Z"), "schema"),
        Kind("future", pred(rid, timestamp=(NOW + timedelta(days=1)).isoformat()), "schema"),
        Kind("timestamp_not_a_date", pred(rid, timestamp="yesterday"), "schema"),
        # -- classes and probabilities
        Kind("negative_class", pred(rid, predicted_class=-1), "schema"),
        Kind("class_out_of_range", pred(rid, predicted_class=10), "schema"),
        Kind("class_2_pow_70", pred(rid, predicted_class=2**70), "schema"),
        Kind("probability_nan", raw_replace(pred(rid), b"0.55", b"NaN"), "schema"),
        Kind("probability_1e400", raw_replace(pred(rid), b"0.55", b"1e400"), "schema"),
        Kind("probabilities_sum_2", pred(rid, probabilities=[1.0, 1.0]), "schema"),
        Kind("one_class", pred(rid, probabilities=[1.0], predicted_class=0), "schema"),
        Kind("negative_probability", pred(rid, probabilities=[-0.5, 1.5]), "schema"),
        Kind("too_many_classes", pred(rid, probabilities=[1e-4] * 10_001), "schema"),
        Kind("no_probabilities", pred(rid, probabilities=None), "schema"),
        Kind(
            "top_k_negative_class",
            pred(rid, probabilities=None, top_k={"-1": 0.5}, n_classes=10),
            "schema",
        ),
        Kind("top_k_without_n_classes", pred(rid, probabilities=None, top_k={"1": 0.5}), "schema"),
        # -- embeddings
        Kind("embedding_not_base64", pred(rid, embedding={**emb, "data": "!!!"}), "schema"),
        Kind("embedding_wrong_length", pred(rid, embedding={**emb, "dim": 5}), "schema"),
        Kind(
            "embedding_nan",
            pred(rid, embedding={**emb, "data": _b64(np.full(4, np.nan, "<f4").tobytes())}),
            "schema",
        ),
        Kind("embedding_beyond_float32", pred(rid, embedding=[1e39, 0.0, 0.0, 0.0]), "schema"),
        Kind("embedding_too_wide", pred(rid, embedding=[0.0] * 5000), "schema"),
        # -- pixel statistics and thumbnails
        Kind(
            "pixel_stats_nan",
            raw_replace(pred(rid, pixel_stats={"brightness": 7.0}), b"7.0", b"NaN"),
            "schema",
        ),
        Kind("pixel_stats_nul_key", pred(rid, pixel_stats={"bright\x00": 0.5}), "schema"),
        Kind(
            "pixel_stats_100_keys",
            pred(rid, pixel_stats={f"s{i}": 0.5 for i in range(100)}),
            "schema",
        ),
        Kind(
            "thumbnail_not_base64_with_stats",
            pred(rid, pixel_stats=STATS, thumbnail="%%%not base64%%%"),
            "bad_image",
            crasher=True,
        ),
        Kind(
            "thumbnail_not_an_image_with_stats",
            pred(rid, pixel_stats=STATS, thumbnail=_b64(b"GIF? no")),
            "bad_image",
        ),
        Kind(
            "png_header_100000_square",
            pred(rid, thumbnail=_b64(_png(100_000, 100_000))),
            "bad_image",
            crasher=True,
        ),
        Kind(
            "png_header_5000_square_with_stats",
            pred(rid, pixel_stats=STATS, thumbnail=_b64(_png(5000, 5000))),
            "bad_image",
        ),
        Kind(
            "png_truncated",
            pred(rid, thumbnail=_b64(base64.b64decode(GOOD_THUMB)[:40])),
            "bad_image",
        ),
        Kind("thumbnail_over_size", pred(rid, thumbnail="A" * 100_000), "schema"),
        # -- size and other fields
        Kind("oversized_1_5_mb", pred(rid, pad="x" * 1_500_000), "oversized", crasher=True),
        Kind("latency_negative", pred(rid, latency_ms=-1.0), "schema"),
        Kind("arm_unknown", pred(rid, arm="blue"), "schema"),
        Kind("label_field_out_of_range", pred(rid, label=10_000), "schema"),
        # -- valid alone, refused against the store (the model's pinned shape, an earlier log)
        Kind(
            "other_class_count",
            pred(rid, probabilities=[0.5, 0.5], predicted_class=0),
            "shape_mismatch",
            stage="store",
        ),
        Kind(
            "other_embedding_dim", pred(rid, embedding=[0.5] * 8), "shape_mismatch", stage="store"
        ),
        Kind(
            "conflicting_duplicate",
            pred("good-0", predicted_class=0, probabilities=[0.55, 0.05] + [0.05] * 8),
            "conflicting_duplicate",
            stage="store",
        ),
        # -- labels topic
        Kind("label_truncated_json", b'{"model": ', "bad_json", topic="labels"),
        Kind("label_negative", label(rid, label=-1), "schema", topic="labels"),
        Kind("label_nul_request_id", label("bad\x00id"), "schema", topic="labels", crasher=True),
        Kind(
            "label_year_1",
            label(rid, timestamp="0001-01-01T00:00:00+05:00"),
            "schema",
            topic="labels",
        ),
        Kind(
            "label_missing_request_id",
            json.dumps({"model": "digits", "label": 1, "timestamp": NOW.isoformat()}).encode(),
            "schema",
            topic="labels",
        ),
    ]


KINDS = _kinds()
CRASHERS = [k for k in KINDS if k.crasher]
AT_VALIDATION = [k for k in KINDS if k.stage == "validate"]


def test_the_suite_is_large_and_names_are_unique() -> None:
    assert len(KINDS) >= 40 and len({k.name for k in KINDS}) == len(KINDS)
    assert len(CRASHERS) >= 6


@pytest.mark.parametrize("kind", AT_VALIDATION, ids=[k.name for k in AT_VALIDATION])
def test_each_kind_is_rejected_by_validation_with_its_reason(kind: Kind) -> None:
    validator = Validator(INGEST, predictions_topic="predictions", labels_topic="labels")
    good = pred("good-1")
    out = validator.validate(
        [(kind.topic, 0, 0, b"k", kind.value), ("predictions", 0, 1, None, good)]
    )
    assert [r.offset for r in out.rejected] == [0]
    assert out.rejected[0].reason == kind.reason, out.rejected[0].error
    assert [r.record[2] for r in out.rows] == [1]


# ---------------------------------------------------------------- through the broker


def _produce(kafka: KafkaSettings, sends: list[tuple[str, int, bytes | None, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, linger_ms=5, max_request_size=4_194_304
    )
    for topic, partition, value, key in sends:
        producer.send(topic, value=value, key=key, partition=partition)
    producer.flush()
    producer.close()


def _dead_letters(kafka: KafkaSettings, n: int, timeout: float = 30) -> list[Any]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        kafka.dead_letter_topic,
        bootstrap_servers=kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=8_388_608,
        max_partition_fetch_bytes=8_388_608,
    )
    got: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=500).values():
            got.extend(records)
    consumer.close()
    return got


def _committed(kafka: KafkaSettings, topic: str, partitions: int) -> list[int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers, group_id=kafka.group_id, enable_auto_commit=False
    )
    out = [consumer.committed(TopicPartition(topic, p)) or 0 for p in range(partitions)]
    consumer.close()
    return out


def _stored(url: str) -> tuple[Counter[str], Counter[str]]:
    engine = make_engine(DatabaseSettings(url=url))
    try:
        with engine.connect() as conn:
            preds = Counter(r for (r,) in conn.execute(select(Prediction.request_id)))
            labels = Counter(r for (r,) in conn.execute(select(Label.request_id)))
            oldest = conn.execute(select(Prediction.ts).order_by(Prediction.ts).limit(1))
            assert oldest.scalar_one() >= datetime(1970, 1, 1, tzinfo=UTC)
            return preds, labels
    finally:
        engine.dispose()


def _run(settings: Settings, timeout: float = 120) -> IngestStats:
    """Run one worker until idle; fail if it neither finishes nor returns (stall, loop)."""
    out: list[IngestStats] = []
    worker = IngestWorker(settings)
    thread = threading.Thread(target=lambda: out.append(worker.run(idle_timeout=2.0)), daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        worker.stop()
        thread.join(30)
        raise AssertionError(f"the worker did not finish within {timeout}s: {worker.stats}")
    assert out, "the worker died"
    return out[0]


def _topic(kafka: KafkaSettings, kind: Kind) -> str:
    return kafka.labels_topic if kind.topic == "labels" else kafka.predictions_topic


def _check_dead_letters(kafka: KafkaSettings, expected: dict[tuple[str, int, int], Kind]) -> None:
    records = _dead_letters(kafka, len(expected))
    got = {}
    for record in records:
        rej = Rejected.model_validate_json(record.value)
        got[(rej.topic, rej.partition, rej.offset)] = (rej, dict(record.headers))
    assert set(got) == set(expected)
    for where, kind in expected.items():
        rej, headers = got[where]
        assert rej.reason == kind.reason and headers["reason"] == kind.reason.encode(), kind.name
        assert headers["source_offset"] == str(where[2]).encode()
        raw = base64.b64decode(rej.raw)
        assert rej.raw_size == len(kind.value or b"")
        assert rej.truncated == (kind.name == "oversized_1_5_mb"), kind.name
        if rej.truncated:  # only a prefix travels; the source offset points at the rest
            assert kind.name == "oversized_1_5_mb" and (kind.value or b"").startswith(raw)
        else:
            assert raw == (kind.value or b""), kind.name


def test_a_mixed_stream_lands_every_good_log_once(
    db_url: str, make_topics: Callable[..., KafkaSettings], settings_for: Callable[..., Settings]
) -> None:
    kafka = make_topics(partitions=1)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(KINDS))
    sends: list[tuple[str, int, bytes | None, bytes]] = []
    expected: dict[tuple[str, int, int], Kind] = {}
    offsets = Counter[str]()
    good = 0
    for i in order:
        for _ in range(3):
            sends.append((kafka.predictions_topic, 0, pred(f"good-{good}"), b"g"))
            offsets[kafka.predictions_topic] += 1
            good += 1
        kind = KINDS[i]
        topic = _topic(kafka, kind)
        expected[(topic, 0, offsets[topic])] = kind
        offsets[topic] += 1
        sends.append((topic, 0, kind.value, kind.name.encode()))
    sends.append((kafka.labels_topic, 0, label("good-0"), b"l"))
    offsets[kafka.labels_topic] += 1
    sends.append((kafka.predictions_topic, 0, pred("good-1"), b"again"))  # an exact repeat
    offsets[kafka.predictions_topic] += 1
    _produce(kafka, sends)

    stats = _run(settings_for(db_url, kafka, ingest=INGEST))

    preds, labels = _stored(db_url)
    assert preds == Counter({f"good-{j}": 1 for j in range(good)})
    assert labels == Counter({"good-0": 1})
    assert stats.stored == good and stats.dead_lettered == len(KINDS)
    assert stats.duplicates == 1  # the exact repeat: an idempotent no-op, no dead letter
    conflicts = {"topic": kafka.predictions_topic, "reason": "conflicting_duplicate"}
    assert REGISTRY.get_sample_value("driftwatch_ingest_dead_letter_total", conflicts) == 1
    assert stats.store_retries == 0 and stats.abandoned_batches == 0
    _check_dead_letters(kafka, expected)
    assert _committed(kafka, kafka.predictions_topic, 1) == [offsets[kafka.predictions_topic]]
    assert _committed(kafka, kafka.labels_topic, 1) == [offsets[kafka.labels_topic]]


def test_each_crasher_alone_in_front_of_good_logs(
    db_url: str, make_topics: Callable[..., KafkaSettings], settings_for: Callable[..., Settings]
) -> None:
    """One partition per crasher: the crasher first, twenty good logs behind it."""
    kafka = make_topics(partitions=len(CRASHERS))
    sends: list[tuple[str, int, bytes | None, bytes]] = []
    expected: dict[tuple[str, int, int], Kind] = {}
    behind = 20
    for p, kind in enumerate(CRASHERS):
        expected[(_topic(kafka, kind), p, 0)] = kind
        sends.append((_topic(kafka, kind), p, kind.value, kind.name.encode()))
        sends += [(kafka.predictions_topic, p, pred(f"good-{p}-{j}"), b"g") for j in range(behind)]
    _produce(kafka, sends)

    stats = _run(settings_for(db_url, kafka, ingest=INGEST))

    preds, _labels = _stored(db_url)
    assert preds == Counter(
        {f"good-{p}-{j}": 1 for p in range(len(CRASHERS)) for j in range(behind)}
    )
    assert stats.dead_lettered == len(CRASHERS) and stats.store_retries == 0
    _check_dead_letters(kafka, expected)
    pred_heads = [1 if k.topic == "predictions" else 0 for k in CRASHERS]
    assert _committed(kafka, kafka.predictions_topic, len(CRASHERS)) == [
        behind + head for head in pred_heads
    ]
    assert _committed(kafka, kafka.labels_topic, len(CRASHERS)) == [1 - head for head in pred_heads]
