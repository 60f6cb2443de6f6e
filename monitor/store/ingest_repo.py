"""Writes of the ingest path: idempotent batch upsert of prediction logs and labels, the late-label
join in both directions, and retention.

Every function takes a :class:`~sqlalchemy.orm.Session` and never commits: the caller owns the
transaction (:func:`monitor.store.db.unit_of_work`). Replaying a batch is harmless: predictions
are keyed by ``(model, request_id)`` and inserted with ``ON CONFLICT DO NOTHING`` (SQLite and
PostgreSQL), labels are upserted, so Kafka's at-least-once delivery stores each log once.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import Insert, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.schemas import EncodedArray, LabelEvent, PredictionLog
from monitor.store.base import utcnow
from monitor.store.tables import Label, Prediction

#: (model, model_version, arm or "all") -> number of prediction rows stored.
SeriesCounts = Counter[tuple[str, str, str]]


@dataclass(frozen=True)
class WriteCounts:
    """What one :func:`write_batch` did."""

    stored: int = 0
    duplicates: int = 0
    labels: int = 0
    labels_joined: int = 0
    by_series: SeriesCounts = field(default_factory=Counter)


def _insert(session: Session, table: Any) -> Insert:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"idempotent upsert is implemented for SQLite and PostgreSQL, not {dialect}")


def prediction_row(log: PredictionLog, *, keep_thumbnail: bool = True) -> dict[str, Any]:
    """The ``predictions`` row of one validated log (arrays as little-endian bytes)."""
    probs = log.probability_vector()
    emb = log.embedding
    if isinstance(emb, EncodedArray):
        emb_bytes: bytes | None = base64.b64decode(emb.data)
        emb_dtype: str | None = emb.dtype
    elif emb is not None:
        emb_bytes, emb_dtype = np.asarray(emb, dtype="<f4").tobytes(), "float32"
    else:
        emb_bytes, emb_dtype = None, None
    return {
        "model": log.model,
        "model_version": log.model_version,
        "request_id": log.request_id,
        "ts": log.timestamp,
        "predicted_class": log.predicted_class,
        "n_classes": int(probs.size),
        "confidence": float(probs.max()),
        "probs": probs.astype("<f4", copy=False).tobytes(),
        "embedding": emb_bytes,
        "embedding_dtype": emb_dtype,
        "pixel_stats": log.pixel_stats,
        "thumbnail": base64.b64decode(log.thumbnail) if keep_thumbnail and log.thumbnail else None,
        "latency_ms": log.latency_ms,
        "arm": log.arm,
        "label": log.label,
    }


def _known_labels(session: Session, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Stored labels for ``keys``, one query per model."""
    by_model: dict[str, list[str]] = {}
    for model, request_id in keys:
        by_model.setdefault(model, []).append(request_id)
    found: dict[tuple[str, str], int] = {}
    stmt = select(Label.model, Label.request_id, Label.label).where(
        Label.model == bindparam("model"), Label.request_id.in_(bindparam("ids", expanding=True))
    )
    for model, ids in by_model.items():
        for start in range(0, len(ids), 10_000):
            chunk = ids[start : start + 10_000]
            for m, r, label in session.execute(stmt, {"model": model, "ids": chunk}):
                found[(m, r)] = label
    return found


def upsert_labels(session: Session, labels: Sequence[LabelEvent]) -> tuple[int, int]:
    """Store ``labels`` (the latest event per key wins) and set them on stored predictions.

    Returns ``(labels written, predictions updated)``.
    """
    if not labels:
        return 0, 0
    latest: dict[tuple[str, str], LabelEvent] = {}
    for event in labels:
        latest[(event.model, event.request_id)] = event
    now = utcnow()
    rows = [
        {"model": e.model, "request_id": e.request_id, "label": e.label, "ts": e.timestamp,
         "received_at": now}
        for e in latest.values()
    ]
    stmt = _insert(session, Label)
    stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]  # dialect Insert has it
        index_elements=["model", "request_id"],
        set_={"label": stmt.excluded.label, "ts": stmt.excluded.ts,  # type: ignore[attr-defined]
              "received_at": stmt.excluded.received_at},  # type: ignore[attr-defined]
    )
    session.execute(stmt, rows)
    join = (
        update(Prediction)
        .where(Prediction.model == bindparam("m"), Prediction.request_id == bindparam("r"))
        .values(label=bindparam("l"))
    )
    result = session.connection().execute(
        join, [{"m": r["model"], "r": r["request_id"], "l": r["label"]} for r in rows]
    )
    return len(rows), max(int(result.rowcount), 0)


def insert_predictions(
    session: Session, logs: Sequence[PredictionLog], *, keep_thumbnails: bool = True
) -> tuple[int, SeriesCounts]:
    """Insert ``logs`` once each; a label stored earlier is joined in as the row is written.

    Returns ``(rows inserted, inserted rows per (model, version, arm))``; the rest were
    duplicates of rows already stored (or repeated within ``logs``).
    """
    if not logs:
        return 0, Counter()
    unique: dict[tuple[str, str], PredictionLog] = {}
    for log in logs:
        unique.setdefault((log.model, log.request_id), log)
    rows = [prediction_row(log, keep_thumbnail=keep_thumbnails) for log in unique.values()]
    unlabelled = [(r["model"], r["request_id"]) for r in rows if r["label"] is None]
    if unlabelled:
        known = _known_labels(session, unlabelled)
        if known:
            for row in rows:
                if row["label"] is None:
                    row["label"] = known.get((row["model"], row["request_id"]))
    now = utcnow()
    for row in rows:
        row["ingested_at"] = now
    stmt = (
        _insert(session, Prediction)
        .on_conflict_do_nothing(index_elements=["model", "request_id"])  # type: ignore[attr-defined]
        .returning(Prediction.model, Prediction.model_version, Prediction.arm)
    )
    series: SeriesCounts = Counter()
    for model, version, arm in session.execute(stmt, rows):
        series[(model, version, arm or "all")] += 1
    return sum(series.values()), series


def write_batch(
    session: Session,
    logs: Sequence[PredictionLog],
    labels: Sequence[LabelEvent] = (),
    *,
    keep_thumbnails: bool = True,
) -> WriteCounts:
    """Write one batch of validated logs and labels; safe to replay.

    Labels go first so a label and its prediction in the same batch join.
    """
    n_labels, joined = upsert_labels(session, labels)
    stored, series = insert_predictions(session, logs, keep_thumbnails=keep_thumbnails)
    return WriteCounts(
        stored=stored,
        duplicates=len(logs) - stored,
        labels=n_labels,
        labels_joined=joined,
        by_series=series,
    )


def delete_older_than(session: Session, cutoff: datetime) -> tuple[int, int]:
    """Retention: delete predictions and labels with a timestamp before ``cutoff``.

    Returns ``(predictions deleted, labels deleted)``.
    """
    preds = session.execute(delete(Prediction).where(Prediction.ts < cutoff))
    labels = session.execute(delete(Label).where(Label.ts < cutoff))
    return max(int(preds.rowcount), 0), max(int(labels.rowcount), 0)  # type: ignore[attr-defined]
