"""Queries of the impact tables (SQL only; the caller owns the transaction).

Window logs are addressed like :func:`monitor.store.logs.load_window` does (ids
``first_id..last_id`` of the window's model, version and arm, in id order), so the ids read here
line up row for row with the batch the detectors scored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.store.arms import logs_of_stream_arm
from monitor.store.impact_tables import (
    ImpactProfileRow,
    LabelQueueRow,
    LogScoreRow,
    WindowEstimateRow,
)
from monitor.store.logs import _COLUMNS, rows_to_batch
from monitor.store.tables import Prediction, Window


def _in_window(window: Window) -> tuple[Any, ...]:
    arm = logs_of_stream_arm(window.arm)
    return (
        Prediction.model == window.model,
        Prediction.model_version == window.model_version,
        Prediction.id.between(window.first_id, window.last_id),
        arm,
    )


def window_prediction_ids(session: Session, window: Window) -> np.ndarray:
    """The prediction ids of ``window``, in the order its batch has them."""
    ids = session.scalars(select(Prediction.id).where(*_in_window(window)).order_by(Prediction.id))
    return np.fromiter(ids, dtype=np.int64)


def window_labels(session: Session, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """(predicted class, label or -1) of every log of ``window``, as they are now."""
    rows = session.execute(
        select(Prediction.predicted_class, Prediction.label).where(*_in_window(window))
    ).all()
    predicted = np.array([r[0] for r in rows], dtype=np.int64)
    labels = np.array([-1 if r[1] is None else r[1] for r in rows], dtype=np.int64)
    return predicted, labels


def save_impact_profile(session: Session, row: ImpactProfileRow) -> None:
    """Store (or replace) the impact profile of ``row.profile_id``."""
    session.merge(row)
    session.flush()


def impact_profile_row(session: Session, profile_id: int) -> ImpactProfileRow | None:
    return session.get(ImpactProfileRow, profile_id)


def save_estimate(session: Session, row: WindowEstimateRow) -> None:
    """Store (or replace) a window's estimate."""
    session.merge(row)
    session.flush()


def window_estimate(session: Session, window_id: int) -> WindowEstimateRow | None:
    return session.get(WindowEstimateRow, window_id)


def save_log_scores(
    session: Session,
    window_id: int,
    ids: np.ndarray,
    calibrated: np.ndarray,
    outlier: np.ndarray | None,
) -> int:
    """Replace the per-log scores of ``window_id``; returns how many were written."""
    session.execute(delete(LogScoreRow).where(LogScoreRow.window_id == window_id))
    scores: Sequence[float | None] = (
        [None] * len(ids)
        if outlier is None
        else [None if not np.isfinite(v) else float(v) for v in outlier]
    )
    rows = [
        {
            "prediction_id": int(pid),
            "window_id": window_id,
            "calibrated_confidence": float(c),
            "outlier_score": s,
        }
        for pid, c, s in zip(ids, calibrated, scores, strict=True)
    ]
    if rows:
        session.execute(insert(LogScoreRow), rows)
    return len(rows)


def estimates_to_refresh(
    session: Session, since: datetime, limit: int
) -> list[tuple[WindowEstimateRow, Window]]:
    """Up to ``limit`` estimates of windows ending after ``since`` that still miss labels (late
    labels may have arrived), least recently updated first, with their windows."""
    stmt = (
        select(WindowEstimateRow, Window)
        .join(Window, Window.id == WindowEstimateRow.window_id)
        .where(
            WindowEstimateRow.window_end >= since,
            WindowEstimateRow.n_labelled < WindowEstimateRow.n,
        )
        .order_by(WindowEstimateRow.updated_at, WindowEstimateRow.window_id)
        .limit(limit)
    )
    return [(est, win) for est, win in session.execute(stmt).tuples()]


def estimates(
    session: Session,
    model: str,
    *,
    version: str | None = None,
    arm: str | None = None,
    limit: int = 500,
) -> list[WindowEstimateRow]:
    """The newest ``limit`` estimates of ``model`` (and ``version``, ``arm``), oldest first."""
    stmt = select(WindowEstimateRow).where(WindowEstimateRow.model == model)
    if version is not None:
        stmt = stmt.where(WindowEstimateRow.model_version == version)
    if arm is not None:
        stmt = stmt.where(WindowEstimateRow.arm == arm)
    stmt = stmt.order_by(WindowEstimateRow.window_end.desc(), WindowEstimateRow.window_id.desc())
    return list(session.scalars(stmt.limit(limit)))[::-1]


#: The columns of a scored log as the worst-images views and the label queue read them.
SCORED_COLUMNS = (
    Prediction.id,
    Prediction.request_id,
    Prediction.model_version,
    Prediction.ts,
    Prediction.predicted_class,
    Prediction.confidence,
    Prediction.label,
    Prediction.thumbnail,
    LogScoreRow.window_id,
    LogScoreRow.calibrated_confidence,
    LogScoreRow.outlier_score,
)


def worst_logs(session: Session, window_id: int, n: int) -> list[Any]:
    """The ``n`` logs of ``window_id`` with the highest outlier score (lowest calibrated
    confidence first when no log has one)."""
    stmt = (
        select(*SCORED_COLUMNS)
        .join(Prediction, Prediction.id == LogScoreRow.prediction_id)
        .where(LogScoreRow.window_id == window_id)
        .order_by(
            LogScoreRow.outlier_score.is_(None),
            LogScoreRow.outlier_score.desc(),
            LogScoreRow.calibrated_confidence,
        )
        .limit(n)
    )
    return list(session.execute(stmt).all())


def label_candidates(session: Session, model: str, version: str, order: str, n: int) -> list[Any]:
    """Unlabelled, not yet queued scored logs of ``model``/``version``: the ``n`` least
    confident (``order="uncertain"``) or the ``n`` most unusual (``order="unusual"``)."""
    queued = select(LabelQueueRow.request_id).where(LabelQueueRow.model == model)
    key = (
        (LogScoreRow.calibrated_confidence,)
        if order == "uncertain"
        else (LogScoreRow.outlier_score.is_(None), LogScoreRow.outlier_score.desc())
    )
    stmt = (
        select(*SCORED_COLUMNS)
        .join(Prediction, Prediction.id == LogScoreRow.prediction_id)
        .where(
            Prediction.model == model,
            Prediction.model_version == version,
            Prediction.label.is_(None),
            Prediction.request_id.not_in(queued),
        )
        .order_by(*key, Prediction.id)
        .limit(n)
    )
    return list(session.execute(stmt).all())


def queue_for_labelling(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Record exported logs in the label queue (keys ``model, request_id, prediction_id,
    model_version, reason, priority, queued_at``)."""
    if rows:
        session.execute(insert(LabelQueueRow), list(rows))


def queued_prediction_ids(session: Session, model: str) -> set[int]:
    """Prediction ids of ``model`` that were queued for labelling."""
    return set(
        session.scalars(select(LabelQueueRow.prediction_id).where(LabelQueueRow.model == model))
    )


def logs_with_thumbnails(
    session: Session,
    model: str,
    version: str,
    start: datetime | None,
    end: datetime | None,
    *,
    arm: str | None = None,
    ingested_before: datetime | None = None,
    limit: int = 2000,
) -> tuple[np.ndarray, list[Any], LogBatch] | None:
    """(prediction ids, rows of ``(request_id, confidence, thumbnail)``, batch) of the
    newest ``limit`` logs with a thumbnail in a range (stored by ``ingested_before``); None when
    there are none."""
    stmt = select(
        *_COLUMNS, Prediction.request_id, Prediction.confidence, Prediction.thumbnail
    ).where(
        Prediction.model == model,
        Prediction.model_version == version,
        Prediction.thumbnail.is_not(None),
    )
    if start is not None:
        stmt = stmt.where(Prediction.ts >= start)
    if end is not None:
        stmt = stmt.where(Prediction.ts < end)
    if arm is not None:
        stmt = stmt.where(logs_of_stream_arm(arm))
    if ingested_before is not None:
        stmt = stmt.where(Prediction.ingested_at <= ingested_before)
    rows = session.connection().execute(stmt.order_by(Prediction.id.desc()).limit(limit)).all()
    if not rows:
        return None
    width = len(_COLUMNS)
    batch = rows_to_batch([r[:width] for r in rows])
    extra = [tuple(r[width:]) for r in rows]
    return np.array([r[0] for r in rows], dtype=np.int64), extra, batch
