"""The scheduler's retrain job: policy-queued retraining jobs are picked up and finish,
on SQLite and PostgreSQL, and only one replica runs them at a time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from monitor.scheduler import RETRAIN_LOCK_OFFSET, Evaluator, build_scheduler
from monitor.settings import RetrainSettings, SchedulerSettings, Settings
from monitor.store.db import make_engine, session_factory, unit_of_work
from retrain import jobs


def _settings(
    settings_for: Callable[..., Settings], db_url: str, tmp_path: Path, **scheduler: object
) -> Settings:
    return settings_for(
        db_url,
        scheduler=SchedulerSettings(
            interval_seconds=3600,
            retention_interval_seconds=3600,
            retrain_interval_seconds=0.2,
            **scheduler,
        ),
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry", deployment_spec_path=tmp_path / "deploy.json"
        ),
    )


def _terminal(sessions: sessionmaker[Session], job_id: int) -> str | None:
    """The job's state once it is terminal, else None."""
    with sessions() as s:
        state = jobs.get_job(s, job_id).state
    return state if state in ("succeeded", "failed") else None


def test_a_policy_queued_job_is_picked_up_and_reaches_a_terminal_state(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
    wait_until: Callable[..., Any],
) -> None:
    settings = _settings(settings_for, db_url, tmp_path)
    with unit_of_work(sessions) as s:
        job, _ = jobs.enqueue_job(s, "digits", "alert-7", source="policy", reason="pixel alert")
        job_id = job.id
    engine = make_engine(settings.database)
    scheduler = build_scheduler(Evaluator(engine, settings), key="retrain-test")
    scheduler.start()
    try:
        state = wait_until(lambda: _terminal(sessions, job_id), timeout=30, what="the job")
    finally:
        scheduler.shutdown()
        engine.dispose()
    with sessions() as s:
        job = jobs.get_job(s, job_id)
        history = [h["state"] for h in job.history]
        error = job.error
    # nothing is promoted for "digits" here, so the job fails, with the reason recorded
    assert state == "failed" and history == ["queued", "running", "failed"]
    assert error is not None and "no promoted version" in error


def test_retrain_jobs_can_be_switched_off(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = _settings(settings_for, db_url, tmp_path, run_retrain_jobs=False)
    with unit_of_work(sessions) as s:
        job_id = jobs.enqueue_job(s, "digits", "alert-8")[0].id
    engine = make_engine(settings.database)
    out = Evaluator(engine, settings).retrain()
    engine.dispose()
    assert out is not None and out["job"] is None
    with sessions() as s:
        assert jobs.get_job(s, job_id).state == "queued"


def test_only_the_replica_holding_the_retrain_lock_runs_jobs(
    pg_url: str,
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = _settings(settings_for, pg_url, tmp_path)
    sessions = session_factory(make_engine(settings.database))
    with unit_of_work(sessions) as s:
        job_id = jobs.enqueue_job(s, "digits", "alert-9")[0].id
    engine = make_engine(settings.database)
    other = make_engine(settings.database)
    key = settings.scheduler.lock_id + RETRAIN_LOCK_OFFSET
    try:
        with other.connect() as conn:  # another replica is training
            assert conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            assert Evaluator(engine, settings).retrain() is None
            with sessions() as s:
                assert jobs.get_job(s, job_id).state == "queued"
            # evaluation has its own lock and is not held up by a training replica
            assert Evaluator(engine, settings).tick(deliver=False).ran
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        out = Evaluator(engine, settings).retrain()
    finally:
        engine.dispose()
        other.dispose()
        sessions.kw["bind"].dispose()
    assert out is not None and out["job"].job_id == job_id and out["job"].state == "failed"
