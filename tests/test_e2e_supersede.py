"""Drift resolves after promotion (:mod:`monitor.policy.supersede`), end to end on SQLite and
PostgreSQL: the real evaluator closes, evaluates and decides stored windows, the real registry
says which version is promoted, and alerts go to a local webhook receiver.

v1 alerts on a darker camera. v2 (retrained for that camera, so its own reference is the dark
camera) then serves it: v1's alert must stay open while v2 is only a canary (even with clean
windows) and while v2's promoted windows drift or have not been clean long enough, and resolve
exactly once (one resolve delivery, a transition naming v2) once they are.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.receiver import Receiver
from monitor.detectors.simulate import synthetic_batch
from monitor.imagestats import STAT_NAMES
from monitor.profiles import fit_profile_from_batch
from monitor.scheduler import Evaluator
from monitor.schemas import PredictionLog, encode_array
from monitor.settings import (
    AlertSettings,
    ImpactSettings,
    PolicySettings,
    Settings,
    WebhookChannel,
    WindowSettings,
)
from monitor.store.alerting_tables import AlertRow, PolicyStateRow, PolicyTransitionRow
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from retrain import registry

WINDOW, DIM, DARK = 120, 32, -0.35
T0 = datetime.now(UTC) - timedelta(hours=2)


class Run:
    """Stores one window of logs at a time and runs one evaluator tick after each."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        self.sessions, self.settings, self.seed = sessions, settings, 100
        self.evaluator = Evaluator(sessions.kw["bind"], settings, settle_seconds=0)

    def window(self, version: str, arm: str | None = None, **shift: Any) -> list[Any]:
        self.seed += 1
        b = synthetic_batch(WINDOW, seed=self.seed, dim=DIM, **shift)
        assert b.embeddings is not None and b.pixel is not None
        start = T0 + timedelta(seconds=(self.seed - 100) * WINDOW)
        logs = [
            PredictionLog.model_validate(
                {
                    "model": "digits",
                    "model_version": version,
                    "request_id": f"r{self.seed}-{i}",
                    "timestamp": start + timedelta(seconds=i),
                    "predicted_class": int(b.predicted[i]),
                    "probabilities": (b.probs[i] / b.probs[i].sum()).tolist(),
                    "embedding": encode_array(b.embeddings[i], "float32"),
                    "pixel_stats": dict(zip(STAT_NAMES, map(float, b.pixel[i]), strict=True)),
                    **({} if arm is None else {"arm": arm}),
                }
            )
            for i in range(WINDOW)
        ]
        with unit_of_work(self.sessions) as s:
            insert_predictions(s, logs)
        report = self.evaluator.tick()
        assert report.windows_evaluated == 1, report
        return report.superseded

    def v1_states(self) -> dict[str, str]:
        """Policy state of each of v1's families."""
        with self.sessions() as s:
            return dict(
                s.execute(
                    select(PolicyStateRow.family, PolicyStateRow.state).where(
                        PolicyStateRow.model_version == "v1"
                    )
                )
                .tuples()
                .all()
            )


def _set_state(sessions: sessionmaker[Session], version: str, state: str) -> None:
    with unit_of_work(sessions) as s:
        registry.set_state(s, registry.get_version(s, "digits", version), state, "test")


def test_v1_alert_resolves_only_once_promoted_v2_is_clean_against_its_own_reference(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
) -> None:
    with Receiver() as rx:
        settings = settings_for(
            db_url,
            windows=WindowSettings(max_count=WINDOW, min_count=50, max_seconds=3600),
            # drift-only paging: the synthetic shift here costs no accuracy, so impact gating
            # would (rightly) only warn; gating is tested in tests/test_impact_policy.py
            policy=PolicySettings(
                windows_to_warn=1,
                windows_to_alert=2,
                windows_to_resolve=2,
                impact=ImpactSettings(enabled=False),
            ),
            alerts=AlertSettings(channels=[WebhookChannel(url=rx.url)]),
        )
        with unit_of_work(sessions) as s:
            fit_profile_from_batch(
                s,
                settings,
                "digits",
                "v1",
                synthetic_batch(2000, seed=1, dim=DIM),
                "clean",
                activate=True,
            )
            fit_profile_from_batch(
                s,
                settings,
                "digits",
                "v2",
                synthetic_batch(2000, seed=2, dim=DIM, brightness=DARK),
                "dark camera",
                activate=True,
            )
            registry.register(s, "digits", "v1", {}, state="promoted")
            registry.register(s, "digits", "v2", {}, parent_version="v1")
        run = Run(sessions, settings)

        # v1 alerts on the darker camera
        run.window("v1")
        run.window("v1", brightness=DARK)
        run.window("v1", brightness=DARK)
        open_before = {f for f, st in run.v1_states().items() if st in ("warn", "alert")}
        assert "alert" in run.v1_states().values()
        assert [r.json["event"] for r in rx.received] == ["trigger"]

        # v2 only a canary: clean windows on its canary arm and unlabelled-arm traffic resolve
        # nothing, however many
        _set_state(sessions, "v2", "canary")
        for arm in ("canary", "canary", None, None, None):
            assert run.window("v2", arm, brightness=DARK) == []
        assert {f for f, st in run.v1_states().items() if st in ("warn", "alert")} == open_before

        # promoted, but its windows drift against its own reference (the clean camera is
        # not what it was built for), then one clean window is not yet enough
        _set_state(sessions, "v2", "promoted")
        assert run.window("v2", brightness=0.0, embedding_shift=2.0) == []
        assert run.window("v2", brightness=DARK) == []
        assert {f for f, st in run.v1_states().items() if st in ("warn", "alert")} == open_before
        assert [r.json["event"] for r in rx.received] == ["trigger"]

        # the second clean window in a row resolves every v1 state, once
        made = run.window("v2", brightness=DARK)
        assert made and all(t.to_state == "resolved" for t in made)
        assert {f for f, st in run.v1_states().items() if st == "resolved"} == open_before
        assert set(run.v1_states().values()) <= {"ok", "resolved"}
        assert run.window("v2", brightness=DARK) == []  # nothing left to resolve
        run.evaluator.deliver()

    with sessions() as s:
        alerts = list(s.scalars(select(AlertRow).where(AlertRow.model_version == "v1")))
        moves = list(
            s.scalars(
                select(PolicyTransitionRow).where(
                    PolicyTransitionRow.model_version == "v1",
                    PolicyTransitionRow.to_state == "resolved",
                )
            )
        )
        v2_alerts = list(s.scalars(select(AlertRow).where(AlertRow.model_version == "v2")))
    assert alerts and all(a.status == "resolved" for a in alerts)
    assert moves and all("superseded by v2 (promoted)" in m.reason for m in moves)
    assert {m.evidence["superseded_by"] for m in moves} == {"v2"}
    assert {m.family for m in moves} == open_before
    events = [(r.json["event"], r.json["alert_id"]) for r in rx.received]
    paged = [a.id for a in alerts if a.paged]
    assert events == [("trigger", paged[0]), ("resolve", paged[0])]  # one page, one resolve
    assert v2_alerts == []  # v2's warn on the clean camera never paged
