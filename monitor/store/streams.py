"""The stream registry: every (model, version, arm) that has logged, one row each.

Window closing asks "which streams have logs after their last window?" every tick. Answered
from ``predictions`` alone, that is a scan of the whole table (measured: a sequential scan at
10 million logs, tests/test_store_at_scale.py). Instead ingest registers each stream once
(``INSERT .. ON CONFLICT DO NOTHING``: no row lock, so parallel writers never wait on each
other), and the evaluator probes each registered stream with one index lookup past its last
window (:func:`newer_logs_probe`, on ``ix_predictions_stream_id``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, bindparam, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from monitor.store.arms import logs_of_arm, logs_of_stream_arm
from monitor.store.base import Base, UTCDateTime, utcnow
from monitor.store.tables import Prediction, Window


class Stream(Base):
    """One (model, version, arm) that has logged."""

    __tablename__ = "streams"

    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(128), primary_key=True)
    arm: Mapped[str] = mapped_column(String(16), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def register_streams(session: Session, keys: Iterable[tuple[str, str, str]]) -> None:
    """Record the streams ``(model, version, arm or NO_ARM)`` of a batch; known ones are kept."""
    rows = [{"model": m, "model_version": v, "arm": a} for m, v, a in set(keys)]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(insert(Stream).on_conflict_do_nothing(), rows)


def newer_logs_probe(model: str, version: str, arm: str, after_id: int) -> Select[Any]:
    """One row if the stream has a log with an id above ``after_id`` (an index lookup)."""
    return (
        select(literal(1))
        .where(
            Prediction.model == model,
            Prediction.model_version == version,
            logs_of_stream_arm(arm),
            Prediction.id > after_id,
        )
        .limit(1)
    )


def streams_with_new_logs(
    session: Session, models: Collection[str] | None = None
) -> list[tuple[str, str, str, int]]:
    """Registered streams (of ``models``, if given) with logs after their last window:
    ``(model, version, arm or NO_ARM, last window's last_id or 0)``, in stream order."""
    stmt = select(Stream.model, Stream.model_version, Stream.arm).order_by(
        Stream.model, Stream.model_version, Stream.arm
    )
    last_ids = select(
        Window.model, Window.model_version, Window.arm, func.max(Window.last_id)
    ).group_by(Window.model, Window.model_version, Window.arm)
    if models is not None:
        stmt = stmt.where(Stream.model.in_(list(models)))
        last_ids = last_ids.where(Window.model.in_(list(models)))
    last = {(m, v, a): int(n) for m, v, a, n in session.execute(last_ids).all()}
    found = []
    for model, version, arm in session.execute(stmt).all():
        after = last.get((model, version, arm), 0)
        if session.execute(newer_logs_probe(model, version, arm, after)).first():
            found.append((model, version, arm, after))
    return found


def registered_models(session: Session) -> list[str]:
    """Every model that has logged."""
    return list(session.scalars(select(Stream.model).distinct().order_by(Stream.model)))


def pending_logs_query(
    model: str, version: str, arm: str | None, limit: int, settled_before: datetime | None
) -> Select[Any]:
    """The next ``limit`` logs of a stream after the id bound as ``after_id``, oldest first,
    each with a flag saying it is too fresh to close a window on."""
    # compared in SQL: a flag per row instead of decoding every ingested_at in Python
    fresh: ColumnElement[bool] = (
        literal(False) if settled_before is None else Prediction.ingested_at > settled_before
    )
    return (
        select(Prediction.id, Prediction.ts, fresh.label("fresh"))
        .where(
            Prediction.model == model,
            Prediction.model_version == version,
            logs_of_arm(arm),
            Prediction.id > bindparam("after_id"),
        )
        .order_by(Prediction.id)
        .limit(limit)
    )
