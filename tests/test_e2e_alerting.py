"""End to end on the real broker: SDK -> Kafka -> ingest worker -> windows -> results -> policy
-> exactly one alert for a sustained shift, and one resolve when it ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ingest.sdk import PredictionLogger
from ingest.worker import IngestWorker
from monitor.alerts.channels.webhook import verify
from monitor.demo.receiver import Receiver
from monitor.detectors.simulate import synthetic_batch
from monitor.profiles import fit_profile_from_batch
from monitor.scheduler import Evaluator
from monitor.settings import (
    AlertSettings,
    ImpactSettings,
    KafkaSettings,
    PolicySettings,
    Settings,
    WebhookChannel,
    WindowSettings,
)
from monitor.store.alerting_tables import AlertRow, PolicyTransitionRow
from monitor.store.db import unit_of_work
from monitor.store.tables import Prediction

WINDOW = 150
SECRET = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWtleS0yNGI="


def _stored(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Prediction)) or 0


def test_sustained_shift_alerts_once_and_resolves(
    db_url: str,
    sessions: sessionmaker[Session],
    make_topics: Callable[..., KafkaSettings],
    settings_for: Callable[..., Settings],
    wait_until: Callable[..., Any],
) -> None:
    kafka = make_topics()
    with Receiver() as rx:
        settings = settings_for(
            db_url,
            kafka,
            windows=WindowSettings(max_count=WINDOW, min_count=50, max_seconds=3600),
            # drift-only paging: this synthetic shift costs 5-13 points in windows of 150, too
            # close to the noise to page under impact gating (tested in test_impact_policy.py)
            policy=PolicySettings(
                windows_to_warn=1,
                windows_to_alert=2,
                windows_to_resolve=2,
                impact=ImpactSettings(enabled=False),
            ),
            alerts=AlertSettings(channels=[WebhookChannel(url=rx.url, secret=SECRET)]),
        )
        with unit_of_work(sessions) as session:
            fit_profile_from_batch(
                session,
                settings,
                "digits",
                "v1",
                synthetic_batch(2000, seed=9, dim=32),
                "ref",
                activate=True,
            )
        stop = threading.Event()
        worker = IngestWorker(settings)
        thread = threading.Thread(target=worker.run, args=(stop,), daemon=True)
        thread.start()
        evaluator = Evaluator(sessions.kw["bind"], settings, settle_seconds=0)
        logger = PredictionLogger(kafka, "digits", "v1", embedding_dtype="float32")
        phases = [
            ("clean", 2, {}),
            ("shifted", 3, {"brightness": -0.4, "embedding_shift": 3.0}),
            ("recovered", 3, {}),
        ]
        stored, seed = 0, 0
        try:
            for _name, windows, shift in phases:
                for _ in range(windows):
                    seed += 1
                    b = synthetic_batch(WINDOW, seed=seed, dim=32, **shift)
                    logger.log_batch(
                        b.probs,
                        embeddings=b.embeddings,
                        pixel_stats=b.pixel,
                        labels=b.labels.tolist(),
                    )
                    assert logger.flush()
                    stored += WINDOW
                    wait_until(lambda n=stored: _stored(sessions) >= n, what=f"{stored} logs")
                    evaluator.tick()
        finally:
            logger.close()
            stop.set()
            thread.join(30)
    assert logger.dropped == 0 and worker.stats.dead_lettered == 0
    with sessions() as session:
        alerts = list(session.scalars(select(AlertRow)))
        pixel = [
            t.to_state
            for t in session.scalars(
                select(PolicyTransitionRow)
                .where(PolicyTransitionRow.family == "pixel")
                .order_by(PolicyTransitionRow.id)
            )
        ]
    assert pixel == ["warn", "alert", "resolved"]
    # one incident, one page: families drifting together join the first alert
    paged = [a for a in alerts if a.paged]
    assert len(paged) == 1
    assert all(a.grouped_into == paged[0].id for a in alerts if not a.paged)
    assert len({a.family for a in alerts}) == len(alerts) and "pixel" in {a.family for a in alerts}
    assert all(a.status == "resolved" for a in alerts)
    assert [r.json["event"] for r in rx.received] == ["trigger", "resolve"]
    assert {r.json["alert_id"] for r in rx.received} == {paged[0].id}
    assert all(verify(r.body, r.headers, SECRET) for r in rx.received)
