"""Retrain jobs in the database (SQLite and PostgreSQL): idempotent triggers, states, history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import RegistryEvent, RetrainJob
from retrain import jobs


def test_duplicate_triggers_make_one_job(sessions: sessionmaker[Session]) -> None:
    with unit_of_work(sessions) as s:
        first, created = jobs.enqueue_job(s, "digits", "alert-7", reason="pixel drift")
        assert created and first.state == "queued"
    for _ in range(3):  # the scheduler retries the same decision in new transactions
        with unit_of_work(sessions) as s:
            again, created = jobs.enqueue_job(s, "digits", "alert-7", reason="pixel drift")
            assert not created and again.id == first.id
    with unit_of_work(sessions) as s:
        assert s.scalar(select(func.count()).select_from(RetrainJob)) == 1
        _, other = jobs.enqueue_job(s, "digits", "alert-8")
        _, manual = jobs.enqueue_job(s, "digits", "alert-7", source="manual")
        assert other and manual  # another trigger, or another source, is another job


def test_concurrent_trigger_loses_to_the_committed_one(sessions: sessionmaker[Session]) -> None:
    a, b = sessions(), sessions()
    try:
        job_a, created_a = jobs.enqueue_job(a, "digits", "k")
        a.commit()
        # b looks the key up after a committed: one job, and b's transaction stays usable.
        job_b, created_b = jobs.enqueue_job(b, "digits", "k")
        b.execute(select(1))
        b.commit()
        assert created_a and not created_b and job_a.id == job_b.id
    finally:
        a.close()
        b.close()


def test_states_and_history(sessions: sessionmaker[Session]) -> None:
    with unit_of_work(sessions) as s:
        job, _ = jobs.enqueue_job(
            s, "digits", "m", source="schedule", params={"since": "2026-11-01T00:00:00+00:00"}
        )
        job_id = job.id
    with unit_of_work(sessions) as s:
        claimed = jobs.claim_next(s)
        assert claimed is not None and claimed.id == job_id and claimed.state == "running"
        assert jobs.claim_next(s) is None
        with pytest.raises(jobs.JobStateError, match="cannot go from running to queued"):
            jobs.transition(s, claimed, "queued")
        jobs.transition(s, claimed, "failed", "ValueError: boom")
    with unit_of_work(sessions) as s:
        job = jobs.get_job(s, job_id)
        assert [h["state"] for h in job.history] == ["queued", "running", "failed"]
        assert job.error == "ValueError: boom"
        events = s.scalars(select(RegistryEvent.event).where(RegistryEvent.job_id == job_id)).all()
        assert list(events) == ["job_queued", "job_running", "job_failed"]
        assert [j.id for j in jobs.list_jobs(s, "digits")] == [job_id]


def test_stale_running_jobs_are_failed(sessions: sessionmaker[Session]) -> None:
    with unit_of_work(sessions) as s:
        job, _ = jobs.enqueue_job(s, "digits", "x")
        jobs.claim_next(s)
        job_id = job.id
    with unit_of_work(sessions) as s:
        assert jobs.fail_stale(s, datetime.now(UTC) - timedelta(hours=1)) == []
        failed = jobs.fail_stale(s, datetime.now(UTC) + timedelta(seconds=1))
        assert [j.id for j in failed] == [job_id]
        assert "worker stopped" in (jobs.get_job(s, job_id).error or "")


def test_schedule_key_is_one_per_period() -> None:
    day = datetime(2026, 11, 22, tzinfo=UTC)
    assert jobs.schedule_key("digits", day, "month") == jobs.schedule_key(
        "digits", day + timedelta(days=5), "month"
    )
    assert jobs.schedule_key("digits", day, "week") == "2026-W47"
    assert jobs.schedule_key("digits", day, "day") == "2026-11-22"
