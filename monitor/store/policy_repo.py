"""The drift policy's SQL: its state rows, its transitions, and the windows it decides on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.store.alerting_tables import PolicyStateRow, PolicyTransitionRow
from monitor.store.tables import Window


def retrains_since(session: Session, model: str, since: datetime) -> list[datetime]:
    """When the policy asked to retrain ``model`` after ``since``."""
    return list(
        session.scalars(
            select(PolicyTransitionRow.at).where(
                PolicyTransitionRow.model == model,
                PolicyTransitionRow.retrain.is_(True),
                PolicyTransitionRow.at > since,
            )
        )
    )


def version_states(session: Session, model: str, version: str) -> list[PolicyStateRow]:
    """The policy's state rows of one model version (one per family)."""
    return list(
        session.scalars(
            select(PolicyStateRow).where(
                PolicyStateRow.model == model, PolicyStateRow.model_version == version
            )
        )
    )


def other_versions_in(
    session: Session, model: str, version: str, states: tuple[str, ...]
) -> list[PolicyStateRow]:
    """The state rows of ``model``'s versions other than ``version`` that are in ``states``."""
    return list(
        session.scalars(
            select(PolicyStateRow).where(
                PolicyStateRow.model == model,
                PolicyStateRow.model_version != version,
                PolicyStateRow.state.in_(states),
            )
        )
    )


def all_states(session: Session) -> list[PolicyStateRow]:
    """Every state row of the policy."""
    return list(session.scalars(select(PolicyStateRow)))


def all_transitions(session: Session) -> list[PolicyTransitionRow]:
    """Every transition the policy made, oldest first."""
    return list(session.scalars(select(PolicyTransitionRow).order_by(PolicyTransitionRow.id)))


def latest_window(session: Session, model: str, version: str) -> Window | None:
    """The newest window of a model version."""
    return session.scalars(
        select(Window)
        .where(Window.model == model, Window.model_version == version)
        .order_by(Window.id.desc())
        .limit(1)
    ).first()
