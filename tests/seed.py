"""Store rows the API tests read: evaluated windows with pixel drift, the policy's state, an alert."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from monitor.store.alerting_tables import AlertRow, PolicyStateRow
from monitor.store.db import unit_of_work
from monitor.store.tables import DriftResultRow, Window


def seed_drift(factory: sessionmaker[Session], now: datetime, n_windows: int = 12) -> None:
    """``n_windows`` hourly windows of ``digits`` v1 ending at ``now``, the last two with pixel
    drift (brightness down 18%), its policy state ``alert`` and one firing critical alert."""
    with unit_of_work(factory) as session:
        for i in range(n_windows):
            end = now - timedelta(hours=n_windows - i)
            w = Window(
                model="digits",
                model_version="v1",
                arm="all",
                first_id=i * 10 + 1,
                last_id=i * 10 + 10,
                start_ts=end - timedelta(minutes=5),
                end_ts=end,
                n=10,
                closed_by="count",
                state="evaluated",
                closed_at=end,
                evaluated_at=end,
            )
            session.add(w)
            session.flush()
            drifted = i >= n_windows - 2
            session.add(
                DriftResultRow(
                    window_id=w.id,
                    model="digits",
                    model_version="v1",
                    arm="all",
                    window_end=end,
                    family="pixel",
                    kind="pixel.ks",
                    method="ks",
                    statistic=0.4 if drifted else 0.05,
                    p_value=1e-8 if drifted else 0.5,
                    effect_size=0.4 if drifted else 0.02,
                    threshold=0.1,
                    alpha=0.01,
                    drifted=drifted,
                    n_ref=1000,
                    n_cur=10,
                    details=[
                        {
                            "name": "brightness",
                            "statistic": 0.4,
                            "p_value": 1e-8,
                            "effect_size": 0.4,
                            "ref_value": 100.0,
                            "cur_value": 82.0,
                            "drifted": True,
                            "relative": True,
                        }
                    ],
                )
            )
        session.add(
            PolicyStateRow(
                model="digits",
                model_version="v1",
                family="pixel",
                state="alert",
                drift_streak=2,
                clean_streak=0,
            )
        )
        session.add(
            AlertRow(
                model="digits",
                model_version="v1",
                family="pixel",
                severity="critical",
                status="firing",
                dedup_key="k",
                opened_at=now,
                summary="2 drifted windows",
                evidence={},
                reopen_count=0,
                updated_at=now,
            )
        )
