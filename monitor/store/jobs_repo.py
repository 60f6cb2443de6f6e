"""The retraining job queue's SQL: a job by trigger key, the next queued one, stale and recent jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.retrain_tables import RetrainJob


def job_by_trigger(session: Session, trigger_key: str) -> RetrainJob | None:
    """The job a trigger key already made, or None."""
    return session.scalar(select(RetrainJob).where(RetrainJob.trigger_key == trigger_key))


def lock_next_queued(session: Session, model: str | None = None) -> RetrainJob | None:
    """The oldest queued job (of ``model``, when given), row-locked on PostgreSQL."""
    query = select(RetrainJob).where(RetrainJob.state == "queued").order_by(RetrainJob.id)
    if model is not None:
        query = query.where(RetrainJob.model == model)
    return session.scalar(query.limit(1).with_for_update(skip_locked=True))


def running_since(session: Session, older_than: datetime) -> Sequence[RetrainJob]:
    """The ``running`` jobs not updated since ``older_than``."""
    return session.scalars(
        select(RetrainJob).where(RetrainJob.state == "running", RetrainJob.updated_at < older_than)
    ).all()


def recent_jobs(session: Session, model: str | None = None, limit: int = 50) -> list[RetrainJob]:
    """The newest jobs first (of ``model``, when given)."""
    query = select(RetrainJob).order_by(RetrainJob.id.desc()).limit(limit)
    if model is not None:
        query = query.where(RetrainJob.model == model)
    return list(session.scalars(query))


def first_job_from(session: Session, model: str, source: str) -> RetrainJob | None:
    """The oldest job of ``model`` that ``source`` queued."""
    return session.scalars(
        select(RetrainJob)
        .where(RetrainJob.model == model, RetrainJob.source == source)
        .order_by(RetrainJob.id)
        .limit(1)
    ).first()
