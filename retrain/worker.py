"""One scheduler tick of the retrain side: reap dead jobs, run a queued job, judge rollouts,
then relay the registry's changes to MLflow when that is the registry backend.

The evaluator's scheduler calls :func:`run_once` every interval (one evaluator runs at a time).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from monitor.settings import Settings
from monitor.store.db import unit_of_work
from retrain import jobs, registry, registry_mirror
from retrain.deploy import target_from_settings
from retrain.pipeline import run_job
from retrain.rollout import active, tick


def run_once(
    settings: Settings,
    sessions: sessionmaker[Session],
    *,
    run_jobs: bool = True,
    stale_after: timedelta = timedelta(hours=6),
    target: Any = None,
) -> dict[str, Any]:
    """Returns ``{"stale": [job ids], "job": JobOutcome | None, "rollouts": {id: outcome},
    "mirror": {model: ModelSync}}``."""

    target = target or target_from_settings(settings.retrain)
    with unit_of_work(sessions) as session:
        stale = [j.id for j in jobs.fail_stale(session, datetime.now(UTC) - stale_after)]
    outcome = run_job(settings, sessions, progress=False, target=target) if run_jobs else None
    store = registry.ArtifactStore.from_settings(settings.retrain)
    outcomes: dict[int, str] = {}
    with unit_of_work(sessions) as session:
        for ro in active(session):
            outcomes[ro.id] = tick(session, settings, store, target, ro)
    mirrored = registry_mirror.sync(settings, sessions)
    return {"stale": stale, "job": outcome, "rollouts": outcomes, "mirror": mirrored}
