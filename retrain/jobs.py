"""Retraining jobs in the database: an idempotent trigger, a queue, states and their history.

Light on purpose (no torch): the monitor's policy and scheduler import it. Functions take a
Session and never commit; the caller owns the transaction.

>>> trigger_key("digits", "policy", "alert-42")
'digits:policy:alert-42'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.errors import DriftwatchError, NotFound
from monitor.store import jobs_repo
from monitor.store.retrain_tables import RegistryEvent, RetrainJob
from monitor.vocabulary import JobState
from retrain import observe

Source = Literal["policy", "schedule", "manual"]

#: Allowed transitions of a job's state.
TRANSITIONS: dict[JobState, tuple[JobState, ...]] = {
    "queued": ("running", "failed"),
    "running": ("succeeded", "failed"),
    "succeeded": (),
    "failed": (),
}


class JobStateError(DriftwatchError):
    """A job was asked to make a transition its state does not allow."""


def trigger_key(model: str, source: str, key: str) -> str:
    """The idempotency key of a trigger: the same decision always gives the same key."""
    return f"{model}:{source}:{key}"


def _event(job: RetrainJob, state: JobState, note: str) -> dict[str, Any]:
    return {"state": state, "ts": datetime.now(UTC).isoformat(), "note": note}


def enqueue_job(
    session: Session,
    model: str,
    key: str,
    *,
    source: Source = "policy",
    reason: str = "",
    params: dict[str, Any] | None = None,
) -> tuple[RetrainJob, bool]:
    """Queue a retraining job for ``model`` unless the trigger ``key`` already made one.

    Returns ``(job, created)``. Safe under concurrent callers: a unique constraint on the
    trigger key decides, and the loser reads the winner's row (inside a savepoint, so the
    caller's transaction stays usable).
    """
    full_key = trigger_key(model, source, key)
    existing = jobs_repo.job_by_trigger(session, full_key)
    if existing is not None:
        return existing, False
    job = RetrainJob(
        trigger_key=full_key,
        model=model,
        source=source,
        reason=reason,
        state="queued",
        params=dict(params or {}),
        history=[],
    )
    job.history = [_event(job, "queued", reason or source)]
    try:
        with session.begin_nested():
            session.add(job)
            session.flush()
    except IntegrityError:
        winner = jobs_repo.job_by_trigger(session, full_key)
        if winner is None:  # the violation was not ours
            raise
        return winner, False
    session.add(
        RegistryEvent(
            model=model,
            job_id=job.id,
            event="job_queued",
            detail={"source": source, "reason": reason, "key": full_key},
        )
    )
    observe.job_state(model, "queued")
    return job, True


def schedule_key(model: str, when: datetime, every: Literal["day", "week", "month"]) -> str:
    """The trigger key of a scheduled run: one job per model per period.

    >>> schedule_key("digits", datetime(2026, 11, 22, tzinfo=UTC), "month")
    '2026-11'
    """
    if every == "month":
        return when.strftime("%Y-%m")
    if every == "week":
        year, week, _ = when.isocalendar()
        return f"{year}-W{week:02d}"
    return when.strftime("%Y-%m-%d")


def transition(session: Session, job: RetrainJob, state: JobState, note: str = "") -> RetrainJob:
    """Move ``job`` to ``state``, appending to its history (and the audit trail)."""
    if state not in TRANSITIONS.get(job.state, ()):
        raise JobStateError(f"job {job.id} cannot go from {job.state} to {state}")
    job.state = state
    job.history = [*job.history, _event(job, state, note)]
    job.updated_at = datetime.now(UTC)
    if state == "failed":
        job.error = note
    session.add(
        RegistryEvent(
            model=job.model,
            job_id=job.id,
            version=job.candidate_version,
            event=f"job_{state}",
            detail={"note": note},
        )
    )
    observe.job_state(job.model, state)
    session.flush()
    return job


def claim_next(session: Session, model: str | None = None) -> RetrainJob | None:
    """The oldest queued job, moved to ``running`` (row-locked on PostgreSQL)."""
    job = jobs_repo.lock_next_queued(session, model)
    if job is None:
        return None
    return transition(session, job, "running", "claimed")


def fail_stale(session: Session, older_than: datetime) -> list[RetrainJob]:
    """Mark ``running`` jobs not updated since ``older_than`` failed (their worker died)."""
    stale = jobs_repo.running_since(session, older_than)
    return [
        transition(session, job, "failed", f"worker stopped: no progress since {older_than}")
        for job in list(stale)
    ]


def get_job(session: Session, job_id: int) -> RetrainJob:
    job = session.get(RetrainJob, job_id)
    if job is None:
        raise NotFound(f"retrain job {job_id} does not exist")
    return job


def list_jobs(session: Session, model: str | None = None, limit: int = 50) -> list[RetrainJob]:
    """The newest jobs first."""
    return jobs_repo.recent_jobs(session, model, limit)
