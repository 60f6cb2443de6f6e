"""The canary rollouts' SQL: running, recent and latest rollouts, and a rollout's steps."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.retrain_tables import Rollout, RolloutStep


def running_rollouts(session: Session, model: str | None = None) -> list[Rollout]:
    """The running rollouts (of ``model``, when given), oldest first."""
    query = select(Rollout).where(Rollout.state == "running").order_by(Rollout.id)
    if model is not None:
        query = query.where(Rollout.model == model)
    return list(session.scalars(query))


def rollout_steps(session: Session, rollout_id: int) -> list[RolloutStep]:
    """The steps a rollout took, in order."""
    return list(
        session.scalars(
            select(RolloutStep)
            .where(RolloutStep.rollout_id == rollout_id)
            .order_by(RolloutStep.step_index)
        )
    )


def recent_rollouts(
    session: Session, model: str | None = None, state: str | None = None, limit: int = 50
) -> list[Rollout]:
    """Rollouts (of ``model``, in ``state``, when given), newest first."""
    query = select(Rollout).order_by(Rollout.id.desc()).limit(limit)
    if model is not None:
        query = query.where(Rollout.model == model)
    if state is not None:
        query = query.where(Rollout.state == state)
    return list(session.scalars(query))


def latest_rollout_per_model(session: Session) -> list[Rollout]:
    """Each model's newest rollout."""
    latest = select(func.max(Rollout.id)).group_by(Rollout.model)
    return list(session.scalars(select(Rollout).where(Rollout.id.in_(latest))))
