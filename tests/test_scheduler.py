"""The evaluator: close -> evaluate -> policy -> alerts, once, even with two schedulers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.batch import LogBatch
from monitor.demo.receiver import Receiver
from monitor.detectors.simulate import synthetic_batch
from monitor.imagestats import STAT_NAMES
from monitor.profiles import fit_profile_from_batch
from monitor.scheduler import Evaluator, TickReport, build_scheduler
from monitor.schemas import PredictionLog
from monitor.settings import (
    AlertSettings,
    DatabaseSettings,
    ImpactSettings,
    PolicySettings,
    SchedulerSettings,
    Settings,
    WebhookChannel,
    WindowSettings,
)
from monitor.store.alerting_tables import AlertDeliveryRow, AlertRow, PolicyTransitionRow
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.ingest_repo import write_batch
from monitor.store.tables import DriftResultRow, Window

WINDOW = 200


def logs_from_batch(
    batch: LogBatch,
    start: datetime,
    tag: str,
    model: str = "digits",
    version: str = "v1",
    step: float = 0.05,
) -> list[PredictionLog]:
    """Prediction logs carrying a synthetic batch's columns."""
    assert batch.embeddings is not None and batch.pixel is not None
    return [
        PredictionLog(
            model=model,
            model_version=version,
            request_id=f"{tag}-{i}",
            timestamp=start + timedelta(seconds=step * i),
            predicted_class=int(batch.predicted[i]),
            probabilities=[float(p) for p in batch.probs[i] / batch.probs[i].sum()],
            embedding=batch.embeddings[i].tolist(),
            pixel_stats={n: float(v) for n, v in zip(STAT_NAMES, batch.pixel[i], strict=True)},
        )
        for i in range(len(batch.predicted))
    ]


def make_settings(db_url: str, hook: str, **overrides: Any) -> Settings:
    return Settings(
        environment="test",
        database=DatabaseSettings(url=db_url),
        windows=WindowSettings(max_count=WINDOW, min_count=50, max_seconds=3600),
        # drift-only paging: the synthetic shift here costs no accuracy, so impact gating
        # would (rightly) only warn; gating is tested in tests/test_impact_policy.py
        policy=PolicySettings(
            windows_to_warn=1,
            windows_to_alert=2,
            windows_to_resolve=2,
            impact=ImpactSettings(enabled=False),
        ),
        alerts=AlertSettings(channels=[WebhookChannel(url=hook, secret="whsec_" + "k" * 32)]),
        scheduler=SchedulerSettings(interval_seconds=0.2),
        **overrides,
    )


def seed_store(
    factory: sessionmaker[Session], settings: Settings, clean: int, shifted: int, start: datetime
) -> None:
    """An active reference, then ``clean`` clean and ``shifted`` shifted windows of logs."""
    with unit_of_work(factory) as session:
        fit_profile_from_batch(
            session, settings, "digits", "v1", synthetic_batch(2000, seed=9), "ref", activate=True
        )
    parts = [synthetic_batch(WINDOW, seed=100 + i) for i in range(clean)] + [
        synthetic_batch(WINDOW, seed=200 + i, brightness=-0.4, embedding_shift=3.0)
        for i in range(shifted)
    ]
    logs: list[PredictionLog] = []
    for i, part in enumerate(parts):
        logs += logs_from_batch(part, start + timedelta(seconds=WINDOW * 0.05 * i), f"w{i}")
    with unit_of_work(factory) as session:
        write_batch(session, logs)


class CountingEvaluator(Evaluator):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reports: list[TickReport] = []

    def tick(self, now: datetime | None = None, deliver: bool = True) -> TickReport:
        report = super().tick(now, deliver)
        self.reports.append(report)
        return report


def test_two_schedulers_on_postgresql_evaluate_each_window_once_and_alert_once(
    pg_url: str, wait_until: Callable[..., Any]
) -> None:
    with Receiver() as rx:
        settings = make_settings(pg_url, rx.url)
        engines = [make_engine(settings.database) for _ in range(2)]
        start = datetime.now(UTC) - timedelta(hours=1)
        seed_store(session_factory(engines[0]), settings, clean=2, shifted=4, start=start)
        evaluators = [
            CountingEvaluator(e, settings, batch_size=2, settle_seconds=0) for e in engines
        ]
        schedulers = [build_scheduler(ev, key=f"replica-{i}") for i, ev in enumerate(evaluators)]
        for s in schedulers:
            s.start()
        factory = session_factory(engines[0])

        def settled() -> bool:
            with factory() as session:
                open_windows = session.scalar(
                    select(func.count()).select_from(Window).where(Window.state != "evaluated")
                )
                done = session.scalar(select(func.count()).select_from(Window))
            return done == 6 and open_windows == 0 and bool(rx.received)

        wait_until(settled, timeout=60, what="6 evaluated windows and a page")
        for s in schedulers:
            s.shutdown()
        for e in engines:
            e.dispose()
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(Window)) == 6
        # each window scored once: four families, one row each, and counted once in total
        per_window = session.execute(
            select(DriftResultRow.window_id, func.count()).group_by(DriftResultRow.window_id)
        ).all()
        assert len(per_window) == 6 and {n for _, n in per_window} == {4}
        alerts = list(session.scalars(select(AlertRow)))
        deliveries = session.scalar(select(func.count()).select_from(AlertDeliveryRow))
        transitions = [
            (t.family, t.to_state)
            for t in session.scalars(select(PolicyTransitionRow).order_by(PolicyTransitionRow.id))
        ]
    evaluated = sum(r.windows_evaluated for ev in evaluators for r in ev.reports)
    assert evaluated == 6
    assert all(r.ran for ev in evaluators for r in ev.reports if r.windows_evaluated)
    families = {a.family for a in alerts}
    assert len(alerts) == len(families) >= 1  # one alert per drifted family, never two
    assert sum(a.paged for a in alerts) == 1  # and one page for the incident
    assert deliveries == 1 and len(rx.received) == 1
    assert [s for f, s in transitions if f == "pixel"] == ["warn", "alert"]


def test_catch_up_after_downtime_evaluates_in_order_and_resolves(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    with Receiver() as rx:
        settings = make_settings(db_url, rx.url)
        start = datetime.now(UTC) - timedelta(hours=2)
        # while the evaluator was down: 1 clean, 3 shifted, 2 clean windows arrived
        seed_store(sessions, settings, clean=1, shifted=3, start=start)
        later = [synthetic_batch(WINDOW, seed=300 + i) for i in range(2)]
        logs: list[PredictionLog] = []
        for i, part in enumerate(later):
            logs += logs_from_batch(
                part, start + timedelta(seconds=WINDOW * 0.05 * (4 + i)), f"late{i}"
            )
        with unit_of_work(sessions) as session:
            write_batch(session, logs)
        evaluator = Evaluator(sessions.kw["bind"], settings, batch_size=4, settle_seconds=0)
        report = evaluator.tick()
        assert report.windows_evaluated == 6
        again = evaluator.tick()
        assert again.windows_evaluated == 0 and again.decisions == []
    pixel = [d.transition.to_state for d in report.decisions if d.family == "pixel"]
    events = [r.json["event"] for r in rx.received]
    with sessions() as session:
        pixel_alert = session.scalars(select(AlertRow).where(AlertRow.family == "pixel")).one()
    assert pixel == ["warn", "alert", "resolved"] and pixel_alert.status == "resolved"
    assert events == ["trigger", "resolve"]


def test_policy_evidence_names_what_moved(db_url: str, sessions: sessionmaker[Session]) -> None:
    with Receiver() as rx:
        settings = make_settings(db_url, rx.url)
        seed_store(
            sessions, settings, clean=0, shifted=2, start=datetime.now(UTC) - timedelta(hours=1)
        )
        Evaluator(sessions.kw["bind"], settings, settle_seconds=0).tick()
    assert len(rx.received) == 1
    body = rx.received[0].json
    assert body["event"] == "trigger" and body["model"] == "digits"
    assert body["top_features"] and body["statistic"] > body["threshold"] * 0
    with sessions() as session:
        pixel = session.scalars(select(AlertRow).where(AlertRow.family == "pixel")).one()
    assert any(f.startswith("brightness") for f in pixel.evidence["top_features"])
    assert np.isfinite(body["statistic"]) and body["effect_size"] > 0


def test_retention_deletes_what_expired_and_keeps_open_alerts(
    db_url: str, sessions: sessionmaker[Session]
) -> None:
    with Receiver() as rx:
        settings = make_settings(db_url, rx.url)
        start = datetime.now(UTC) - timedelta(hours=1)
        seed_store(sessions, settings, clean=1, shifted=3, start=start)
        evaluator = Evaluator(sessions.kw["bind"], settings, settle_seconds=0)
        evaluator.tick()
    with sessions() as session:
        windows = session.scalar(select(func.count()).select_from(Window))
        open_alerts = session.scalar(
            select(func.count()).select_from(AlertRow).where(AlertRow.status != "resolved")
        )
    assert windows == 4 and open_alerts
    keep = settings.retention
    assert evaluator.retention(datetime.now(UTC)) == {  # nothing has expired yet
        "predictions": 0, "labels": 0, "windows": 0, "transitions": 0, "alerts": 0,
    }  # fmt: skip
    later = datetime.now(UTC) + timedelta(days=max(keep.predictions_days, keep.results_days) + 1)
    deleted = evaluator.retention(later)
    assert deleted["predictions"] == 4 * WINDOW and deleted["windows"] == 4
    assert deleted["transitions"] > 0 and deleted["alerts"] == 0  # open alerts stay
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Window)) == 0
        assert session.scalar(select(func.count()).select_from(AlertRow)) == open_alerts
