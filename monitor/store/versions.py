"""The model registry's SQL: versions by model and state, and the audit trail."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.retrain_tables import ModelVersion, RegistryEvent


def promoted_version(session: Session, model: str) -> ModelVersion | None:
    """The promoted version serving ``model`` (the newest promoted one), or None."""
    return session.scalar(
        select(ModelVersion)
        .where(ModelVersion.model == model, ModelVersion.state == "promoted")
        .order_by(ModelVersion.id.desc())
        .limit(1)
    )


def version_row(session: Session, model: str, version: str) -> ModelVersion | None:
    """Version ``version`` of ``model``, or None."""
    return session.scalar(
        select(ModelVersion).where(ModelVersion.model == model, ModelVersion.version == version)
    )


def all_versions(session: Session, model: str | None = None) -> list[ModelVersion]:
    """Every version (of ``model``, when given), the newest first."""
    query = select(ModelVersion).order_by(ModelVersion.id.desc())
    if model is not None:
        query = query.where(ModelVersion.model == model)
    return list(session.scalars(query))


def newest_events(session: Session, model: str, limit: int) -> list[RegistryEvent]:
    """The newest ``limit`` events of the audit trail of ``model``, the newest first."""
    return list(
        session.scalars(
            select(RegistryEvent)
            .where(RegistryEvent.model == model)
            .order_by(RegistryEvent.id.desc())
            .limit(limit)
        )
    )
