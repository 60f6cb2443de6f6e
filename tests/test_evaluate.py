"""Evaluating closed windows against the active profile: results stored once per window and
family, windows marked, missing profiles handled; and the canary arm comparison."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.detectors.simulate import synthetic_batch
from monitor.evaluate import (
    compare_arms,
    evaluate_pending,
    evaluate_window,
    reopen_windows,
    stored_results,
)
from monitor.profiles import activate_profile, fit_profile_from_batch
from monitor.settings import FAMILIES, DetectorSettings, Settings, WindowSettings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.tables import DriftResultRow, Prediction, Window
from monitor.windows import close_windows
from tests.test_profiles import batch_logs as profile_batch_logs

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


#: The stored logs of these tests carry float16 embeddings, as the SDK sends them.
batch_logs = partial(profile_batch_logs, dtype="float16")


def _settings(settings_for: Callable[..., Settings], db_url: str) -> Settings:
    return settings_for(db_url, windows=WindowSettings(max_count=300, max_seconds=3600))


def test_clean_then_shifted_windows(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = _settings(settings_for, db_url)
    with unit_of_work(sessions) as s:
        fit_profile_from_batch(
            s, settings, "digits", "v1", synthetic_batch(1000, seed=1, dim=32), "ref", activate=True
        )
        # seed 3: a clean window no family flags (at alpha 0.01 about one in 100 clean
        # windows is a false alarm, e.g. seed 2's confidence; the calibration tests own that)
        insert_predictions(s, batch_logs(synthetic_batch(300, seed=3, dim=32), T0, "clean"))
        insert_predictions(
            s,
            batch_logs(
                synthetic_batch(300, seed=4, dim=32, brightness=-0.3),
                T0 + timedelta(seconds=300),
                "dark",
            ),
        )
    with unit_of_work(sessions) as s:
        assert len(close_windows(s, settings, T0 + timedelta(seconds=600), settle_seconds=0)) == 2
        evaluations = evaluate_pending(s, settings)
    assert [len(e.results) for e in evaluations] == [len(FAMILIES)] * 2
    clean, dark = evaluations
    assert not clean.drifted
    pixel = next(r for r in dark.results if r.family == "pixel")
    assert pixel.drifted and pixel.n_cur == 300
    assert any(f.name == "brightness" and f.drifted and f.change < -0.2 for f in pixel.features)
    with unit_of_work(sessions) as s:
        windows = s.scalars(select(Window).order_by(Window.id)).all()
        assert [w.state for w in windows] == ["evaluated", "evaluated"]
        assert all(w.evaluated_at is not None for w in windows)
        again = stored_results(s, windows[1].id)
        assert sorted(again, key=lambda r: r.family) == sorted(dark.results, key=lambda r: r.family)
        row = s.scalars(
            select(DriftResultRow).where(
                DriftResultRow.family == "pixel", DriftResultRow.window_id == windows[1].id
            )
        ).one()
        assert row.window_end == windows[1].end_ts and row.arm == "all" and row.drifted
        assert evaluate_pending(s, settings) == []  # nothing left


def test_results_are_stored_once_per_window_and_family(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = _settings(settings_for, db_url)
    with unit_of_work(sessions) as s:
        fit_profile_from_batch(
            s, settings, "digits", "v1", synthetic_batch(500, seed=1, dim=16), "ref", activate=True
        )
        insert_predictions(s, batch_logs(synthetic_batch(300, seed=2, dim=16), T0, "x"))
        (window,) = close_windows(s, settings, T0 + timedelta(seconds=300), settle_seconds=0)
        evaluate_window(s, settings, window)
        window.state = "closed"  # a second evaluator re-scoring the same window
        evaluate_window(s, settings, window)
        count = s.scalar(select(func.count()).select_from(DriftResultRow))
    assert count == len(FAMILIES)


def test_window_without_profile_waits_for_one(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = _settings(settings_for, db_url)
    with unit_of_work(sessions) as s:
        insert_predictions(s, batch_logs(synthetic_batch(300, seed=2, dim=16), T0, "x"))
        close_windows(s, settings, T0 + timedelta(seconds=300), settle_seconds=0)
        (evaluation,) = evaluate_pending(s, settings)
        assert evaluation.results == [] and evaluation.window.state == "no_profile"
        profile = fit_profile_from_batch(
            s, settings, "digits", "v1", synthetic_batch(500, seed=1, dim=16), "ref"
        )
        activate_profile(s, profile.id)
        assert reopen_windows(s, "digits", "v1") == 1
        (evaluation,) = evaluate_pending(s, settings, limit=5)
        assert len(evaluation.results) == len(FAMILIES) and evaluation.profile_id == profile.id


def test_canary_arm_compared_with_stable_arm() -> None:
    detectors = DetectorSettings()
    stable = synthetic_batch(800, seed=1)
    same = synthetic_batch(800, seed=2)
    unsure = synthetic_batch(800, seed=3, temperature=3.0)  # a less confident canary model
    assert not any(r.drifted for r in compare_arms(stable, same, detectors, "digits"))
    confidence = {r.family: r for r in compare_arms(stable, unsure, detectors, "digits")}
    assert confidence["confidence"].drifted


def test_a_window_that_cannot_be_scored_does_not_block_the_queue(
    db_url: str, sessions: sessionmaker[Session], settings_for: Callable[..., Settings]
) -> None:
    settings = _settings(settings_for, db_url)
    with unit_of_work(sessions) as s:
        fit_profile_from_batch(
            s, settings, "digits", "v1", synthetic_batch(500, seed=1, dim=16), "ref", activate=True
        )
        insert_predictions(s, batch_logs(synthetic_batch(600, seed=2, dim=16), T0, "x"))
        first, second = close_windows(s, settings, T0 + timedelta(seconds=700), settle_seconds=0)
        # retention deleted the first window's logs before it was evaluated
        s.execute(delete(Prediction).where(Prediction.id <= first.last_id))
        evaluations = evaluate_pending(s, settings)
        assert [e.window.id for e in evaluations] == [second.id]
        assert first.state == "failed" and second.state == "evaluated"
        assert (
            s.scalar(
                select(func.count())
                .select_from(DriftResultRow)
                .where(DriftResultRow.window_id == first.id)
            )
            == 0
        )
