"""API routes of the impact side: a window's worst images (JSON and the HTML grid alerts link
to), and estimated vs realized accuracy per window, version and arm (what the canary
comparison and the dashboards read). Thin over :mod:`monitor.reports.worst_images`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from monitor.api.deps import DB, Id, NamePath, NameQuery, require_read, settings_of
from monitor.reports.worst_images import estimate_dict, gather_worst, page_html
from monitor.store.impact_repo import estimates

router = APIRouter(tags=["impact"], dependencies=[Depends(require_read)])
N = Annotated[int | None, Query(ge=1, le=500, description="How many images (default: settings).")]


class TilePublic(BaseModel):
    prediction_id: int
    request_id: str
    thumbnail: str | None = Field(description="data: URI of the PNG/JPEG thumbnail, if sent.")
    predicted_class: int
    confidence: float = Field(description="The model's own max probability.")
    calibrated_confidence: float | None
    outlier_score: float | None = Field(description="Mahalanobis distance to the reference.")
    label: int | None


class EstimatePublic(BaseModel):
    window_id: int | None = None
    model_version: str | None = None
    arm: str | None = None
    window_end: datetime | None = None
    n: int
    level: float
    estimated_accuracy: float
    estimated_low: float
    estimated_high: float
    reference_accuracy: float
    reference_realized: float | None
    n_labelled: int
    realized_accuracy: float | None
    realized_low: float | None
    realized_high: float | None
    outlier_share: float | None
    outlier_threshold: float | None
    temperature: float


class OutliersPublic(BaseModel):
    window_id: int
    model: str
    version: str
    arm: str
    start: datetime
    end: datetime
    n: int
    estimate: EstimatePublic | None
    worst: list[TilePublic] = Field(description="The most unusual logs, most unusual first.")
    typical: list[TilePublic] = Field(description="The reference's most typical logs.")


@router.get(
    "/windows/{window_id}/outliers",
    summary="The window's most unusual images (thumbnail, score, predicted class, confidence), "
    "the reference's typical ones, and the window's accuracy estimate.",
)
def window_outliers(window_id: Id, request: Request, session: DB, n: N = None) -> OutliersPublic:
    return OutliersPublic.model_validate(
        gather_worst(session, settings_of(request), window_id, n).to_dict()
    )


@router.get(
    "/windows/{window_id}/outliers/page",
    response_class=HTMLResponse,
    summary="The same as a self-contained HTML grid (what alerts link to).",
)
def window_outliers_page(window_id: Id, request: Request, session: DB, n: N = None) -> HTMLResponse:
    return HTMLResponse(page_html(gather_worst(session, settings_of(request), window_id, n)))


@router.get(
    "/models/{model}/accuracy",
    summary="Estimated (label-free) and realized accuracy per evaluated window, oldest first; "
    "filter by version and arm to compare canary and stable.",
)
def model_accuracy(
    model: NamePath,
    session: DB,
    version: NameQuery = None,
    arm: NameQuery = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[EstimatePublic]:
    rows = estimates(session, model, version=version, arm=arm, limit=limit)
    return [
        EstimatePublic(
            window_id=r.window_id,
            model_version=r.model_version,
            arm=r.arm,
            window_end=r.window_end,
            **(estimate_dict(r) or {}),
        )
        for r in rows
    ]
