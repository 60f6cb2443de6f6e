"""The windows' SQL: which models have windows in a state, claiming and settling windows."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from monitor.store.tables import Prediction, Window
from monitor.vocabulary import WindowState


def models_with_windows_in(session: Session, state: WindowState) -> list[str]:
    """The models that have a window in ``state``."""
    return list(session.scalars(select(Window.model).where(Window.state == state).distinct()))


def lock_windows_in(
    session: Session,
    state: WindowState,
    *,
    models: Collection[str] | None = None,
    limit: int | None = None,
) -> list[Window]:
    """Windows in ``state`` (of ``models``, at most ``limit``), oldest first; row-locked on
    PostgreSQL, skipping the rows another evaluator holds."""
    stmt = select(Window).where(Window.state == state).order_by(Window.id)
    if models is not None:
        stmt = stmt.where(Window.model.in_(list(models)))
    if limit is not None:
        stmt = stmt.limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt).all())


def move_version_windows(
    session: Session, model: str, version: str, old: WindowState, new: WindowState
) -> int:
    """Move the windows of a model version from state ``old`` to ``new``, clearing their
    evaluation time; returns how many."""
    result = session.execute(
        update(Window)
        .where(Window.model == model, Window.model_version == version, Window.state == old)
        .values(state=new, evaluated_at=None)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def latest_arm_window(session: Session, model: str, arm: str) -> Window | None:
    """The window of ``model``'s ``arm`` that ended last."""
    return session.scalars(
        select(Window)
        .where(Window.model == model, Window.arm == arm)
        .order_by(Window.end_ts.desc())
        .limit(1)
    ).first()


def earliest_start(session: Session, window_ids: Collection[int]) -> datetime | None:
    """When the first of the windows ``window_ids`` began (None when there are none)."""
    first: datetime | None = session.scalars(
        select(Window.start_ts).where(Window.id.in_(list(window_ids))).order_by(Window.start_ts)
    ).first()
    return first


def windows_except(session: Session, window_ids: Collection[int]) -> list[Window]:
    """Every window whose id is not in ``window_ids``."""
    return list(session.scalars(select(Window).where(Window.id.not_in(list(window_ids)))))


def all_windows(session: Session) -> list[Window]:
    """Every window, oldest first."""
    return list(session.scalars(select(Window).order_by(Window.id)))


def count_logs(session: Session) -> int:
    """How many prediction logs are stored."""
    return session.scalar(select(func.count()).select_from(Prediction)) or 0
