"""Reference profiles: list, fit on stored logs, fit on an upload, activate."""

from __future__ import annotations

import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from monitor.api.deps import (
    DB,
    LABEL_PATTERN,
    ApiError,
    AwareTime,
    Id,
    Label,
    Name,
    NameQuery,
    require_read,
    require_write,
    settings_of,
)
from monitor.api.uploads import check_expansion
from monitor.evaluate import switch_profile
from monitor.profiles import fit_profile_from_file, fit_profile_from_store
from monitor.profiles import list_profiles as listed
from monitor.schemas import NAME_PATTERN
from monitor.store.tables import ReferenceProfile

router = APIRouter(dependencies=[Depends(require_read)])


class ProfileOut(BaseModel):
    id: int
    model: str
    version: str
    name: str
    active: bool
    n_ref: int = Field(description="Logs the profile was fitted on.")
    created_at: datetime
    source: dict[str, Any] = Field(description="Where the reference came from.")


def profile_out(p: ReferenceProfile) -> ProfileOut:
    return ProfileOut.model_validate(
        {
            "id": p.id,
            "model": p.model,
            "version": p.model_version,
            "name": p.name,
            "active": p.active,
            "n_ref": p.n_ref,
            "created_at": p.created_at,
            "source": p.source,
        }
    )


@router.get("/profiles", tags=["profiles"], summary="Reference profiles, newest first.")
def list_profiles(
    session: DB, model: NameQuery = None, version: NameQuery = None
) -> list[ProfileOut]:

    return [profile_out(p) for p in listed(session, model, version)[:1000]]


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
def fit_profile(request: Request, session: DB, body: FitRequest) -> ProfileOut:

    if body.start and body.end and body.start >= body.end:
        raise ApiError(422, "start is not before end")
    row = fit_profile_from_store(
        session,
        settings_of(request),
        body.model,
        body.version,
        body.start,
        body.end,
        body.name,
        limit=body.limit,
        activate=body.activate,
    )
    return profile_out(row)


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
) -> ProfileOut:

    data = await request.body()  # bounded by the guard: api.max_upload_bytes
    if not data:
        raise ApiError(422, "empty upload: send the reference file as the request body")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"reference.{format}"
        path.write_bytes(data)
        check_expansion(path, format, settings_of(request).api.max_expanded_bytes)
        factory = request.app.state.factory
        with factory() as session, session.begin():
            row = fit_profile_from_file(
                session, settings_of(request), model, version, path, name, activate=activate
            )
            return profile_out(row)


@router.post(
    "/profiles/{profile_id}/activate",
    tags=["profiles"],
    dependencies=[Depends(require_write)],
    summary="Make a profile the active one of its model version.",
)
def activate(session: DB, profile_id: Id) -> ProfileOut:

    row, _ = switch_profile(session, profile_id)
    return profile_out(row)
