"""Canary rollouts: list, show, roll back (thin over :mod:`retrain.rollout`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from monitor.api.deps import (
    DB,
    Id,
    NameQuery,
    Reason,
    require_read,
    require_write,
    settings_of,
)
from monitor.errors import NotFound
from monitor.store.retrain_tables import Rollout
from monitor.vocabulary import RolloutState
from retrain import rollout

router = APIRouter(prefix="/retrain", tags=["retrain"], dependencies=[Depends(require_read)])
Limit = Annotated[int, Query(ge=1, le=1000, description="How many, newest first.")]


class StepOut(BaseModel):
    step: int
    weight: int = Field(description="Percent of traffic on the candidate.")
    outcome: str
    reason: str
    stable_accuracy: float | None
    canary_accuracy: float | None
    evidence: dict[str, Any]
    at: datetime | None


class RolloutOut(BaseModel):
    id: int
    model: str
    stable_version: str
    candidate_version: str
    plan: list[int] = Field(description="Candidate weight per step, percent.")
    weight: int | None = Field(description="The current step's weight.")
    state: RolloutState
    reason: str | None
    started_at: datetime | None
    finished_at: datetime | None
    steps: list[StepOut]


def rollout_out(session: Session, ro: Rollout) -> RolloutOut:

    return RolloutOut.model_validate(
        {
            "id": ro.id,
            "model": ro.model,
            "stable_version": ro.stable_version,
            "candidate_version": ro.candidate_version,
            "plan": ro.plan,
            "weight": ro.plan[ro.step_index] if ro.plan else None,
            "state": ro.state,
            "reason": ro.reason,
            "started_at": ro.started_at,
            "finished_at": ro.finished_at,
            "steps": [
                {
                    "step": st.step_index,
                    "weight": st.weight,
                    "outcome": st.outcome,
                    "reason": st.reason,
                    "stable_accuracy": st.stable_accuracy,
                    "canary_accuracy": st.canary_accuracy,
                    "evidence": st.evidence,
                    "at": st.ts,
                }
                for st in rollout.steps(session, ro.id)
            ],
        }
    )


@router.get("/rollouts", summary="Canary rollouts, newest first, with every step's evidence.")
def list_rollouts(
    session: DB,
    model: NameQuery = None,
    state: RolloutState | None = None,
    limit: Limit = 50,
) -> list[RolloutOut]:
    return [rollout_out(session, ro) for ro in rollout.list_rollouts(session, model, state, limit)]


def _get_rollout(session: Session, rollout_id: Id) -> Rollout:
    ro = session.get(Rollout, rollout_id)
    if ro is None:
        raise NotFound(f"rollout {rollout_id} does not exist")
    return ro


@router.get("/rollouts/{rollout_id}", summary="One rollout with its steps.")
def get_rollout(session: DB, rollout_id: Id) -> RolloutOut:
    return rollout_out(session, _get_rollout(session, rollout_id))


class Rollback(BaseModel):
    reason: Reason = Field(description="Why (audit trail).")


@router.post(
    "/rollouts/{rollout_id}/rollback",
    dependencies=[Depends(require_write)],
    summary="Roll a running rollout back now: serve only its stable version.",
)
def rollback(request: Request, session: DB, rollout_id: Id, body: Rollback) -> RolloutOut:

    ro = rollout.roll_back(session, settings_of(request), rollout_id, f"manual: {body.reason}")
    return rollout_out(session, ro)
