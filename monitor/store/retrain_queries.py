"""The reads behind the API's retrain resources."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.retrain_tables import CanaryReport


def latest_gate_report(session: Session, model: str, version: str) -> CanaryReport | None:
    """The newest offline gate report of candidate ``version`` of ``model``."""
    return session.scalar(
        select(CanaryReport)
        .where(CanaryReport.model == model, CanaryReport.candidate_version == version)
        .order_by(CanaryReport.id.desc())
        .limit(1)
    )
