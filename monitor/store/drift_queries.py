"""The reads behind the API's models resource: models seen, drift results, policy transitions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from monitor.store.alerting_tables import PolicyStateRow, PolicyTransitionRow
from monitor.store.tables import DriftResultRow, Window

RESULT_COLUMNS = (
    DriftResultRow.id,
    DriftResultRow.window_id,
    DriftResultRow.model_version,
    DriftResultRow.arm,
    DriftResultRow.family,
    DriftResultRow.window_end,
    DriftResultRow.kind,
    DriftResultRow.method,
    DriftResultRow.statistic,
    DriftResultRow.p_value,
    DriftResultRow.effect_size,
    DriftResultRow.threshold,
    DriftResultRow.drifted,
    DriftResultRow.n_ref,
    DriftResultRow.n_cur,
    DriftResultRow.details,
)
RESULT_KEYS = (
    "id",
    "window_id",
    "version",
    "arm",
    "family",
    "window_end",
    "kind",
    "method",
    "statistic",
    "p_value",
    "effect_size",
    "threshold",
    "drifted",
    "n_ref",
    "n_cur",
    "features",
)


def model_versions(session: Session) -> list[tuple[str, str, int, datetime | None]]:
    """(model, version, windows, last window end) of every model version seen."""
    rows = session.execute(
        select(Window.model, Window.model_version, func.count(), func.max(Window.end_ts))
        .group_by(Window.model, Window.model_version)
        .order_by(Window.model, Window.model_version)
    ).all()
    return [(m, v, int(n), end) for m, v, n, end in rows]


def policy_states(session: Session) -> dict[tuple[str, str], dict[str, str]]:
    """(model, version) -> family -> the policy's state."""
    states: dict[tuple[str, str], dict[str, str]] = {}
    for row in session.scalars(select(PolicyStateRow)):
        states.setdefault((row.model, row.model_version), {})[row.family] = row.state
    return states


def drift_results(
    session: Session,
    model: str,
    start: datetime,
    end: datetime,
    *,
    version: str | None = None,
    family: str | None = None,
    after: DriftResultRow | None = None,
    features: bool = False,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Results of ``model`` in [start, end) after ``after``, oldest first, as plain dicts keyed
    by :data:`RESULT_KEYS` (no ORM objects: this is the hot read path)."""
    conditions = [
        DriftResultRow.model == model,
        DriftResultRow.window_end >= start,
        DriftResultRow.window_end < end,
    ]
    if version is not None:
        conditions.append(DriftResultRow.model_version == version)
    if family is not None:
        conditions.append(DriftResultRow.family == family)
    if after is not None:
        conditions.append(
            or_(
                DriftResultRow.window_end > after.window_end,
                and_(DriftResultRow.window_end == after.window_end, DriftResultRow.id > after.id),
            )
        )
    columns = RESULT_COLUMNS if features else RESULT_COLUMNS[:-1]
    keys = RESULT_KEYS if features else RESULT_KEYS[:-1]
    rows = session.execute(
        select(*columns)
        .where(*conditions)
        .order_by(DriftResultRow.window_end, DriftResultRow.id)
        .limit(limit)
    ).all()
    return [dict(zip(keys, row, strict=True)) for row in rows]


def transitions(
    session: Session, model: str, after_id: int | None = None, limit: int = 100
) -> list[PolicyTransitionRow]:
    """Policy transitions of ``model``, oldest first, after ``after_id``."""
    stmt = select(PolicyTransitionRow).where(PolicyTransitionRow.model == model)
    if after_id is not None:
        stmt = stmt.where(PolicyTransitionRow.id > after_id)
    return list(session.scalars(stmt.order_by(PolicyTransitionRow.id).limit(limit)))


def window_results(
    session: Session, window_id: int, *, by_family: bool = True
) -> list[DriftResultRow]:
    """The results stored for a window, by family (or in insertion order)."""
    stmt = select(DriftResultRow).where(DriftResultRow.window_id == window_id)
    return list(session.scalars(stmt.order_by(DriftResultRow.family) if by_family else stmt))


def newest_results(session: Session, model: str, limit: int) -> list[DriftResultRow]:
    """The newest ``limit`` results of ``model``, the newest first."""
    return list(
        session.scalars(
            select(DriftResultRow)
            .where(DriftResultRow.model == model)
            .order_by(DriftResultRow.window_end.desc(), DriftResultRow.id.desc())
            .limit(limit)
        )
    )


def all_results(session: Session) -> list[DriftResultRow]:
    """Every stored result, in insertion order."""
    return list(session.scalars(select(DriftResultRow)))
