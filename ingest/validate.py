"""Validation of consumed records into typed events or :class:`~monitor.schemas.Rejected` ones.

Pure apart from image decoding: no Kafka, no database. The worker hands it ``(topic, partition,
offset, key, value)`` tuples and gets back what to write and what to dead-letter.

>>> from monitor.settings import IngestSettings
>>> v = Validator(IngestSettings(), predictions_topic="p", labels_topic="l")
>>> out = v.validate([("p", 0, 7, None, b"{not json")])
>>> out.rejected[0].reason, out.rejected[0].offset
('bad_json', 7)
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from ingest.fastpath import fast_rows
from monitor.errors import InvalidMessage
from monitor.imagestats import decode_image, image_stats
from monitor.schemas import LabelEvent, Limits, PredictionLog, Rejected, parse_message
from monitor.settings import IngestSettings

#: (topic, partition, offset, key, value) of one consumed record.
RawRecord = tuple[str, int, int, bytes | None, bytes | None]


@dataclass
class Validated:
    """The outcome of validating one batch of records."""

    rows: list[dict[str, Any]] = field(default_factory=list)  # from the fast lane
    logs: list[PredictionLog] = field(default_factory=list)
    labels: list[LabelEvent] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def limits_of(settings: IngestSettings) -> Limits:
    """The schema :class:`Limits` that ``settings`` ask for."""
    return Limits(
        max_embedding_dim=settings.max_embedding_dim,
        max_classes=settings.max_classes,
        max_thumbnail_bytes=settings.max_thumbnail_bytes,
        probability_tolerance=settings.probability_tolerance,
        max_future_skew=timedelta(seconds=settings.max_future_skew_seconds),
        embedding_dims=dict(settings.embedding_dims),
    )


def with_pixel_stats(log: PredictionLog) -> PredictionLog:
    """``log`` with pixel statistics computed from its thumbnail when it sent none."""
    if log.pixel_stats is not None or log.thumbnail is None:
        return log
    try:
        data = base64.b64decode(log.thumbnail, validate=True)
    except ValueError as exc:
        raise InvalidMessage("bad_image", f"thumbnail is not valid base64: {exc}") from exc
    return log.model_copy(update={"pixel_stats": image_stats(decode_image(data))})


class Validator:
    """Turns raw records of the predictions and labels topics into events or rejections."""

    def __init__(
        self, settings: IngestSettings, *, predictions_topic: str, labels_topic: str
    ) -> None:
        self.limits = limits_of(settings)
        self.max_bytes = settings.max_message_bytes
        self.allowed = frozenset(settings.allowed_models)
        self.predictions_topic = predictions_topic
        self.labels_topic = labels_topic

    def _check_model(self, model: str) -> None:
        if self.allowed and model not in self.allowed:
            raise InvalidMessage(
                "unknown_model", f"model {model!r} is not in ingest.allowed_models"
            )

    def validate(self, records: Iterable[RawRecord]) -> Validated:
        """Validate ``records``; every one ends up in exactly one list of the result.

        Prediction logs go through :func:`ingest.fastpath.fast_rows` first (straight to rows);
        whatever it does not accept, and every label, goes through the pydantic schema.
        """
        out = Validated()
        records = list(records)
        preds = [i for i, r in enumerate(records) if r[0] != self.labels_topic and r[4] is not None]
        rows, slow = fast_rows([records[i][4] or b"" for i in preds], self.limits, self.max_bytes)
        skipped = set(slow)
        accepted = [preds[j] for j in range(len(preds)) if j not in skipped]
        fast: set[int] = set()
        for row, index in zip(rows, accepted, strict=True):
            if not self.allowed or row["model"] in self.allowed:
                out.rows.append(row)
                fast.add(index)
        for index, (topic, partition, offset, key, value) in enumerate(records):
            if index in fast:
                continue
            raw = value or b""
            try:
                if value is None:
                    raise InvalidMessage("bad_json", "message has no value (tombstone)")
                if topic == self.labels_topic:
                    label: LabelEvent = parse_message(
                        value, LabelEvent, self.limits, self.max_bytes
                    )
                    self._check_model(label.model)
                    out.labels.append(label)
                else:
                    log: PredictionLog = parse_message(
                        value, PredictionLog, self.limits, self.max_bytes
                    )
                    self._check_model(log.model)
                    out.logs.append(with_pixel_stats(log))
            except InvalidMessage as exc:
                out.rejected.append(Rejected.of(exc, topic, partition, offset, raw, key))
        return out
