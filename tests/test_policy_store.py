"""The policy applied to stored windows: flapping never pages twice, the retrain budget holds,
and every transition is stored with its evidence (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.policy.apply import apply_window
from monitor.results import DriftResult, FeatureDrift
from monitor.scheduler import queue_retrains
from monitor.settings import AlertSettings, PolicySettings, Settings, WebhookChannel
from monitor.store.alerting_tables import AlertDeliveryRow, AlertRow, PolicyTransitionRow
from monitor.store.db import unit_of_work
from monitor.store.tables import Window
from retrain.jobs import list_jobs

T0 = datetime(2026, 11, 22, tzinfo=UTC)


def result(drifted: bool) -> DriftResult:
    effect = 0.5 if drifted else 0.01
    return DriftResult(
        "pixel",
        "pixel.ks",
        "ks",
        effect,
        1e-9 if drifted else 0.6,
        effect,
        0.1,
        0.01,
        drifted,
        1000,
        200,
        (
            FeatureDrift(
                "brightness", effect, 1e-9, effect, 100.0, 82.0 if drifted else 99.0, drifted
            ),
        ),
    )


def feed(sessions: sessionmaker[Session], settings: Settings, pattern: str, minutes: float) -> None:
    for i, ch in enumerate(pattern):
        end = T0 + timedelta(minutes=minutes * (i + 1))
        with unit_of_work(sessions) as session:
            w = Window(
                model="digits",
                model_version="v1",
                arm="all",
                first_id=i * 10 + 1,
                last_id=i * 10 + 10,
                start_ts=end - timedelta(minutes=minutes),
                end_ts=end,
                n=10,
                closed_by="time",
                state="evaluated",
                closed_at=end,
            )
            session.add(w)
            session.flush()
            decisions = apply_window(session, settings, w, [result(ch == "D")], now=end)
            queue_retrains(session, w, decisions)


def make(db_url: str, settings_for: Callable[..., Settings], **policy: float) -> Settings:
    return settings_for(
        db_url,
        policy=PolicySettings(
            windows_to_warn=1,
            windows_to_alert=2,
            windows_to_resolve=2,
            retrain_families=["pixel"],
            **policy,
        ),
        alerts=AlertSettings(channels=[WebhookChannel(url="http://127.0.0.1:9/unused")]),
    )


def test_flapping_inside_cooldown_reopens_without_a_second_page(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = make(db_url, settings_for, cooldown_seconds=3600)
    feed(sessions, settings, "DD..DD..", minutes=5)
    with sessions() as session:
        alerts = list(session.scalars(select(AlertRow)))
        keys = sorted(d.event_key for d in session.scalars(select(AlertDeliveryRow)))
        transitions = list(
            session.scalars(select(PolicyTransitionRow).order_by(PolicyTransitionRow.id))
        )
    assert len(alerts) == 1 and alerts[0].reopen_count == 1 and alerts[0].status == "resolved"
    assert keys == ["resolve:0", "trigger:0"]  # one page, one resolve, nothing for the flap
    assert [t.to_state for t in transitions] == [
        "warn",
        "alert",
        "resolved",
        "warn",
        "alert",
        "resolved",
    ]
    assert [t.notify for t in transitions if t.to_state == "alert"] == [True, False]
    first = transitions[1]
    assert first.evidence["top_features"] == ["brightness −18%"]
    assert first.evidence["window_end"] == (T0 + timedelta(minutes=10)).isoformat()


def test_retrain_budget_across_alerts(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = make(db_url, settings_for, cooldown_seconds=0, retrain_max_per_day=1)
    # three separate alerts within 24 hours (windows of 2 h): only the first retrains
    feed(sessions, settings, "DD..DD..DD", minutes=120)
    with sessions() as session:
        alerts = [
            t
            for t in session.scalars(select(PolicyTransitionRow).order_by(PolicyTransitionRow.id))
            if t.to_state == "alert"
        ]
        jobs = list_jobs(session, "digits")
    assert [t.retrain for t in alerts] == [True, False, False]
    assert "budget spent" in (alerts[1].retrain_reason or "")
    assert len(jobs) == 1 and jobs[0].source == "policy"
