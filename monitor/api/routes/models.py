"""Models, their drift history and policy transitions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from monitor.api.deps import (
    DB,
    ApiError,
    AwareTime,
    Cursor,
    Limit,
    NamePath,
    NameQuery,
    Page,
    limit_of,
    page_of,
    require_read,
)
from monitor.store import drift_queries
from monitor.store.alerting_tables import PolicyTransitionRow
from monitor.store.tables import DriftResultRow
from monitor.vocabulary import DriftState, Family

router = APIRouter(dependencies=[Depends(require_read)])


class ModelVersion(BaseModel):
    model: str
    version: str
    windows: int
    last_window_end: datetime | None
    states: dict[Family, DriftState] = Field(description="Policy state per family.")


@router.get("/models", tags=["models"], summary="Models and versions seen, with their state.")
def list_models(session: DB) -> list[ModelVersion]:
    states = drift_queries.policy_states(session)
    return [
        ModelVersion(
            model=m, version=v, windows=n, last_window_end=end, states=states.get((m, v), {})
        )
        for m, v, n, end in drift_queries.model_versions(session)
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


class DriftResultOut(BaseModel):
    id: int
    window_id: int
    model: str
    version: str
    arm: str
    family: str
    window_end: datetime
    kind: str
    method: str
    statistic: float
    p_value: float | None
    effect_size: float
    threshold: float
    drifted: bool
    n_ref: int
    n_cur: int
    features: Any = Field(None, description="The moved features (with features=true).")


class DriftPage(Page[DriftResultOut]):
    pass


class TransitionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    id: int
    model: str
    version: str
    family: str
    window_id: int
    from_state: DriftState = Field(alias="from")
    to_state: DriftState = Field(alias="to")
    at: datetime
    reason: str
    notify: bool
    severity: str | None
    retrain: bool
    retrain_reason: str | None
    evidence: dict[str, Any]


class TransitionPage(Page[TransitionOut]):
    pass


@router.get(
    "/models/{model}/drift",
    tags=["models"],
    response_model=DriftPage,
    summary="Drift results of a model over a time range (default: the last 7 days).",
)
def drift_history(
    request: Request,
    session: DB,
    model: NamePath,
    version: NameQuery = None,
    family: Family | None = None,
    start: AwareTime | None = None,
    end: AwareTime | None = None,
    limit: Limit = None,
    cursor: Cursor = None,
    features: Annotated[
        bool, Query(description="Include the moved features of each result.")
    ] = False,
) -> Response:
    limit = limit_of(request, limit, 500)
    start, end = _time_range(start, end)
    after = None
    if cursor is not None:
        after = session.get(DriftResultRow, cursor)
        if after is None:
            raise ApiError(422, f"cursor {cursor} does not point at a result")
    # Plain dicts and one JSON encode: no response-model re-validation on the hot read path
    # (the response_model above still documents the shape).
    items = drift_queries.drift_results(
        session,
        model,
        start,
        end,
        version=version,
        family=family,
        after=after,
        features=features,
        limit=limit + 1,
    )
    more = len(items) > limit
    items = items[:limit]
    for item in items:
        item["window_end"] = item["window_end"].isoformat()
        item["model"] = model
    body = {"items": items, "next_cursor": items[-1]["id"] if more else None}
    return Response(json.dumps(body), media_type="application/json")


def transition_out(t: PolicyTransitionRow) -> TransitionOut:
    return TransitionOut(
        id=t.id,
        model=t.model,
        version=t.model_version,
        family=t.family,
        window_id=t.window_id,
        from_state=t.from_state,
        to_state=t.to_state,
        at=t.at,
        reason=t.reason,
        notify=t.notify,
        severity=t.severity,
        retrain=t.retrain,
        retrain_reason=t.retrain_reason,
        evidence=t.evidence,
    )


@router.get(
    "/models/{model}/transitions",
    tags=["models"],
    summary="Policy state changes of a model, oldest first, with their evidence.",
)
def transitions(
    request: Request, session: DB, model: NamePath, limit: Limit = None, cursor: Cursor = None
) -> TransitionPage:
    limit = limit_of(request, limit)
    rows = drift_queries.transitions(session, model, cursor, limit + 1)
    return TransitionPage(**page_of(rows, limit, transition_out))
