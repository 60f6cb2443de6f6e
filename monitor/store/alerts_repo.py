"""The alerts' and their deliveries' SQL: the latest alert of a family, pages, due deliveries."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.store.alerting_tables import AlertDeliveryRow, AlertRow
from monitor.vocabulary import AlertStatus


def latest_alert(
    session: Session, model: str, version: str, family: str, status: AlertStatus | None = None
) -> AlertRow | None:
    """The newest alert of a model version's ``family`` (in ``status``, when given)."""
    stmt = select(AlertRow).where(
        AlertRow.model == model, AlertRow.model_version == version, AlertRow.family == family
    )
    if status is not None:
        stmt = stmt.where(AlertRow.status == status)
    return session.scalars(stmt.order_by(AlertRow.id.desc()).limit(1)).first()


def any_firing(session: Session, model: str | None = None, version: str | None = None) -> bool:
    """Whether an alert (of ``model``, of its ``version``, when given) is firing."""
    stmt = select(AlertRow.id).where(AlertRow.status == "firing")
    if model is not None:
        stmt = stmt.where(AlertRow.model == model)
    if version is not None:
        stmt = stmt.where(AlertRow.model_version == version)
    return session.scalar(stmt.limit(1)) is not None


def open_incident(session: Session, model: str, version: str) -> AlertRow | None:
    """The oldest firing alert of a model version that paged: the incident others join."""
    return session.scalars(
        select(AlertRow)
        .where(
            AlertRow.model == model,
            AlertRow.model_version == version,
            AlertRow.status == "firing",
            AlertRow.paged.is_(True),
        )
        .order_by(AlertRow.id)
        .limit(1)
    ).first()


def resolved_pages(session: Session, model: str, version: str) -> list[AlertRow]:
    """The resolved alerts of a model version that paged."""
    return list(
        session.scalars(
            select(AlertRow).where(
                AlertRow.model == model,
                AlertRow.model_version == version,
                AlertRow.paged.is_(True),
                AlertRow.status == "resolved",
            )
        )
    )


def latest_page(session: Session, model: str) -> AlertRow | None:
    """The newest alert of ``model`` that paged."""
    return session.scalars(
        select(AlertRow)
        .where(AlertRow.model == model, AlertRow.paged.is_(True))
        .order_by(AlertRow.id.desc())
        .limit(1)
    ).first()


def find_alerts(
    session: Session,
    status: str | None = "firing",
    model: str | None = None,
    limit: int = 100,
    before_id: int | None = None,
) -> list[AlertRow]:
    """Alerts newest first; ``status`` None for all, ``before_id`` to page."""
    stmt = select(AlertRow)
    if status is not None:
        stmt = stmt.where(AlertRow.status == status)
    if model is not None:
        stmt = stmt.where(AlertRow.model == model)
    if before_id is not None:
        stmt = stmt.where(AlertRow.id < before_id)
    return list(session.scalars(stmt.order_by(AlertRow.id.desc()).limit(limit)))


def all_alerts(session: Session) -> list[AlertRow]:
    """Every alert, oldest first."""
    return list(session.scalars(select(AlertRow).order_by(AlertRow.id)))


def firing_counts(session: Session) -> list[tuple[str, str, str, int]]:
    """(model, family, severity, how many) of the firing alerts."""
    rows = session.execute(
        select(AlertRow.model, AlertRow.family, AlertRow.severity, func.count())
        .where(AlertRow.status == "firing")
        .group_by(AlertRow.model, AlertRow.family, AlertRow.severity)
    )
    return [(m, f, s, int(n)) for m, f, s, n in rows]


def firing_delivered_to(session: Session, channel: str, before: datetime) -> list[AlertRow]:
    """Firing alerts whose trigger ``channel`` delivered before ``before``, oldest first."""
    delivered = select(AlertDeliveryRow.alert_id).where(
        AlertDeliveryRow.channel == channel,
        AlertDeliveryRow.event == "trigger",
        AlertDeliveryRow.status == "delivered",
        AlertDeliveryRow.delivered_at < before,
    )
    return list(
        session.scalars(
            select(AlertRow)
            .where(AlertRow.status == "firing", AlertRow.id.in_(delivered))
            .order_by(AlertRow.id)
        )
    )


def delivery_keys(session: Session, alert_id: int) -> set[str]:
    """The event keys of the deliveries made for an alert."""
    return set(
        session.scalars(
            select(AlertDeliveryRow.event_key).where(AlertDeliveryRow.alert_id == alert_id)
        )
    )


def due_deliveries(session: Session, now: datetime, limit: int) -> list[int]:
    """The ids of the pending deliveries due at ``now``, oldest first (at most ``limit``)."""
    return list(
        session.scalars(
            select(AlertDeliveryRow.id)
            .where(AlertDeliveryRow.status == "pending", AlertDeliveryRow.next_attempt_at <= now)
            .order_by(AlertDeliveryRow.id)
            .limit(limit)
        )
    )


def lock_pending_delivery(session: Session, delivery_id: int) -> AlertDeliveryRow | None:
    """Delivery ``delivery_id`` if still pending, row-locked on PostgreSQL (skipping a row
    another sender holds)."""
    query = select(AlertDeliveryRow).where(
        AlertDeliveryRow.id == delivery_id, AlertDeliveryRow.status == "pending"
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return session.scalars(query).first()


def delivered(session: Session) -> list[AlertDeliveryRow]:
    """Every delivery that went through."""
    return list(
        session.scalars(select(AlertDeliveryRow).where(AlertDeliveryRow.status == "delivered"))
    )
