"""Writes of the ingest path: idempotent batch upsert of prediction logs and labels, the late-label
join in both directions, and retention.

Every function takes a :class:`~sqlalchemy.orm.Session` and never commits: the caller owns the
transaction (:func:`monitor.store.db.unit_of_work`). Replaying a batch is harmless: predictions
are keyed by ``(model, request_id)`` and inserted with ``ON CONFLICT DO NOTHING`` (SQLite and
PostgreSQL), labels are upserted, so Kafka's at-least-once delivery stores each log once.
"""

from __future__ import annotations

import base64
import sys
from array import array
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

import msgspec
import numpy as np
from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from monitor.schemas import EncodedArray, LabelEvent, PredictionLog
from monitor.store.arms import stream_arm
from monitor.store.base import utcnow
from monitor.store.conflicts import conflict, same, stored_content
from monitor.store.pg_copy import copy_insert
from monitor.store.shapes import ModelShape, Shape, mismatch, row_shape
from monitor.store.streams import register_streams
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
    #: (index into the call's rows, reason, detail) of each row not stored because it breaks
    #: its model's pinned shape or conflicts with another log of the same request id
    refused: tuple[tuple[int, str, str], ...] = ()

    def __add__(self, other: WriteCounts) -> WriteCounts:
        """The totals of two writes (``refused`` indices stay those of their own call)."""
        return WriteCounts(
            self.stored + other.stored,
            self.duplicates + other.duplicates,
            self.labels + other.labels,
            self.labels_joined + other.labels_joined,
            self.by_series + other.by_series,
            self.refused + other.refused,
        )


def _insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT, which has ``on_conflict_do_nothing`` / ``_do_update``."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(
        f"idempotent upsert is implemented for SQLite and PostgreSQL, not {dialect}"
    )


def _json(values: dict[str, float]) -> str:
    return msgspec.json.encode(values).decode()


def prediction_row(log: PredictionLog, *, keep_thumbnail: bool = True) -> dict[str, Any]:
    """The ``predictions`` row of one validated log (arrays as little-endian bytes).

    ``pixel_stats`` and ``tags`` are JSON text; ``ingested_at`` is set by :func:`insert_predictions`.
    """
    if log.probabilities is not None:
        probs = array("f", log.probabilities)  # plain Python: ~10 values, numpy costs more
    else:
        probs = array("f", log.probability_vector().tolist())
    if sys.byteorder == "big":
        probs.byteswap()
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
        "n_classes": len(probs),
        "confidence": max(probs),
        "probs": probs.tobytes(),
        "embedding": emb_bytes,
        "embedding_dtype": emb_dtype,
        "pixel_stats": None if log.pixel_stats is None else _json(log.pixel_stats),
        "thumbnail": base64.b64decode(log.thumbnail) if keep_thumbnail and log.thumbnail else None,
        "latency_ms": log.latency_ms,
        "arm": log.arm,
        "tags": None if log.tags is None else msgspec.json.encode(log.tags).decode(),
        "label": log.label,
    }


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
        {
            "model": e.model,
            "request_id": e.request_id,
            "label": e.label,
            "ts": e.timestamp,
            "received_at": now,
        }
        for e in latest.values()
    ]
    stmt = _insert(session, Label)
    stmt = stmt.on_conflict_do_update(
        index_elements=["model", "request_id"],
        set_={
            "label": stmt.excluded.label,
            "ts": stmt.excluded.ts,
            "received_at": stmt.excluded.received_at,
        },
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


_COLUMNS = (
    "model",
    "model_version",
    "request_id",
    "ts",
    "ingested_at",
    "predicted_class",
    "n_classes",
    "confidence",
    "probs",
    "embedding",
    "embedding_dtype",
    "pixel_stats",
    "thumbnail",
    "latency_ms",
    "arm",
    "tags",
    "label",
)
assert _COLUMNS[3:5] == ("ts", "ingested_at") and _COLUMNS[-1] == "label"


def _sqlite_time(value: datetime) -> str:
    # The text SQLAlchemy's SQLite DateTime stores (naive UTC, as UTCDateTime binds it).
    if value.tzinfo is UTC:  # the common case, no conversion: "YYYY-MM-DD HH:MM:SS.ffffff"
        return value.isoformat(" ", "microseconds")[:26]
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


_HEAD = itemgetter(*_COLUMNS[:3])
_TAIL = itemgetter(*_COLUMNS[5:])
_KEY = itemgetter("model", "request_id")


def _execute_insert(session: Session, rows: list[dict[str, Any]], now: datetime) -> int:
    """``INSERT .. ON CONFLICT DO NOTHING`` of ``rows`` (SQLite: executemany; PostgreSQL:
    :mod:`~monitor.store.pg_copy`) stamped ``ingested_at=now``, their streams registered; a row
    without a label takes the one in ``labels`` (the late-label join, in the same statement).

    The hot path of ingest: SQLAlchemy's per-row parameter processing cost more than the
    database itself, so values are prepared here exactly as the column types would bind them.
    Returns the number of rows inserted.
    """
    streams = {(r["model"], r["model_version"], stream_arm(r["arm"])) for r in rows}
    register_streams(session, streams)
    dialect = session.get_bind().dialect.name
    names = ", ".join(_COLUMNS)
    join = "(SELECT label FROM labels WHERE model = {m} AND request_id = {r})"
    if dialect == "sqlite":
        # numbered parameters: the join reuses ?1 (model) and ?3 (request_id)
        marks = ", ".join(f"?{i}" for i in range(1, len(_COLUMNS)))
        marks += f", COALESCE(?{len(_COLUMNS)}, {join.format(m='?1', r='?3')})"
        stamp: Any = _sqlite_time(now)
        params = [(*_HEAD(r), _sqlite_time(r["ts"]), stamp, *_TAIL(r)) for r in rows]
    elif dialect == "postgresql":  # COPY, then one INSERT .. SELECT (monitor.store.pg_copy)
        return copy_insert(
            session.connection(), _COLUMNS, ((*_HEAD(r), r["ts"], now, *_TAIL(r)) for r in rows)
        )
    else:
        raise NotImplementedError(f"ingest writes SQLite and PostgreSQL, not {dialect}")
    sql = (
        f"INSERT INTO predictions ({names}) VALUES ({marks}) "
        "ON CONFLICT (model, request_id) DO NOTHING"
    )
    result = session.connection().exec_driver_sql(sql, params)
    return max(int(result.rowcount), 0)


def insert_predictions(
    session: Session,
    logs: Sequence[PredictionLog] = (),
    *,
    rows: Sequence[dict[str, Any]] = (),
    keep_thumbnails: bool = True,
) -> tuple[int, SeriesCounts]:
    """Insert ``logs`` (and ready-made ``rows`` of :func:`prediction_row`'s shape) once each;
    a label stored earlier is joined in as the row is written.

    Returns ``(rows inserted, inserted rows per (model, version, arm))``; the rest were
    duplicates of rows already stored (or repeated within the batch).
    """
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        unique.setdefault((row["model"], row["request_id"]), row)
    for log in logs:
        if (log.model, log.request_id) not in unique:
            unique[(log.model, log.request_id)] = prediction_row(
                log, keep_thumbnail=keep_thumbnails
            )
    if not unique:
        return 0, Counter()
    batch = list(unique.values())
    now = utcnow()
    inserted = _execute_insert(session, batch, now)
    if inserted == len(batch):
        series: SeriesCounts = Counter(
            (r["model"], r["model_version"], r["arm"] or "all") for r in batch
        )
        return inserted, series
    # Some were stored before (a replayed batch): the new rows are those stamped just now.
    mine = _stamped(session, list(unique), now)
    series = Counter(
        (r["model"], r["model_version"], r["arm"] or "all")
        for key, r in unique.items()
        if key in mine
    )
    return sum(series.values()), series


def _stamped(
    session: Session, keys: Sequence[tuple[str, str]], ingested_at: datetime
) -> set[tuple[str, str]]:
    by_model: dict[str, list[str]] = {}
    for model, request_id in keys:
        by_model.setdefault(model, []).append(request_id)
    stmt = select(Prediction.model, Prediction.request_id).where(
        Prediction.model == bindparam("model"),
        Prediction.request_id.in_(bindparam("ids", expanding=True)),
        Prediction.ingested_at == ingested_at,
    )
    found: set[tuple[str, str]] = set()
    for model, ids in by_model.items():
        for start in range(0, len(ids), 10_000):
            found.update(
                (m, r)
                for m, r in session.execute(
                    stmt, {"model": model, "ids": ids[start : start + 10_000]}
                )
            )
    return found


def write_batch(
    session: Session,
    logs: Sequence[PredictionLog],
    labels: Sequence[LabelEvent] = (),
    *,
    rows: Sequence[dict[str, Any]] = (),
    keep_thumbnails: bool = True,
) -> WriteCounts:
    """Write one batch of ready-made ``rows`` and validated ``logs`` (in that order) and
    labels; safe to replay.

    Labels go first so a label and its prediction in the same batch join. A row that breaks
    its model's pinned shape (:mod:`monitor.store.shapes`), or repeats a request id with other
    content than the log stored (or kept earlier in the batch), is not stored but reported in
    ``refused``; an exact repeat is a harmless duplicate.
    """
    n_labels, joined = upsert_labels(session, labels)
    batch = [*rows, *(prediction_row(log, keep_thumbnail=keep_thumbnails) for log in logs)]
    refused = _screen(session, batch)
    gone = {i for i, _, _ in refused}
    firsts: dict[tuple[str, str], int] = {}
    for i, row in enumerate(batch):
        if i not in gone:
            firsts.setdefault(_KEY(row), i)
    now = utcnow()
    inserted = _execute_insert(session, [batch[i] for i in firsts.values()], now) if firsts else 0
    new = set(firsts) if inserted == len(firsts) else _stamped(session, list(firsts), now)
    before = (
        stored_content(session, [k for k in firsts if k not in new])
        if inserted < len(firsts)
        else {}
    )
    for i, row in enumerate(batch):
        key = _KEY(row)
        if i in gone or (i == firsts[key] and key in new):
            continue
        reference = batch[firsts[key]] if key in new else before.get(key, row)
        if not same(reference, row):
            refused.append((i, "conflicting_duplicate", conflict(row)))
    series: SeriesCounts = Counter(
        (r["model"], r["model_version"], r["arm"] or "all") for r in (batch[firsts[k]] for k in new)
    )
    return WriteCounts(
        stored=len(new),
        duplicates=len(batch) - len(new) - len(refused),
        labels=n_labels,
        labels_joined=joined,
        by_series=series,
        refused=tuple(sorted(refused)),
    )


def _screen(session: Session, batch: Sequence[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """Pin the shape of each model seen for the first time; rows that break theirs."""
    shapes = [row_shape(row) for row in batch]
    first: dict[str, Shape] = {}
    for row, shape in zip(batch, shapes, strict=True):
        first.setdefault(row["model"], shape)
    pinned = pin_shapes(session, first)
    refused = []
    for i, (row, shape) in enumerate(zip(batch, shapes, strict=True)):
        expected = pinned[row["model"]]
        if shape != expected and (why := mismatch(row["model"], expected, shape)) is not None:
            refused.append((i, "shape_mismatch", why))
    return refused


def pin_shapes(session: Session, first: dict[str, Shape]) -> dict[str, Shape]:
    """The pinned shape of each model in ``first``, pinning ``first[model]`` where none is
    (and its embedding dimension where only the class count was pinned so far)."""
    stmt = select(ModelShape).where(ModelShape.model.in_(list(first)))
    have = {s.model: s for s in session.scalars(stmt)}
    new = [
        {"model": m, "n_classes": n, "embedding_dim": d, "pinned_at": utcnow()}
        for m, (n, d) in first.items()
        if m not in have
    ]
    if new:  # two workers may pin the same model at once: the first insert wins
        session.execute(_insert(session, ModelShape).on_conflict_do_nothing(), new)
    for m, (_n, d) in first.items():
        if m in have and have[m].embedding_dim is None and d is not None:
            session.execute(
                update(ModelShape)
                .where(ModelShape.model == m, ModelShape.embedding_dim.is_(None))
                .values(embedding_dim=d)
            )
    session.expire_all()
    return {s.model: (s.n_classes, s.embedding_dim) for s in session.scalars(stmt)}


def probe_writable(session: Session) -> None:
    """Raise unless ``session`` can start writing ``predictions`` right now (an UPDATE of no
    row: it takes SQLite's write lock and fails on a read-only PostgreSQL). The caller rolls
    back."""
    session.execute(update(Prediction).where(Prediction.id < 0).values(label=Prediction.label))


def delete_older_than(session: Session, cutoff: datetime) -> tuple[int, int]:
    """Retention: delete predictions and labels with a timestamp before ``cutoff``.

    Returns ``(predictions deleted, labels deleted)``.
    """
    conn = session.connection()
    preds = conn.execute(delete(Prediction).where(Prediction.ts < cutoff))
    labels = conn.execute(delete(Label).where(Label.ts < cutoff))
    return max(int(preds.rowcount), 0), max(int(labels.rowcount), 0)
