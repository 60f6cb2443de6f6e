"""Retraining's reads: the gate's reports and the labelled thumbnails a model trains on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.impact_tables import LabelQueueRow
from monitor.store.retrain_tables import CanaryReport
from monitor.store.tables import Label, Prediction

#: (prediction id, thumbnail, the prediction's own label, the joined label)
LabelledRow = tuple[int, bytes, int | None, int | None]


def latest_gate_report(session: Session, model: str, version: str) -> CanaryReport | None:
    """The newest offline gate report of candidate ``version`` of ``model``."""
    return session.scalar(
        select(CanaryReport)
        .where(CanaryReport.model == model, CanaryReport.candidate_version == version)
        .order_by(CanaryReport.id.desc())
        .limit(1)
    )


def labelled_thumbnails(
    session: Session,
    model: str,
    *,
    since: datetime | None,
    until: datetime | None,
    limit: int,
) -> list[LabelledRow]:
    """The newest ``limit`` labelled predictions of ``model`` with a thumbnail, oldest first.

    Logs exported for labelling come first before ``limit`` cuts; a label comes from the
    prediction row or from the ``labels`` table.
    """
    query = (
        select(Prediction.id, Prediction.thumbnail, Prediction.label, Label.label)
        .outerjoin(
            Label, (Label.model == Prediction.model) & (Label.request_id == Prediction.request_id)
        )
        .where(Prediction.model == model, Prediction.thumbnail.is_not(None))
        .outerjoin(
            LabelQueueRow,
            (LabelQueueRow.model == Prediction.model)
            & (LabelQueueRow.request_id == Prediction.request_id),
        )
        .where(Prediction.label.is_not(None) | Label.label.is_not(None))
        .order_by(LabelQueueRow.request_id.is_(None), Prediction.id.desc())
        .limit(limit)
    )
    if since is not None:
        query = query.where(Prediction.ts >= since)
    if until is not None:
        query = query.where(Prediction.ts < until)
    rows = [(r[0], r[1] or b"", r[2], r[3]) for r in session.execute(query)]  # never None
    return sorted(rows, key=lambda r: r[0])
