"""Queries over the registry's model versions that the monitor reads."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.retrain_tables import ModelVersion


def promoted_version(session: Session, model: str) -> ModelVersion | None:
    """The promoted version serving ``model`` (the newest promoted one), or None."""
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.model == model, ModelVersion.state == "promoted")
        .order_by(ModelVersion.id.desc())
        .limit(1)
    )
