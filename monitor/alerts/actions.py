"""What people do to an alert: acknowledge it, silence it (called by the API and the CLI)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from monitor.alerts import outbox
from monitor.errors import NotFound
from monitor.settings import AlertSettings
from monitor.store.alerting_tables import AlertRow


def get_alert(session: Session, alert_id: int) -> AlertRow:
    """Alert ``alert_id`` or :class:`NotFound`."""
    alert = session.get(AlertRow, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist")
    return alert


def acknowledge(
    session: Session,
    alert_id: int,
    by: str,
    settings: AlertSettings,
    now: datetime | None = None,
) -> AlertRow:
    """Someone is on it: record who and when, and tell the channels that track acks
    (PagerDuty's ``acknowledge``), in the same transaction."""
    alert = get_alert(session, alert_id)
    outbox.acknowledge(session, alert, by, settings, now or datetime.now(UTC))
    session.flush()
    return alert


def silence(
    session: Session, alert_id: int, minutes: float, by: str, now: datetime | None = None
) -> AlertRow:
    """No notifications for ``minutes``; the silencer counts as the acknowledger if none."""
    alert = get_alert(session, alert_id)
    alert.silenced_until = (now or datetime.now(UTC)) + timedelta(minutes=minutes)
    alert.acked_by = alert.acked_by or by
    session.flush()
    return alert
