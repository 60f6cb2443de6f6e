"""Retraining jobs, registered versions and their gate reports.

Thin over :mod:`retrain.jobs`, :mod:`retrain.registry` and :mod:`retrain.gate` (no torch is
imported here; a manual job only queues, the scheduler's retrain job runs it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from monitor.api.deps import (
    DB,
    ApiError,
    AwareTime,
    Id,
    Label,
    NamePath,
    NameQuery,
    Reason,
    require_read,
    require_write,
)
from monitor.errors import NotFound
from monitor.schemas import NAME_PATTERN
from monitor.store.retrain_queries import latest_gate_report
from monitor.store.retrain_tables import ModelVersion, RetrainJob
from monitor.vocabulary import JobState, VersionState
from retrain import jobs, registry
from retrain.gate import gate_report
from retrain.jobs import enqueue_job

router = APIRouter(prefix="/retrain", tags=["retrain"], dependencies=[Depends(require_read)])
Limit = Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")]


class JobOut(BaseModel):
    id: int
    model: str
    source: str = Field(description="policy, schedule or manual")
    trigger_key: str
    reason: str
    state: JobState
    params: dict[str, Any]
    error: str | None
    candidate_version: str | None
    history: list[dict[str, Any]] = Field(description="Every state change, oldest first.")
    created_at: datetime | None
    updated_at: datetime | None


class JobCreated(JobOut):
    created: bool = Field(description="False when the key named an existing job.")


class ArtifactOut(BaseModel):
    sha256: str | None
    bytes: int | None


class VersionOut(BaseModel):
    model: str
    version: str
    state: VersionState
    parent_version: str | None
    job_id: int | None
    recipe: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    artifacts: dict[str, ArtifactOut]
    created_at: datetime | None
    updated_at: datetime | None


class GateOut(BaseModel):
    model: str
    candidate_version: str
    current_version: str | None
    job_id: int | None
    passed: bool
    reasons: list[str]
    report: dict[str, Any]
    summary: str = Field(description="The report as text.")
    created_at: datetime | None


def job_out(j: RetrainJob) -> JobOut:
    return JobOut.model_validate(
        {
            "id": j.id,
            "model": j.model,
            "source": j.source,
            "trigger_key": j.trigger_key,
            "reason": j.reason,
            "state": j.state,
            "params": j.params,
            "error": j.error,
            "candidate_version": j.candidate_version,
            "history": j.history,
            "created_at": j.created_at,
            "updated_at": j.updated_at,
        }
    )


def version_out(mv: ModelVersion) -> VersionOut:
    return VersionOut.model_validate(
        {
            "model": mv.model,
            "version": mv.version,
            "state": mv.state,
            "parent_version": mv.parent_version,
            "job_id": mv.job_id,
            "recipe": mv.recipe,
            "params": mv.params,
            "metrics": mv.metrics,
            "artifacts": {
                k: {"sha256": v.get("sha256"), "bytes": v.get("bytes")}
                for k, v in mv.artifacts.items()
            },
            "created_at": mv.created_at,
            "updated_at": mv.updated_at,
        }
    )


@router.get("/jobs", summary="Retraining jobs, newest first.")
def list_jobs(session: DB, model: NameQuery = None, limit: Limit = 50) -> list[JobOut]:

    return [job_out(j) for j in jobs.list_jobs(session, model, limit)]


@router.get("/jobs/{job_id}", summary="One job with its state history.")
def get_job(session: DB, job_id: Id) -> JobOut:

    return job_out(jobs.get_job(session, job_id))


class JobRequest(BaseModel):
    model: str = Field(pattern=NAME_PATTERN, max_length=128)
    key: Label | None = Field(None, description="Idempotency key (default: the current time).")
    reason: Reason = "manual"
    since: AwareTime | None = Field(None, description="Train on labels from here on.")
    until: AwareTime | None = None


@router.post(
    "/jobs",
    status_code=201,
    dependencies=[Depends(require_write)],
    summary="Queue a manual retraining job (the scheduler's retrain job runs it); "
    "the same key returns the existing job.",
)
def start_job(session: DB, body: JobRequest) -> JobCreated:

    for ts in (body.since, body.until):
        if ts is not None and ts.tzinfo is None:
            raise ApiError(422, "since and until need a time zone, e.g. 2026-11-22T00:00:00Z")
    if body.since and body.until and body.since >= body.until:
        raise ApiError(422, "since is not before until")
    params = {k: v.isoformat() for k, v in (("since", body.since), ("until", body.until)) if v}
    job, created = enqueue_job(
        session,
        body.model,
        body.key or datetime.now(UTC).isoformat(),
        source="manual",
        reason=body.reason,
        params=params,
    )
    return JobCreated(**job_out(job).model_dump(), created=created)


@router.get("/jobs/{job_id}/gate", summary="The offline gate report of the job's candidate.")
def job_gate(session: DB, job_id: Id) -> GateOut:

    job = jobs.get_job(session, job_id)
    if job.candidate_version is None:
        raise NotFound(f"job {job_id} ({job.state}) has no candidate version yet")
    return _gate(session, job.model, job.candidate_version)


# ---------------------------------------------------------------- versions and gate reports


@router.get("/versions", summary="Registered model versions with their figures, newest first.")
def list_versions(session: DB, model: NameQuery = None) -> list[VersionOut]:

    return [version_out(mv) for mv in registry.list_versions(session, model)[:1000]]


@router.get("/versions/{model}/{version}", summary="One registered version.")
def get_version(session: DB, model: NamePath, version: NamePath) -> VersionOut:

    return version_out(registry.get_version(session, model, version))


def _gate(session: Session, model: str, version: str) -> GateOut:
    row = latest_gate_report(session, model, version)
    if row is None:
        raise NotFound(f"no gate report for {model} {version}")
    return GateOut(
        **{
            "model": model,
            "candidate_version": version,
            "current_version": row.current_version,
            "job_id": row.job_id,
            "passed": row.passed,
            "reasons": row.reasons,
            "report": row.report,
            "summary": gate_report(session, model, version),
            "created_at": row.created_at,
        }
    )


@router.get(
    "/versions/{model}/{version}/gate",
    summary="The stored offline gate report (candidate vs current) of a version.",
)
def version_gate(session: DB, model: NamePath, version: NamePath) -> GateOut:
    return _gate(session, model, version)
