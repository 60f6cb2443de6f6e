"""The producer SDK that model servers call: log predictions and labels without ever blocking or
raising into the serving path.

``log`` / ``log_batch`` encode messages on the caller's thread (pixel statistics come from the
image arrays, so raw images never travel) and put the bytes on a bounded in-memory queue; one
background thread hands them to a kafka-python producer that batches and compresses. When Kafka
is slow or down the queue fills and new logs are dropped and counted, with a warning.

With ``send_thumbnails=True`` each image also travels as a PNG thumbnail (what retraining and
the status page look at), halved in size until it fits ``max_thumbnail_bytes`` (the ingest
worker's limit) or left out when even 8 pixels a side does not fit; both are counted.

>>> import numpy as np
>>> raw = encode_prediction("digits", "v1", "req-1", np.array([0.25, 0.75]),
...                         embedding=np.zeros(4, np.float32), timestamp=0.0)
>>> from monitor.schemas import PredictionLog
>>> PredictionLog.model_validate_json(raw).predicted_class
1
"""

from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np

from ingest.worker import kafka_client_config
from monitor.imagestats import STAT_NAMES, batch_stats, encode_png
from monitor.schemas import SCHEMA_VERSION, Arm, EmbeddingDtype, encode_array
from monitor.settings import KafkaSettings

log = logging.getLogger(__name__)

_STOP = object()


def _iso(timestamp: datetime | float | str | None) -> str:
    if isinstance(timestamp, str):
        return timestamp
    if timestamp is None:
        return datetime.now(UTC).isoformat()
    if isinstance(timestamp, datetime):
        return (timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)).isoformat()
    return datetime.fromtimestamp(float(timestamp), UTC).isoformat()


def thumbnail_png(image: np.ndarray, max_bytes: int) -> tuple[bytes | None, int]:
    """PNG bytes of ``image`` (uint8, (H, W) or (H, W, 3)) no larger than ``max_bytes``, and
    how many times it was halved to fit; ``(None, halvings)`` when it cannot fit.

    >>> img = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    >>> png, halved = thumbnail_png(img, 1_000)
    >>> len(png) <= 1_000, halved
    (True, 2)
    >>> thumbnail_png(img, 10)[0] is None
    True
    """
    from PIL import Image

    arr = np.asarray(image, dtype=np.uint8)
    halved = 0
    while True:
        png = encode_png(arr)
        if len(png) <= max_bytes:
            return png, halved
        h, w = arr.shape[:2]
        if min(h, w) // 2 < 8:
            return None, halved
        img = Image.fromarray(arr).resize((w // 2, h // 2), Image.Resampling.BOX)
        arr, halved = np.asarray(img), halved + 1


def encode_prediction(
    model: str,
    model_version: str,
    request_id: str | None,
    probs: np.ndarray | Sequence[float],
    *,
    embedding: np.ndarray | None = None,
    embedding_dtype: EmbeddingDtype = "float16",
    pixel_stats: Mapping[str, float] | None = None,
    predicted_class: int | None = None,
    latency_ms: float | None = None,
    arm: Arm | None = None,
    label: int | None = None,
    timestamp: datetime | float | str | None = None,
    thumbnail: bytes | None = None,
) -> bytes:
    """The JSON bytes of one :class:`~monitor.schemas.PredictionLog` (compact embedding;
    ``thumbnail`` is PNG or JPEG bytes, sent as base64)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    msg: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "model_version": model_version,
        "request_id": request_id or uuid.uuid4().hex,
        "timestamp": _iso(timestamp),
        "predicted_class": int(np.argmax(p)) if predicted_class is None else int(predicted_class),
        "probabilities": p.tolist(),
    }
    if embedding is not None:
        msg["embedding"] = encode_array(embedding, embedding_dtype).model_dump()
    if pixel_stats is not None:
        msg["pixel_stats"] = {k: float(v) for k, v in pixel_stats.items()}
    if latency_ms is not None:
        msg["latency_ms"] = float(latency_ms)
    if arm is not None:
        msg["arm"] = arm
    if label is not None:
        msg["label"] = int(label)
    if thumbnail is not None:
        msg["thumbnail"] = base64.b64encode(thumbnail).decode()
    return json.dumps(msg, separators=(",", ":")).encode()


def encode_label(
    model: str, request_id: str, label: int, timestamp: datetime | float | None = None
) -> bytes:
    """The JSON bytes of one :class:`~monitor.schemas.LabelEvent`."""
    msg = {
        "schema_version": SCHEMA_VERSION,
        "model": model,
        "request_id": request_id,
        "label": int(label),
        "timestamp": _iso(timestamp),
    }
    return json.dumps(msg, separators=(",", ":")).encode()


class PredictionLogger:
    """Non-blocking logger of predictions (and labels) to Kafka for one model version.

    Parameters
    ----------
    kafka
        Broker addresses and topic names.
    model, model_version
        What every log of this logger is about.
    embedding_dtype
        ``"float16"`` (half the bytes) or ``"float32"`` (exact).
    max_queue
        Messages buffered in memory before new ones are dropped (and counted in ``dropped``).
    compression
        Producer compression (``"gzip"`` is built in; ``"lz4"``/``"zstd"`` need their package).
    producer_config
        Extra kafka-python producer settings.
    send_thumbnails
        Also send each image given to ``log``/``log_batch`` as a PNG thumbnail.
    max_thumbnail_bytes
        The ingest worker's ``IngestSettings.max_thumbnail_bytes``: larger thumbnails are
        halved until they fit (counted in ``thumbnails_downscaled``) or left out (counted in
        ``thumbnails_skipped``; the log itself is still sent).

    Every public method catches its own errors: a model server is never slowed or broken by
    monitoring. ``sent``, ``dropped`` and ``failed`` count what happened.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        model: str,
        model_version: str,
        *,
        embedding_dtype: EmbeddingDtype = "float16",
        max_queue: int = 100_000,
        compression: str | None = "gzip",
        producer_config: Mapping[str, Any] | None = None,
        send_thumbnails: bool = False,
        max_thumbnail_bytes: int = 65_536,
    ) -> None:
        self.kafka = kafka
        self.send_thumbnails, self.max_thumbnail_bytes = send_thumbnails, max_thumbnail_bytes
        self.thumbnails_downscaled = 0
        self.thumbnails_skipped = 0
        self.model = model
        self.model_version = model_version
        self.embedding_dtype: EmbeddingDtype = embedding_dtype
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._last_warning = 0.0
        self._lock = threading.Lock()
        self._config: dict[str, Any] = {
            "compression_type": compression,
            "linger_ms": 20,
            "batch_size": 256 * 1024,
            "acks": 1,
            "max_block_ms": 5_000,
            "retries": 3,
            **(producer_config or {}),
        }
        self._thread = threading.Thread(target=self._pump, name="driftwatch-logger", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ serving-path API

    def log(
        self,
        probs: np.ndarray | Sequence[float],
        *,
        embedding: np.ndarray | None = None,
        image: np.ndarray | None = None,
        pixel_stats: Mapping[str, float] | None = None,
        request_id: str | None = None,
        predicted_class: int | None = None,
        latency_ms: float | None = None,
        arm: Arm | None = None,
        label: int | None = None,
        timestamp: datetime | float | None = None,
    ) -> str | None:
        """Log one prediction; returns its request id, or None when it was dropped."""
        try:
            if pixel_stats is None and image is not None:
                row = batch_stats(np.asarray(image)[None])[0]
                pixel_stats = dict(zip(STAT_NAMES, row.tolist(), strict=True))
            request_id = request_id or uuid.uuid4().hex
            thumb = self._thumbnail(image)
            raw = encode_prediction(
                self.model,
                self.model_version,
                request_id,
                probs,
                embedding=embedding,
                embedding_dtype=self.embedding_dtype,
                pixel_stats=pixel_stats,
                predicted_class=predicted_class,
                latency_ms=latency_ms,
                arm=arm,
                label=label,
                timestamp=timestamp,
                thumbnail=thumb,
            )
        except Exception as exc:
            self._drop(f"could not encode a prediction log: {exc!r}")
            return None
        return request_id if self._offer(self.kafka.predictions_topic, request_id, raw) else None

    def log_batch(
        self,
        probs: np.ndarray,
        *,
        embeddings: np.ndarray | None = None,
        images: np.ndarray | None = None,
        pixel_stats: np.ndarray | None = None,
        request_ids: Sequence[str] | None = None,
        latency_ms: np.ndarray | Sequence[float] | None = None,
        arm: Arm | None = None,
        labels: Sequence[int] | None = None,
        timestamp: datetime | float | None = None,
    ) -> list[str]:
        """Log N predictions from arrays (``probs`` is (N, C); ``images`` (N, H, W[, 3]) or
        ``pixel_stats`` (N, len(STAT_NAMES))); returns the request ids that were queued."""
        try:
            p = np.asarray(probs, dtype=np.float64)
            n = len(p)
            stats = (
                batch_stats(images) if pixel_stats is None and images is not None else pixel_stats
            )
            ids = (
                list(request_ids)
                if request_ids is not None
                else [uuid.uuid4().hex for _ in range(n)]
            )
            ts = _iso(timestamp)
            raws = [
                encode_prediction(
                    self.model,
                    self.model_version,
                    ids[i],
                    p[i],
                    embedding=None if embeddings is None else embeddings[i],
                    embedding_dtype=self.embedding_dtype,
                    pixel_stats=None
                    if stats is None
                    else dict(zip(STAT_NAMES, stats[i].tolist(), strict=True)),
                    latency_ms=None if latency_ms is None else float(latency_ms[i]),
                    arm=arm,
                    label=None if labels is None else int(labels[i]),
                    timestamp=ts,
                    thumbnail=None if images is None else self._thumbnail(images[i]),
                )
                for i in range(n)
            ]
        except Exception as exc:
            self._drop(f"could not encode a batch of prediction logs: {exc!r}", len(probs))
            return []
        return [
            rid
            for rid, raw in zip(ids, raws, strict=True)
            if self._offer(self.kafka.predictions_topic, rid, raw)
        ]

    def log_label(
        self, request_id: str, label: int, timestamp: datetime | float | None = None
    ) -> bool:
        """Log the true class of an earlier (or later) prediction; False when dropped."""
        try:
            raw = encode_label(self.model, request_id, label, timestamp)
        except Exception as exc:
            self._drop(f"could not encode a label: {exc!r}")
            return False
        return self._offer(self.kafka.labels_topic, request_id, raw)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until everything queued so far was handed to Kafka; False on timeout."""
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Flush and stop the background thread."""
        self.flush(timeout)
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _thumbnail(self, image: np.ndarray | None) -> bytes | None:
        if not self.send_thumbnails or image is None:
            return None
        png, halved = thumbnail_png(image, self.max_thumbnail_bytes)
        with self._lock:
            self.thumbnails_downscaled += png is not None and halved > 0
            self.thumbnails_skipped += png is None
        return png

    def _offer(self, topic: str, key: str, raw: bytes) -> bool:
        try:
            self._queue.put_nowait((topic, key.encode(), raw))
            return True
        except queue.Full:
            self._drop("buffer full: Kafka is slow or unreachable")
            return False

    def _drop(self, why: str, n: int = 1) -> None:
        with self._lock:
            self.dropped += n
            dropped = self.dropped
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning("driftwatch logger dropped a log (%d so far): %s", dropped, why)

    def _on_error(self, exc: BaseException) -> None:
        with self._lock:
            self.failed += 1
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning(
                "driftwatch logger could not deliver a log (%d so far): %s", self.failed, exc
            )

    def _producer(self) -> Any:
        from kafka import KafkaProducer

        return KafkaProducer(**{**kafka_client_config(self.kafka), **self._config})

    def _pump(self) -> None:
        producer = None
        retry_at = 0.0  # after a failed connect, give up on logs until then instead of waiting
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            if isinstance(item, threading.Event):
                if producer is not None:
                    try:
                        producer.flush()
                    except Exception as exc:
                        self._on_error(exc)
                item.set()
                continue
            try:
                if producer is None:
                    if time.monotonic() < retry_at:
                        self._on_error(ConnectionError("Kafka unreachable, retrying soon"))
                        continue
                    retry_at = time.monotonic() + 5.0
                    producer = self._producer()
                topic, key, raw = item
                producer.send(topic, value=raw, key=key).add_errback(self._on_error)
                self.sent += 1
            except Exception as exc:
                self._on_error(exc)
        if producer is not None:
            try:
                producer.close(timeout=10)
            except Exception as exc:
                self._on_error(exc)


class LabelLogger(PredictionLogger):
    """A logger used only for labels (``log_label``), e.g. in a feedback service."""

    def __init__(self, kafka: KafkaSettings, model: str, **kwargs: Any) -> None:
        super().__init__(kafka, model, "labels", **kwargs)
