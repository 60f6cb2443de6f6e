"""API routes: models, drift history, policy transitions, alerts, reference profiles."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from monitor.api.deps import (
    LABEL_PATTERN,
    ApiError,
    AwareTime,
    Cursor,
    Id,
    Label,
    Limit,
    NamePath,
    NameQuery,
    require_read,
    require_write,
    session_dep,
)
from monitor.api.uploads import check_expansion
from monitor.errors import NotFound
from monitor.evaluate import reopen_windows
from monitor.profiles import activate_profile, fit_profile_from_file, fit_profile_from_store
from monitor.profiles import list_profiles as listed
from monitor.schemas import NAME_PATTERN
from monitor.settings import Settings
from monitor.store.alerting_tables import AlertRow, PolicyStateRow, PolicyTransitionRow
from monitor.store.tables import DriftResultRow, ReferenceProfile, Window

router = APIRouter(dependencies=[Depends(require_read)])
DB = Annotated[Session, Depends(session_dep)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _limit(request: Request, limit: int | None, default: int = 100) -> int:
    top = _settings(request).api.max_page_size
    if limit is None:
        return min(default, top)
    if limit > top:
        raise ApiError(422, f"limit {limit} is over the maximum page size {top}")
    return limit


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: int | None = Field(None, description="Pass as cursor for the next page.")


def _page(rows: list[Any], limit: int, item: Any) -> Page:
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(items=[item(r) for r in rows], next_cursor=rows[-1].id if more else None)


# ---------------------------------------------------------------- models and drift


class ModelVersion(BaseModel):
    model: str
    version: str
    windows: int
    last_window_end: datetime | None
    states: dict[str, str] = Field(description="Policy state per family.")


@router.get("/models", tags=["models"], summary="Models and versions seen, with their state.")
def list_models(session: DB) -> list[ModelVersion]:
    counts = session.execute(
        select(Window.model, Window.model_version, func.count(), func.max(Window.end_ts))
        .group_by(Window.model, Window.model_version)
        .order_by(Window.model, Window.model_version)
    ).all()
    states: dict[tuple[str, str], dict[str, str]] = {}
    for row in session.scalars(select(PolicyStateRow)):
        states.setdefault((row.model, row.model_version), {})[row.family] = row.state
    return [
        ModelVersion(
            model=m, version=v, windows=n, last_window_end=end, states=states.get((m, v), {})
        )
        for m, v, n, end in counts
    ]


def _time_range(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=7)
    if start.tzinfo is None or end.tzinfo is None:
        raise ApiError(422, "start and end need a time zone, e.g. 2026-11-22T00:00:00Z")
    if start >= end:
        raise ApiError(422, f"start {start.isoformat()} is not before end {end.isoformat()}")
    if end - start > timedelta(days=366):
        raise ApiError(422, "the time range is longer than 366 days; ask for less")
    return start, end


_RESULT_COLUMNS = (
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
_RESULT_KEYS = (
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


@router.get(
    "/models/{model}/drift",
    tags=["models"],
    response_model=Page,
    summary="Drift results of a model over a time range (default: the last 7 days).",
)
def drift_history(
    request: Request,
    session: DB,
    model: NamePath,
    version: NameQuery = None,
    family: Literal["embedding", "pixel", "confidence", "classes"] | None = None,
    start: AwareTime | None = None,
    end: AwareTime | None = None,
    limit: Limit = None,
    cursor: Cursor = None,
    features: Annotated[
        bool, Query(description="Include the moved features of each result.")
    ] = False,
) -> Response:
    limit = _limit(request, limit, 500)
    start, end = _time_range(start, end)
    conditions = [
        DriftResultRow.model == model,
        DriftResultRow.window_end >= start,
        DriftResultRow.window_end < end,
    ]
    if version is not None:
        conditions.append(DriftResultRow.model_version == version)
    if family is not None:
        conditions.append(DriftResultRow.family == family)
    if cursor is not None:
        last = session.get(DriftResultRow, cursor)
        if last is None:
            raise ApiError(422, f"cursor {cursor} does not point at a result")
        conditions.append(
            or_(
                DriftResultRow.window_end > last.window_end,
                and_(DriftResultRow.window_end == last.window_end, DriftResultRow.id > last.id),
            )
        )
    # Plain rows and one JSON encode: no ORM objects and no response-model re-validation on
    # the hot read path (the response_model above still documents the shape).
    columns = _RESULT_COLUMNS if features else _RESULT_COLUMNS[:-1]
    keys = _RESULT_KEYS if features else _RESULT_KEYS[:-1]
    rows = session.execute(
        select(*columns)
        .where(*conditions)
        .order_by(DriftResultRow.window_end, DriftResultRow.id)
        .limit(limit + 1)
    ).all()
    more = len(rows) > limit
    rows = rows[:limit]
    items = []
    for row in rows:
        item = dict(zip(keys, row, strict=True))
        item["window_end"] = item["window_end"].isoformat()
        item["model"] = model
        items.append(item)
    body = {"items": items, "next_cursor": rows[-1].id if more else None}
    return Response(json.dumps(body), media_type="application/json")


def _transition(t: PolicyTransitionRow) -> dict[str, Any]:
    return {
        "id": t.id,
        "model": t.model,
        "version": t.model_version,
        "family": t.family,
        "window_id": t.window_id,
        "from": t.from_state,
        "to": t.to_state,
        "at": t.at.isoformat(),
        "reason": t.reason,
        "notify": t.notify,
        "severity": t.severity,
        "retrain": t.retrain,
        "retrain_reason": t.retrain_reason,
        "evidence": t.evidence,
    }


@router.get(
    "/models/{model}/transitions",
    tags=["models"],
    response_model=Page,
    summary="Policy state changes of a model, oldest first, with their evidence.",
)
def transitions(
    request: Request, session: DB, model: NamePath, limit: Limit = None, cursor: Cursor = None
) -> Page:
    limit = _limit(request, limit)
    stmt = select(PolicyTransitionRow).where(PolicyTransitionRow.model == model)
    if cursor is not None:
        stmt = stmt.where(PolicyTransitionRow.id > cursor)
    return _page(
        list(session.scalars(stmt.order_by(PolicyTransitionRow.id).limit(limit + 1))),
        limit,
        _transition,
    )


# ---------------------------------------------------------------- alerts


def _alert(a: AlertRow) -> dict[str, Any]:
    return {
        "id": a.id,
        "model": a.model,
        "version": a.model_version,
        "family": a.family,
        "severity": a.severity,
        "status": a.status,
        "summary": a.summary,
        "opened_at": a.opened_at.isoformat(),
        "resolved_at": a.resolved_at.isoformat() if a.resolved_at else None,
        "acked_at": a.acked_at.isoformat() if a.acked_at else None,
        "acked_by": a.acked_by,
        "silenced_until": a.silenced_until.isoformat() if a.silenced_until else None,
        "dedup_key": a.dedup_key,
        "evidence": a.evidence,
    }


@router.get(
    "/alerts",
    tags=["alerts"],
    response_model=Page,
    summary="Alerts, newest first; firing ones by default.",
)
def list_alerts(
    request: Request,
    session: DB,
    status: Literal["firing", "resolved", "all"] = "firing",
    model: NameQuery = None,
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page:
    limit = _limit(request, limit)
    stmt = select(AlertRow)
    if status != "all":
        stmt = stmt.where(AlertRow.status == status)
    if model is not None:
        stmt = stmt.where(AlertRow.model == model)
    if cursor is not None:
        stmt = stmt.where(AlertRow.id < cursor)
    return _page(
        list(session.scalars(stmt.order_by(AlertRow.id.desc()).limit(limit + 1))), limit, _alert
    )


def _get_alert(session: Session, alert_id: int) -> AlertRow:
    alert = session.get(AlertRow, alert_id)
    if alert is None:
        raise NotFound(f"alert {alert_id} does not exist")
    return alert


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
def ack_alert(session: DB, alert_id: Id, body: Ack) -> dict[str, Any]:
    alert = _get_alert(session, alert_id)
    alert.acked_at, alert.acked_by = datetime.now(UTC), body.by
    return _alert(alert)


@router.post(
    "/alerts/{alert_id}/silence",
    tags=["alerts"],
    dependencies=[Depends(require_write)],
    summary="Silence an alert's notifications for a while.",
)
def silence_alert(session: DB, alert_id: Id, body: Silence) -> dict[str, Any]:
    alert = _get_alert(session, alert_id)
    alert.silenced_until = datetime.now(UTC) + timedelta(minutes=body.minutes)
    alert.acked_by = alert.acked_by or body.by
    return _alert(alert)


# ---------------------------------------------------------------- reference profiles


def _profile(p: ReferenceProfile) -> dict[str, Any]:
    return {
        "id": p.id,
        "model": p.model,
        "version": p.model_version,
        "name": p.name,
        "active": p.active,
        "n_ref": p.n_ref,
        "created_at": p.created_at.isoformat(),
        "source": p.source,
    }


@router.get("/profiles", tags=["profiles"], summary="Reference profiles, newest first.")
def list_profiles(
    session: DB, model: NameQuery = None, version: NameQuery = None
) -> list[dict[str, Any]]:

    return [_profile(p) for p in listed(session, model, version)[:1000]]


class FitRequest(BaseModel):
    model: Name
    version: Name
    name: Label
    start: AwareTime | None = None
    end: AwareTime | None = None
    limit: int | None = Field(None, ge=10, le=1_000_000)
    activate: bool = False


@router.post(
    "/profiles/fit",
    tags=["profiles"],
    dependencies=[Depends(require_write)],
    status_code=201,
    summary="Fit a profile on stored logs of a time range.",
)
def fit_profile(request: Request, session: DB, body: FitRequest) -> dict[str, Any]:

    if body.start and body.end and body.start >= body.end:
        raise ApiError(422, "start is not before end")
    row = fit_profile_from_store(
        session,
        _settings(request),
        body.model,
        body.version,
        body.start,
        body.end,
        body.name,
        limit=body.limit,
        activate=body.activate,
    )
    return _profile(row)


@router.put(
    "/profiles/upload",
    tags=["profiles"],
    dependencies=[Depends(require_write)],
    status_code=201,
    summary="Fit a profile on an uploaded reference file (request body: the file).",
)
async def upload_profile(
    request: Request,
    model: Annotated[str, Query(pattern=NAME_PATTERN)],
    version: Annotated[str, Query(pattern=NAME_PATTERN)],
    name: Annotated[str, Query(pattern=LABEL_PATTERN, max_length=128)],
    format: Literal["npz", "parquet", "jsonl"],
    activate: bool = False,
) -> dict[str, Any]:

    data = await request.body()  # bounded by the guard: api.max_upload_bytes
    if not data:
        raise ApiError(422, "empty upload: send the reference file as the request body")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"reference.{format}"
        path.write_bytes(data)
        check_expansion(path, format, _settings(request).api.max_expanded_bytes)
        factory = request.app.state.factory
        with factory() as session, session.begin():
            row = fit_profile_from_file(
                session, _settings(request), model, version, path, name, activate=activate
            )
            return _profile(row)


@router.post(
    "/profiles/{profile_id}/activate",
    tags=["profiles"],
    dependencies=[Depends(require_write)],
    summary="Make a profile the active one of its model version.",
)
def activate(session: DB, profile_id: Id) -> dict[str, Any]:

    row = activate_profile(session, profile_id)
    reopen_windows(session, row.model, row.model_version)
    return _profile(row)
