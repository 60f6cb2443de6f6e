"""Validation of consumed records into rows to write or :class:`~monitor.schemas.Rejected` ones.

Pure apart from image decoding: no Kafka, no database. The worker hands it ``(topic, partition,
offset, key, value)`` tuples and gets back what to write and what to dead-letter. Validation
never raises because of a record: whatever goes wrong while judging one (a decoder's error, an
overflow, a decompression bomb) rejects that record with a reason.

>>> from monitor.settings import IngestSettings
>>> v = Validator(IngestSettings(), predictions_topic="p", labels_topic="l")
>>> out = v.validate([("p", 0, 7, None, b"{not json")])
>>> out.rejected[0].reason, out.rejected[0].offset
('bad_json', 7)
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ingest.fastpath import fast_rows
from monitor.errors import InvalidMessage
from monitor.imagestats import decode_image, image_stats
from monitor.schemas import LabelEvent, Limits, PredictionLog, Rejected, parse_message
from monitor.settings import IngestSettings
from monitor.store.ingest_repo import prediction_row

#: (topic, partition, offset, key, value) of one consumed record.
RawRecord = tuple[str, int, int, bytes | None, bytes | None]


@dataclass(frozen=True, slots=True)
class Row:
    """One accepted record, from either lane: where it came from and what it writes.

    Exactly one of ``prediction`` (a ``predictions`` row) and ``label`` is set.
    """

    record: RawRecord
    prediction: dict[str, Any] | None = None
    label: LabelEvent | None = None


@dataclass
class Validated:
    """The outcome of validating one batch of records: every record is in exactly one list."""

    rows: list[Row] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def limits_of(settings: IngestSettings) -> Limits:
    """The schema :class:`Limits` that ``settings`` ask for."""
    return Limits(
        max_embedding_dim=settings.max_embedding_dim,
        max_classes=settings.max_classes,
        max_thumbnail_bytes=settings.max_thumbnail_bytes,
        probability_tolerance=settings.probability_tolerance,
        max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
        max_past_age=timedelta(seconds=settings.max_past_age_seconds),
        embedding_dims=dict(settings.embedding_dims),
    )


def checked_thumbnail(log: PredictionLog, max_pixels: int = 4_000_000) -> PredictionLog:
    """``log`` once its thumbnail (if any) decodes as a PNG/JPEG of at most ``max_pixels``;
    pixel statistics are computed from it when the log sent none."""
    if log.thumbnail is None:
        return log
    try:
        data = binascii.a2b_base64(log.thumbnail, strict_mode=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidMessage("bad_image", f"thumbnail is not valid base64: {exc}") from exc
    try:
        image = decode_image(data, max_pixels)
    except InvalidMessage:
        raise
    except Exception as exc:  # e.g. PIL's DecompressionBombError, MemoryError
        raise InvalidMessage("bad_image", f"thumbnail cannot be decoded: {exc!r}"[:500]) from exc
    if log.pixel_stats is not None:
        return log
    return log.model_copy(update={"pixel_stats": image_stats(image)})


def rejection(exc: Exception, record: RawRecord) -> Rejected:
    """The dead-letter record of ``record`` refused with ``exc`` (any exception)."""
    if not isinstance(exc, InvalidMessage):
        exc = InvalidMessage("unreadable", f"{type(exc).__name__}: {exc}")
    topic, partition, offset, key, value = record
    return Rejected.of(exc, topic, partition, offset, value or b"", key)


class Validator:
    """Turns raw records of the predictions and labels topics into rows or rejections."""

    def __init__(
        self, settings: IngestSettings, *, predictions_topic: str, labels_topic: str
    ) -> None:
        self.limits = limits_of(settings)
        self.max_bytes = settings.max_message_bytes
        self.max_pixels = settings.max_image_pixels
        self.keep_thumbnails = settings.store_thumbnails
        self.allowed = frozenset(settings.allowed_models)
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic

    def _check_model(self, model: str) -> None:
        if self.allowed and model not in self.allowed:
            raise InvalidMessage(
                "unknown_model", f"model {model!r} is not in ingest.allowed_models"
            )

    def _fast(self, records: list[RawRecord]) -> dict[int, dict[str, Any]]:
        """Rows the fast lane vouches for, by index into ``records``."""
        preds = [i for i, r in enumerate(records) if r[0] != self.labels_topic and r[4] is not None]
        try:
            rows, slow = fast_rows(
                [records[i][4] or b"" for i in preds], self.limits, self.max_bytes
            )
        except Exception:  # the slow lane judges (and words) whatever the fast lane trips on
            return {}
        skipped = set(slow)
        accepted = [preds[j] for j in range(len(preds)) if j not in skipped]
        return {
            index: row
            for row, index in zip(rows, accepted, strict=True)
            if not self.allowed or row["model"] in self.allowed
        }

    def _slow(self, record: RawRecord) -> Row:
        """The row of one record by the pydantic schema; raises on anything wrong with it."""
        topic, _partition, _offset, _key, value = record
        if value is None:
            raise InvalidMessage("bad_json", "message has no value (tombstone)")
        if topic == self.labels_topic:
            label: LabelEvent = parse_message(value, LabelEvent, self.limits, self.max_bytes)
            self._check_model(label.model)
            return Row(record, label=label)
        log: PredictionLog = parse_message(value, PredictionLog, self.limits, self.max_bytes)
        self._check_model(log.model)
        log = checked_thumbnail(log, self.max_pixels)
        return Row(record, prediction=prediction_row(log, keep_thumbnail=self.keep_thumbnails))

    def validate(self, records: Iterable[RawRecord]) -> Validated:
        """Validate ``records``; every one ends up in exactly one list of the result, in order.

        Prediction logs go through :func:`ingest.fastpath.fast_rows` first (straight to rows);
        whatever it does not accept, and every label, goes through the pydantic schema.
        """
        out = Validated()
        records = list(records)
        fast = self._fast(records)
        for index, record in enumerate(records):
            row = fast.get(index)
            if row is not None:
                out.rows.append(Row(record, prediction=row))
                continue
            try:
                out.rows.append(self._slow(record))
            except Exception as exc:  # every failure of judging a record is a rejection
                out.rejected.append(rejection(exc, record))
        return out
