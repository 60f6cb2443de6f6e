"""The reads behind the scrape-time Prometheus gauges: latest results, windows, arms, logs.

Each read is bounded (latest row per key, or ``limit`` rows) and returns plain rows.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from monitor.store.arms import logs_of_stream_arm
from monitor.store.retrain_tables import ModelVersion
from monitor.store.tables import DriftResultRow, Prediction, Window


def latest_results(session: Session, since: datetime) -> list[DriftResultRow]:
    """The newest result of each (model, version, arm, family) created since ``since``."""
    latest = (
        select(
            DriftResultRow.model,
            DriftResultRow.model_version,
            DriftResultRow.arm,
            DriftResultRow.family,
            func.max(DriftResultRow.id).label("id"),
        )
        .where(DriftResultRow.created_at >= since)
        .group_by(
            DriftResultRow.model,
            DriftResultRow.model_version,
            DriftResultRow.arm,
            DriftResultRow.family,
        )
        .subquery()
    )
    return list(
        session.scalars(select(DriftResultRow).join(latest, DriftResultRow.id == latest.c.id))
    )


def last_evaluated_ends(
    session: Session, since: datetime
) -> list[tuple[str, str, str, datetime | None]]:
    """(model, version, arm, last window end) of the windows evaluated since ``since``."""
    rows = session.execute(
        select(Window.model, Window.model_version, Window.arm, func.max(Window.end_ts))
        .where(
            and_(Window.evaluated_at.is_not(None), Window.state == "evaluated"),
            Window.evaluated_at >= since,
        )
        .group_by(Window.model, Window.model_version, Window.arm)
    )
    return [(m, v, a, end) for m, v, a, end in rows]


def versions_in(session: Session, states: Collection[str]) -> list[ModelVersion]:
    """The registered versions in ``states``."""
    return list(session.scalars(select(ModelVersion).where(ModelVersion.state.in_(states))))


def last_log_times(session: Session) -> list[tuple[str, datetime | None]]:
    """(model, newest log timestamp) of every model."""
    rows = session.execute(
        select(Prediction.model, func.max(Prediction.ts)).group_by(Prediction.model)
    )
    return [(m, last) for m, last in rows]


def latest_done_windows(session: Session, since: datetime, limit: int) -> list[Window]:
    """The latest window of each (model, version, arm) processed since ``since`` (evaluated or
    found without a profile), the latest ending first, at most ``limit``."""
    done = and_(Window.state.in_(("evaluated", "no_profile")), Window.evaluated_at >= since)
    latest = (
        select(func.max(Window.id).label("id"))
        .where(done)
        .group_by(Window.model, Window.model_version, Window.arm)
        .subquery()
    )
    return list(
        session.scalars(
            select(Window)
            .join(latest, Window.id == latest.c.id)
            .order_by(Window.end_ts.desc())
            .limit(limit)
        ).all()
    )


def arm_log_figures(
    session: Session, w: Window
) -> list[tuple[int, float, float | None, int | None, int]]:
    """(predicted class, confidence, latency ms, label, class count) of ``w``'s logs."""
    rows = session.execute(
        select(
            Prediction.predicted_class,
            Prediction.confidence,
            Prediction.latency_ms,
            Prediction.label,
            Prediction.n_classes,
        ).where(
            Prediction.model == w.model,
            Prediction.model_version == w.model_version,
            Prediction.id.between(w.first_id, w.last_id),
            logs_of_stream_arm(w.arm),
        )
    ).all()
    return [(p, c, lat, lab, n) for p, c, lat, lab, n in rows]
