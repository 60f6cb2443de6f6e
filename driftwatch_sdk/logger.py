"""The non-blocking logger model servers call: log predictions and labels without ever
blocking or raising into the serving path.

``log`` / ``log_batch`` encode messages on the caller's thread (pixel statistics come from the
image arrays, so raw images never travel) and put the bytes on a bounded in-memory queue; one
background thread hands them to a kafka-python producer that batches and compresses. When Kafka
is slow or down the queue fills and new logs are dropped and counted, with a warning.

With ``send_thumbnails=True`` each image also travels as a PNG thumbnail (what retraining and
the status page look at), halved in size until it fits ``max_thumbnail_bytes`` (the ingest
worker's limit) or left out when even 8 pixels a side does not fit; both are counted.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from driftwatch_sdk.encode import (
    Arm,
    ArrayLike,
    EmbeddingDtype,
    Timestamp,
    check_tags,
    encode_label,
    encode_prediction,
    iso_timestamp,
    thumbnail_png,
    to_numpy,
)
from driftwatch_sdk.environment import env_tags, kafka_from_env, platform_arm
from driftwatch_sdk.imagestats import STAT_NAMES, batch_stats

log = logging.getLogger(__name__)

_STOP = object()


class PredictionLogger:
    """Non-blocking logger of predictions (and labels) to Kafka for one model version.

    Parameters
    ----------
    model, model_version
        What every log of this logger is about.
    bootstrap_servers, predictions_topic, labels_topic
        Where the logs go (the server's ``kafka`` settings).
    client_config
        kafka-python connection settings (``security_protocol``, ``sasl_*``, ``ssl_*``...).
    arm
        ``"stable"`` or ``"canary"`` for every log (a per-call ``arm=`` wins).
    tags
        Segments attached to every log (camera, site, device...); per-call ``tags=`` are
        merged over them. At most 16, keys ``[A-Za-z0-9_.:-]{1,64}``, values up to 128 chars.
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
        model: str,
        model_version: str,
        *,
        bootstrap_servers: Sequence[str] = ("127.0.0.1:9092",),
        predictions_topic: str = "driftwatch.predictions",
        labels_topic: str = "driftwatch.labels",
        client_config: Mapping[str, Any] | None = None,
        arm: Arm | None = None,
        tags: Mapping[str, Any] | None = None,
        embedding_dtype: EmbeddingDtype = "float16",
        max_queue: int = 100_000,
        compression: str | None = "gzip",
        producer_config: Mapping[str, Any] | None = None,
        send_thumbnails: bool = False,
        max_thumbnail_bytes: int = 65_536,
    ) -> None:
        self.model, self.model_version = model, model_version
        self.predictions_topic, self.labels_topic = predictions_topic, labels_topic
        self.arm: Arm | None = arm
        self.tags = check_tags(tags) or {}
        self.send_thumbnails, self.max_thumbnail_bytes = send_thumbnails, max_thumbnail_bytes
        self.thumbnails_downscaled = 0
        self.thumbnails_skipped = 0
        self.embedding_dtype: EmbeddingDtype = embedding_dtype
        self.sent = 0
        self.dropped = 0
        self.failed = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._last_warning = 0.0
        self._lock = threading.Lock()
        self._config: dict[str, Any] = {
            "bootstrap_servers": list(bootstrap_servers),
            "client_id": "driftwatch",
            **(client_config or {}),
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

    @classmethod
    def from_env(
        cls, model: str | None = None, model_version: str | None = None, **kwargs: Any
    ) -> PredictionLogger:
        """A logger configured by the environment: ``DRIFTWATCH_MODEL``,
        ``DRIFTWATCH_MODEL_VERSION``, the ``DRIFTWATCH_KAFKA__*`` variables, ``DRIFTWATCH_ARM``,
        ``DRIFTWATCH_TAGS`` and the platform's revision (see :mod:`driftwatch_sdk.environment`).
        Keyword arguments win over the environment."""
        import os

        model = model or os.environ.get("DRIFTWATCH_MODEL")
        model_version = model_version or os.environ.get("DRIFTWATCH_MODEL_VERSION")
        if not model or not model_version:
            raise ValueError("set DRIFTWATCH_MODEL and DRIFTWATCH_MODEL_VERSION (or pass them)")
        options: dict[str, Any] = {**kafka_from_env(), "arm": platform_arm()}
        options["tags"] = {**env_tags(), **(kwargs.pop("tags", None) or {})}
        options.update(kwargs)
        return cls(model, model_version, **options)

    # ------------------------------------------------------------------ serving-path API

    def log(
        self,
        probs: ArrayLike,
        *,
        embedding: ArrayLike | None = None,
        image: ArrayLike | None = None,
        pixel_stats: Mapping[str, float] | None = None,
        request_id: str | None = None,
        predicted_class: int | None = None,
        latency_ms: float | None = None,
        arm: Arm | None = None,
        label: int | None = None,
        timestamp: Timestamp = None,
        tags: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Log one prediction; returns its request id, or None when it was dropped.

        Arrays may be numpy arrays or torch tensors (any device)."""
        try:
            img = None if image is None else to_numpy(image)
            if pixel_stats is None and img is not None:
                pixel_stats = dict(zip(STAT_NAMES, batch_stats(img[None])[0].tolist()))
            request_id = request_id or uuid.uuid4().hex
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
                arm=arm or self.arm,
                label=label,
                timestamp=timestamp,
                thumbnail=self._thumbnail(img),
                tags={**self.tags, **(tags or {})},
            )
        except Exception as exc:
            self._drop(f"could not encode a prediction log: {exc!r}")
            return None
        return request_id if self._offer(self.predictions_topic, request_id, raw) else None

    def log_batch(
        self,
        probs: ArrayLike,
        *,
        embeddings: ArrayLike | None = None,
        images: ArrayLike | None = None,
        pixel_stats: ArrayLike | None = None,
        request_ids: Sequence[str] | None = None,
        latency_ms: ArrayLike | Sequence[float] | None = None,
        arm: Arm | None = None,
        labels: Sequence[int] | None = None,
        timestamp: Timestamp = None,
        tags: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Log N predictions from arrays or tensors (``probs`` is (N, C); ``images``
        (N, H, W[, 3]) or ``pixel_stats`` (N, len(STAT_NAMES))); returns the queued ids."""
        try:
            p = to_numpy(probs, np.float64)
            n = len(p)
            emb = None if embeddings is None else to_numpy(embeddings)
            imgs = None if images is None else to_numpy(images)
            stats = batch_stats(imgs) if pixel_stats is None and imgs is not None else pixel_stats
            stats = None if stats is None else to_numpy(stats)
            lat = None if latency_ms is None else to_numpy(latency_ms, np.float64)
            ids = list(request_ids) if request_ids is not None else [uuid.uuid4().hex for _ in p]
            ts, all_tags = iso_timestamp(timestamp), {**self.tags, **(tags or {})}
            raws = [
                encode_prediction(
                    self.model,
                    self.model_version,
                    ids[i],
                    p[i],
                    embedding=None if emb is None else emb[i],
                    embedding_dtype=self.embedding_dtype,
                    pixel_stats=None if stats is None else dict(zip(STAT_NAMES, stats[i].tolist())),
                    latency_ms=None if lat is None else float(lat[i]),
                    arm=arm or self.arm,
                    label=None if labels is None else int(labels[i]),
                    timestamp=ts,
                    thumbnail=None if imgs is None else self._thumbnail(imgs[i]),
                    tags=all_tags,
                )
                for i in range(n)
            ]
        except Exception as exc:
            self._drop(f"could not encode a batch of prediction logs: {exc!r}", len(probs))
            return []
        return [rid for rid, raw in zip(ids, raws) if self._offer(self.predictions_topic, rid, raw)]

    def log_label(self, request_id: str, label: int, timestamp: Timestamp = None) -> bool:
        """Log the true class of an earlier (or later) prediction; False when dropped."""
        try:
            raw = encode_label(self.model, request_id, label, timestamp)
        except Exception as exc:
            self._drop(f"could not encode a label: {exc!r}")
            return False
        return self._offer(self.labels_topic, request_id, raw)

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

        return KafkaProducer(**self._config)

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

    def __init__(self, model: str, **kwargs: Any) -> None:
        super().__init__(model, "labels", **kwargs)
