"""HTTP ingest for model servers that cannot reach Kafka: ``POST /api/v1/logs`` takes a batch
of prediction logs (and labels) through the Kafka path's own validation
(:class:`ingest.validate.Validator`: fast lane, then the pydantic schema), stores the valid ones
idempotently and sends the rest to the dead-letter topic, answering 202 with what happened to
each. ``POST /api/v1/logs/kserve`` does the same for KServe's payload-logger CloudEvents;
``GET /api/v1/logs/segment`` reads back one tagged segment (``tag=camera:dock-3``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from ingest.kafka_config import client_config
from ingest.validate import RawRecord, Validator, rejection
from monitor.api.deps import ApiError, require_read, require_write, session_dep
from monitor.errors import DriftwatchError, InvalidMessage
from monitor.schemas import Rejected
from monitor.settings import Settings
from monitor.store.ingest_repo import write_batch
from monitor.store.logs import load_range

router = APIRouter(tags=["ingest"])
DB = Annotated[Session, Depends(session_dep)]
#: The dead-letter ``topic`` of a log refused over HTTP (partition -1, offset = its index).
HTTP_SOURCE = "http:/api/v1/logs"
KSERVE_RESPONSE = "org.kubeflow.serving.inference.response"


class RejectedPublic(BaseModel):
    index: int
    reason: str
    error: str


class IngestReceipt(BaseModel):
    received: int
    stored: int
    duplicates: int
    labels: int
    rejected: list[RejectedPublic]


def _records(body: bytes, settings: Settings) -> list[RawRecord]:
    """One record per log: a JSON array of prediction logs, or ``{"predictions": [...],
    "labels": [...]}``; the whole body refused when it is neither."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from exc
    preds: Any = doc if isinstance(doc, list) else None
    labels: Any = [] if isinstance(doc, list) else None
    if isinstance(doc, dict) and set(doc) <= {"predictions", "labels"}:
        preds, labels = doc.get("predictions", []), doc.get("labels", [])
    if not isinstance(preds, list) or not isinstance(labels, list):
        raise ApiError(400, 'body must be a JSON array of logs or {"predictions", "labels"}')
    n = len(preds) + len(labels)
    if n > settings.ingest.batch_max_messages:
        raise ApiError(413, f"{n} messages, at most {settings.ingest.batch_max_messages}")
    topics = [settings.kafka.predictions_topic] * len(preds) + [settings.kafka.labels_topic] * len(
        labels
    )
    out: list[RawRecord] = []
    for i, (topic, item) in enumerate(zip(topics, [*preds, *labels], strict=True)):
        raw = json.dumps(item, separators=(",", ":")).encode()
        key = item.get("request_id") if isinstance(item, dict) else None
        out.append((topic, -1, i, str(key).encode() if key is not None else None, raw))
    return out


def _dead_letter(request: Request, settings: Settings, rejected: list[Rejected]) -> None:
    """Send ``rejected`` to the dead-letter topic (the Kafka path's record and headers);
    503 when the broker does not take them, so the client retries and nothing is lost."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    try:
        producer = getattr(request.app.state, "dead_letter_producer", None)
        if producer is None:
            producer = KafkaProducer(**client_config(settings.kafka), max_block_ms=5_000)
            request.app.state.dead_letter_producer = producer
        futures = [
            producer.send(
                settings.kafka.dead_letter_topic,
                value=rej.model_dump_json().encode(),
                key=None if rej.key is None else rej.key.encode(),
                headers=[
                    ("reason", rej.reason.encode()),
                    ("source_topic", HTTP_SOURCE.encode()),
                    ("source_partition", b"-1"),
                    ("source_offset", str(rej.offset).encode()),
                ],
            )
            for rej in rejected
        ]
        producer.flush(timeout=10)
        for future in futures:
            future.get(timeout=0)
    except KafkaError as exc:
        raise ApiError(503, f"dead-letter topic unavailable, retry the batch: {exc}") from exc


async def _body(request: Request) -> bytes:
    return await request.body()


@router.post(
    "/logs",
    status_code=202,
    response_model=IngestReceipt,
    dependencies=[Depends(require_write)],
)
def ingest_logs(request: Request, body: Annotated[bytes, Depends(_body)], db: DB) -> Any:
    """Ingest a batch of prediction logs and labels (the Kafka messages' JSON): valid ones
    are stored once each (a replay is counted as duplicates), invalid ones dead-lettered."""
    settings: Settings = request.app.state.settings
    return _accept(request, db, settings, _records(body, settings))


def _accept(request: Request, db: Session, settings: Settings, records: list[RawRecord]) -> Any:
    """Validate, dead-letter the rejects, store the rest; the 202 receipt."""
    validator = Validator(
        settings.ingest,
        predictions_topic=settings.kafka.predictions_topic,
        labels_topic=settings.kafka.labels_topic,
    )
    out = validator.validate(records)
    preds = [r for r in out.rows if r.prediction is not None]
    counts = write_batch(  # committed only after the dead letters are sent (session_dep)
        db,
        (),
        [r.label for r in out.rows if r.label is not None],
        rows=[r.prediction for r in preds if r.prediction is not None],
        keep_thumbnails=settings.ingest.store_thumbnails,
    )
    refused = [
        rejection(InvalidMessage(reason, detail), preds[i].record)
        for i, reason, detail in counts.refused
    ]
    rejected = [rej.model_copy(update={"topic": HTTP_SOURCE}) for rej in [*out.rejected, *refused]]
    if rejected:
        _dead_letter(request, settings, rejected)
    receipt = IngestReceipt(
        received=len(records),
        stored=counts.stored,
        duplicates=counts.duplicates,
        labels=counts.labels,
        rejected=[RejectedPublic(index=r.offset, reason=r.reason, error=r.error) for r in rejected],
    )
    return JSONResponse(receipt.model_dump(), status_code=202)


def kserve_records(
    headers: Mapping[str, str], body: bytes, version: str, topic: str
) -> list[RawRecord]:
    """Prediction logs of one KServe payload-logger CloudEvent (binary mode): a response event
    (``ce-type`` ``org.kubeflow.serving.inference.response``) whose ``predictions`` are
    probability vectors; request events carry no prediction and give no records. The model is
    ``ce-inferenceservicename``, the request id ``ce-id`` (``-<i>`` per row of a batch), the arm
    ``ce-endpoint`` (``default`` -> stable, ``canary`` -> canary)."""
    if headers.get("ce-type") != KSERVE_RESPONSE:
        return []
    try:
        predictions = json.loads(body).get("predictions")
    except (ValueError, AttributeError) as exc:
        raise ApiError(400, f"KServe response body is not a JSON object: {exc}") from exc
    if not isinstance(predictions, list):
        raise ApiError(400, "KServe response has no 'predictions' list")
    event_id = headers.get("ce-id", "")
    arm = {"default": "stable", "canary": "canary"}.get(headers.get("ce-endpoint", ""))
    tags = {k: headers[f"ce-{k}"] for k in ("namespace", "component") if headers.get(f"ce-{k}")}
    out: list[RawRecord] = []
    for i, probs in enumerate(predictions):
        request_id = event_id if len(predictions) == 1 else f"{event_id}-{i}"
        msg: dict[str, Any] = {
            "model": headers.get("ce-inferenceservicename", ""),
            "model_version": version,
            "request_id": request_id,
            "timestamp": headers.get("ce-time") or datetime.now(UTC).isoformat(),
            "probabilities": probs,
            "predicted_class": int(np.argmax(probs)) if isinstance(probs, list) and probs else 0,
            **({"arm": arm} if arm else {}),
            **({"tags": tags} if tags else {}),
        }
        raw = json.dumps(msg, separators=(",", ":")).encode()
        out.append((topic, -1, i, request_id.encode(), raw))
    return out


@router.post(
    "/logs/kserve",
    status_code=202,
    response_model=IngestReceipt,
    dependencies=[Depends(require_write)],
)
def ingest_kserve(
    request: Request,
    body: Annotated[bytes, Depends(_body)],
    db: DB,
    version: Annotated[str, Query(description="model version the InferenceService serves")],
) -> Any:
    """A KServe payload-logger CloudEvent; the same validation and dead-letter rules."""
    settings: Settings = request.app.state.settings
    topic = settings.kafka.predictions_topic
    return _accept(request, db, settings, kserve_records(request.headers, body, version, topic))


class SegmentPublic(BaseModel):
    model: str
    model_version: str
    tags: dict[str, str]
    n: int
    mean_confidence: float
    class_shares: dict[int, float]


def _tags(values: list[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, text = value.partition(":")
        if not sep or not key:
            raise ApiError(422, f"tag {value!r} is not key:value")
        tags[key] = text
    return tags


@router.get("/logs/segment", response_model=SegmentPublic, dependencies=[Depends(require_read)])
def segment(
    db: DB,
    model: str,
    version: str,
    tag: Annotated[list[str], Query(description="key:value, repeatable (all must match)")],
    start: datetime | None = None,
    end: datetime | None = None,
) -> Any:
    """Summary of the logs of one segment (every ``tag`` matches) in ``[start, end)``."""
    tags = _tags(tag)
    try:
        batch = load_range(db, model, version, start, end, tags=tags)
    except DriftwatchError as exc:
        raise ApiError(404, str(exc)) from exc
    n = len(batch.predicted)
    counts = np.bincount(batch.predicted)
    return SegmentPublic(
        model=model,
        model_version=version,
        tags=tags,
        n=n,
        mean_confidence=float(batch.probs.max(axis=1).mean()),
        class_shares={c: float(k / n) for c, k in enumerate(counts.tolist()) if k},
    )
