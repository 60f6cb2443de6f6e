"""The evaluator: an APScheduler job that turns closed windows into decisions and alerts.

Each tick, model by model (in a random order, so replicas spread out), under that model's lock
(PostgreSQL ``pg_try_advisory_lock(lock_id, hashtext(model))``; one process on SQLite):

1. close the model's due windows (:func:`monitor.windows.close_windows`);
2. evaluate its pending windows in window order, in batches
   (:func:`monitor.evaluate.evaluate_pending`), and run the policy on each
   (:func:`monitor.policy.apply.apply_window`), one transaction per batch;

then, once per tick, send due alert deliveries (:func:`monitor.alerts.outbox.deliver_pending`,
which claims rows with ``FOR UPDATE SKIP LOCKED``), outside the evaluation transactions, so a
slow channel never holds up evaluation.

Sharding: every replica works. A model is the unit of work because the policy crosses versions
and arms of one model (a promoted version supersedes the old one's alerts); a replica skips the
models another replica holds and takes the rest. The locks are session locks: when a replica
dies, PostgreSQL ends its session and its models are free at the next tick of any other replica
(no lease period to wait out); a replica that joins takes its share at its first tick.

A fourth job, ``retrain``, hands the retrain side its turn (:func:`retrain.worker.run_once`):
it runs the oldest queued retraining job (those the policy queues on an alert) when
``scheduler.run_retrain_jobs``, and judges running canary rollouts. It holds its own single lock
(``lock_id + 1``), so a job that trains for minutes never holds up evaluation, and only one
replica trains at a time. Retention and late-label refresh hold the evaluator's global lock
(``lock_id``). torch is imported inside the retrain job only.

The jobs live in the same database (``apscheduler_jobs``), with ``coalesce`` and a long
``misfire_grace_time``: after downtime one catch-up run evaluates every window that closed
meanwhile, in window order, so the policy sees them as if it had never stopped.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts.outbox import deliver_pending
from monitor.evaluate import evaluate_pending
from monitor.impact.stage import refresh_realized
from monitor.metrics import metric
from monitor.policy.apply import Decision, apply_window
from monitor.policy.rules import Transition
from monitor.policy.supersede import resolve_superseded
from monitor.settings import Settings
from monitor.store.db import session_factory, unit_of_work
from monitor.store.locks import advisory_unlock, try_advisory_lock
from monitor.store.retention import delete_expired
from monitor.store.tables import Window
from monitor.windows import close_windows, models_with_work
from retrain.jobs import enqueue_job
from retrain.worker import run_once

log = logging.getLogger(__name__)

#: The retrain job's advisory lock is ``scheduler.lock_id`` plus this.
RETRAIN_LOCK_OFFSET = 1

JOB_IDS = (
    "driftwatch-evaluate",
    "driftwatch-deliver",
    "driftwatch-retention",
    "driftwatch-retrain",
)


@dataclass
class TickReport:
    """What one evaluation tick did."""

    ran: bool = True
    windows_closed: int = 0
    windows_evaluated: int = 0
    decisions: list[Decision] = field(default_factory=list)
    #: old versions' states resolved because a promoted version's windows are clean
    superseded: list[Transition] = field(default_factory=list)
    deliveries: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    #: models this replica evaluated, and how many it left to the replicas holding them
    models: list[str] = field(default_factory=list)
    models_held_elsewhere: int = 0
    window_ids: list[int] = field(default_factory=list)


class Evaluator:
    """Runs ticks for one process; on PostgreSQL, replicas share the models between them."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        batch_size: int = 50,
        settle_seconds: float | None = None,
    ) -> None:
        self.engine, self.settings, self.batch_size = engine, settings, batch_size
        #: logs younger than this stay out of windows (None: the windows module's default)
        self.settle_seconds = settle_seconds
        self.factory: sessionmaker[Session] = session_factory(engine)

    @contextmanager
    def lock(self, offset: int = 0, model: str | None = None) -> Iterator[bool]:
        """Hold the evaluator lock (``lock_id + offset``, or the lock of ``model``) for the
        block; yields False when another process has it."""
        if self.engine.dialect.name != "postgresql":
            yield True
            return
        lock_id = self.settings.scheduler.lock_id + offset
        with self.engine.connect() as conn:
            got = try_advisory_lock(conn, lock_id, model)
            conn.commit()
            try:
                yield got
            finally:
                if got:
                    advisory_unlock(conn, lock_id, model)
                    conn.commit()

    def tick(self, now: datetime | None = None, deliver: bool = True) -> TickReport:
        """Close, evaluate and decide what is due for every model no other replica holds; then
        deliver alerts."""
        started = time.perf_counter()
        report = TickReport()
        wall = now or datetime.now(UTC)
        with unit_of_work(self.factory) as session:
            models = models_with_work(session)
        random.shuffle(models)  # replicas start at different models, so they spread out
        for model in models:
            with self.lock(model=model) as got:
                if got:
                    self._evaluate_model(model, wall, report)
                    report.models.append(model)
                else:
                    report.models_held_elsewhere += 1
        with self.lock() as got:
            if got:
                with unit_of_work(self.factory) as session:  # late labels: realized accuracy
                    refresh_realized(session, wall)
        report.ran = bool(report.models) or not report.models_held_elsewhere
        if deliver:
            report.deliveries = self.deliver(now)
        report.seconds = time.perf_counter() - started
        if report.windows_evaluated:
            metric("driftwatch_evaluation_seconds").observe(
                report.seconds / report.windows_evaluated
            )
        return report

    def _evaluate_model(self, model: str, wall: datetime, report: TickReport) -> None:
        """Close and evaluate one model's windows, in window order; the caller holds its lock."""
        settle = {} if self.settle_seconds is None else {"settle_seconds": self.settle_seconds}
        with unit_of_work(self.factory) as session:
            closed = close_windows(session, self.settings, wall, models=[model], **settle)
            report.windows_closed += len(closed)
        while True:
            with unit_of_work(self.factory) as session:
                evaluations = evaluate_pending(
                    session, self.settings, wall, limit=self.batch_size, models=[model]
                )
                for ev in evaluations:
                    w = ev.window
                    decisions = apply_window(session, self.settings, w, ev.results, wall)
                    queue_retrains(session, w, decisions)
                    report.decisions += decisions
                    report.superseded += resolve_superseded(
                        session, self.settings, w, ev.results, wall
                    )
                    metric("driftwatch_windows_evaluated_total").labels(
                        model=w.model, version=w.model_version, arm=w.arm
                    ).inc()
            report.windows_evaluated += len(evaluations)
            report.window_ids += [ev.window.id for ev in evaluations]
            if len(evaluations) < self.batch_size:
                return

    def deliver(self, now: datetime | None = None) -> Counter[str]:

        return deliver_pending(self.factory, self.settings, now)

    def retrain(self) -> dict[str, Any] | None:
        """Run one queued retrain job (when enabled) and judge running rollouts.

        Returns :func:`retrain.worker.run_once`'s summary, or None when another replica holds
        the retrain lock.
        """
        with self.lock(RETRAIN_LOCK_OFFSET) as got:
            if not got:
                log.debug("another evaluator is running retrain jobs: skipping")
                return None

            return run_once(
                self.settings, self.factory, run_jobs=self.settings.scheduler.run_retrain_jobs
            )

    def retention(self, now: datetime | None = None) -> dict[str, int]:
        """Delete logs, windows and resolved alerts older than the retention settings."""

        now = now or datetime.now(UTC)
        keep = self.settings.retention
        logs_cut = now - timedelta(days=keep.predictions_days)
        results_cut = now - timedelta(days=keep.results_days)
        with self.lock() as got:
            if not got:
                return {}
            with unit_of_work(self.factory) as session:
                counts = delete_expired(session, logs_cut, results_cut)
        log.info("retention: deleted %s", counts)
        return counts


# APScheduler stores jobs by reference ("module:function") with picklable arguments; the
# live Evaluator of this process is looked up here, so no settings (or secrets) go to the DB.
_EVALUATORS: dict[str, Evaluator] = {}


def run_job(name: str, key: str = "default") -> Any:
    """Entry point of the stored jobs: ``evaluate``, ``deliver``, ``retention`` or ``retrain``."""
    evaluator = _EVALUATORS.get(key)
    if evaluator is None:
        log.warning("no evaluator registered in this process for job %s", name)
        return None
    try:
        if name == "evaluate":
            return evaluator.tick(deliver=False)
        if name == "deliver":
            return evaluator.deliver()
        if name == "retrain":
            return evaluator.retrain()
        return evaluator.retention()
    except Exception:
        log.exception("scheduler job %s failed", name)
        return None


def build_scheduler(evaluator: Evaluator, key: str = "default") -> Any:
    """A BackgroundScheduler with its job store in the evaluator's database (not started)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler

    cfg = evaluator.settings.scheduler
    _EVALUATORS[key] = evaluator
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=evaluator.engine)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": int(max(3600, 10 * cfg.interval_seconds)),
        },
        timezone=UTC,
    )
    jobs = (
        ("evaluate", cfg.interval_seconds),
        ("deliver", max(1.0, cfg.interval_seconds / 3)),
        ("retention", cfg.retention_interval_seconds),
        ("retrain", cfg.retrain_interval_seconds),
    )
    for (name, seconds), job_id in zip(jobs, JOB_IDS, strict=True):
        scheduler.add_job(
            "monitor.scheduler:run_job",
            "interval",
            args=[name, key],
            seconds=seconds,
            id=job_id,
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
    return scheduler


def queue_retrains(session: Session, window: Window, decisions: list[Decision]) -> None:
    """Queue a retrain job for each decision that asks for one, in the caller's transaction."""
    for d in decisions:
        if not d.retrain or d.alert_id is None:
            continue
        enqueue_job(
            session,
            window.model,
            f"alert-{d.alert_id}",
            source="policy",
            reason=d.retrain_reason or "",
            params={"version": window.model_version, "alert_id": d.alert_id, "family": d.family},
        )
