"""Alerts: list, acknowledge, silence."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from monitor.alerts import actions
from monitor.api.deps import (
    DB,
    Cursor,
    Id,
    Label,
    Limit,
    NameQuery,
    Page,
    limit_of,
    page_of,
    require_read,
    require_write,
    settings_of,
)
from monitor.store.alerting_tables import AlertRow
from monitor.store.alerts_repo import find_alerts
from monitor.vocabulary import AlertStatus, Family, Severity

router = APIRouter(dependencies=[Depends(require_read)])


class AlertOut(BaseModel):
    id: int
    model: str
    version: str
    family: Family
    severity: Severity
    status: AlertStatus
    summary: str
    opened_at: datetime
    resolved_at: datetime | None
    acked_at: datetime | None
    acked_by: str | None
    silenced_until: datetime | None
    dedup_key: str
    evidence: dict[str, Any] = Field(description="The decision's evidence (detector results).")


class AlertPage(Page[AlertOut]):
    pass


def alert_out(a: AlertRow) -> AlertOut:
    return AlertOut(
        id=a.id,
        model=a.model,
        version=a.model_version,
        family=a.family,
        severity=a.severity,
        status=a.status,
        summary=a.summary,
        opened_at=a.opened_at,
        resolved_at=a.resolved_at,
        acked_at=a.acked_at,
        acked_by=a.acked_by,
        silenced_until=a.silenced_until,
        dedup_key=a.dedup_key,
        evidence=a.evidence,
    )


@router.get(
    "/alerts",
    tags=["alerts"],
    summary="Alerts, newest first; firing ones by default.",
)
def list_alerts(
    request: Request,
    session: DB,
    status: AlertStatus | Literal["all"] = "firing",
    model: NameQuery = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> AlertPage:
    limit = limit_of(request, limit)
    chosen = None if status == "all" else status
    rows = find_alerts(session, chosen, model, limit + 1, before_id=cursor)
    return AlertPage(**page_of(rows, limit, alert_out))


class Ack(BaseModel):
    by: Label = Field("api", description="Who acknowledges.")


class Silence(BaseModel):
    minutes: float = Field(gt=0, le=7 * 24 * 60, description="How long, at most 7 days.")
    by: Label = "api"


@router.post(
    "/alerts/{alert_id}/ack",
    tags=["alerts"],
    dependencies=[Depends(require_write)],
    summary="Acknowledge an alert (someone is on it).",
)
def ack_alert(request: Request, session: DB, alert_id: Id, body: Ack) -> AlertOut:
    alerts = settings_of(request).alerts
    return alert_out(actions.acknowledge(session, alert_id, body.by, alerts))


@router.post(
    "/alerts/{alert_id}/silence",
    tags=["alerts"],
    dependencies=[Depends(require_write)],
    summary="Silence an alert's notifications for a while.",
)
def silence_alert(session: DB, alert_id: Id, body: Silence) -> AlertOut:
    return alert_out(actions.silence(session, alert_id, body.minutes, body.by))
