"""Tumbling windows: count or time, whichever first; per stream; no gaps or overlaps; idempotent."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from monitor.detectors.simulate import synthetic_batch
from monitor.evaluate import evaluate_pending
from monitor.profiles import fit_profile_from_batch
from monitor.schemas import PredictionLog
from monitor.settings import DatabaseSettings, Settings, WindowSettings
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.ingest_repo import insert_predictions, pin_shapes
from monitor.store.tables import Prediction, Window
from monitor.windows import (
    _close_stream,
    close_windows,
    load_window_logs,
    plan_window,
    screen_rows,
)
from tests.test_evaluate import batch_logs

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
CFG = WindowSettings(max_count=10, max_seconds=60, min_count=3)


def _store(
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    seconds: list[float],
    **fields: object,
) -> None:
    with unit_of_work(sessions) as s:
        insert_predictions(
            s, [make_log(timestamp=T0 + timedelta(seconds=x), **fields) for x in seconds]
        )


def _settings(settings_for: Callable[..., Settings], db_url: str) -> Settings:
    return settings_for(db_url, windows=CFG)


def test_count_closes_first_then_time(
    db_url: str,
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
) -> None:
    cfg = _settings(settings_for, db_url)
    _store(sessions, make_log, [i * 0.5 for i in range(25)])  # 25 logs in 12.5 s
    with unit_of_work(sessions) as s:
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=13), settle_seconds=0)
        assert [(w.n, w.closed_by) for w in closed] == [(10, "count"), (10, "count")]
    with unit_of_work(sessions) as s:  # the 5 left close by time once the span ends
        assert close_windows(s, cfg, now=T0 + timedelta(seconds=69), settle_seconds=0) == []
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=71), settle_seconds=0)
        assert [(w.n, w.closed_by) for w in closed] == [(5, "time")]
    with unit_of_work(sessions) as s:
        windows = s.scalars(select(Window).order_by(Window.first_id)).all()
        ids = list(s.scalars(select(Prediction.id).order_by(Prediction.id)))
    assert [w.first_id for w in windows] == [ids[0], ids[10], ids[20]]
    assert [w.last_id for w in windows] == [ids[9], ids[19], ids[24]]
    assert windows[0].start_ts == T0 and windows[0].end_ts == T0 + timedelta(seconds=4.5)
    assert {w.state for w in windows} == {"closed"}


def test_later_log_closes_a_span_and_small_windows_wait(
    db_url: str,
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
) -> None:
    cfg = _settings(settings_for, db_url)
    _store(sessions, make_log, [0, 1, 2, 3, 100, 101])
    with unit_of_work(sessions) as s:  # catch-up: the span 0..60 is over because 100 arrived
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=101), settle_seconds=0)
        assert [(w.n, w.closed_by) for w in closed] == [(4, "time")]
        # two logs after 100 s: below min_count even when their span has ended
        assert close_windows(s, cfg, now=T0 + timedelta(seconds=500), settle_seconds=0) == []
    _store(sessions, make_log, [400])
    with unit_of_work(sessions) as s:
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=500), settle_seconds=0)
        assert [(w.n, w.closed_by) for w in closed] == [(3, "time")]


def test_streams_are_separate_per_version_and_arm(
    db_url: str,
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
) -> None:
    cfg = _settings(settings_for, db_url)
    _store(sessions, make_log, list(range(10)), arm="stable")
    _store(sessions, make_log, list(range(10)), arm="canary")
    _store(sessions, make_log, list(range(4)), model_version="v2")
    with unit_of_work(sessions) as s:
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=10), settle_seconds=0)
        got = sorted((w.model_version, w.arm, w.n) for w in closed)
    assert got == [("v1", "canary", 10), ("v1", "stable", 10)]
    with unit_of_work(sessions) as s:
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=61), settle_seconds=0)
        assert [(w.model_version, w.arm, w.n) for w in closed] == [("v2", "all", 4)]


def test_two_evaluators_never_create_a_window_twice(
    db_url: str,
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
) -> None:
    cfg = _settings(settings_for, db_url)
    _store(sessions, make_log, list(range(20)))
    now = T0 + timedelta(seconds=30)
    with unit_of_work(sessions) as first:
        assert len(close_windows(first, cfg, now, settle_seconds=0)) == 2
    with unit_of_work(sessions) as again:  # replaying changes nothing
        assert close_windows(again, cfg, now, settle_seconds=0) == []
    # An evaluator that planned from stale state (before the windows above existed) loses on
    # the unique key and stops on that stream, without error and without a duplicate.
    with unit_of_work(sessions) as stale:
        assert _close_stream(stale, CFG, "digits", "v1", None, 0, now) == []
    with unit_of_work(sessions) as s:
        assert len(s.scalars(select(Window)).all()) == 2


def test_concurrent_closers_on_postgresql(
    pg_url: str,
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
) -> None:
    """Two transactions close the same stream at once: one wins, the other blocks on the key
    and then backs off; the windows exist once."""
    engine = make_engine(DatabaseSettings(url=pg_url))
    sessions = session_factory(engine)
    cfg = _settings(settings_for, pg_url)
    _store(sessions, make_log, list(range(20)))
    now = T0 + timedelta(seconds=30)
    barrier = threading.Barrier(2)
    counts: list[int] = []

    def worker() -> None:
        with unit_of_work(sessions) as s:
            s.execute(select(Prediction.id).limit(1)).all()
            barrier.wait()
            counts.append(len(close_windows(s, cfg, now, settle_seconds=0)))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    with unit_of_work(sessions) as s:
        assert len(s.scalars(select(Window)).all()) == 2
    engine.dispose()
    assert sorted(counts) == [0, 2]


def test_logs_still_settling_are_not_windowed(
    db_url: str,
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
) -> None:
    """A log stored moments ago may sit above an id still in flight: the run stops there."""
    cfg = _settings(settings_for, db_url)
    _store(sessions, make_log, list(range(20)))
    with unit_of_work(sessions) as s:
        assert close_windows(s, cfg, now=T0 + timedelta(seconds=100)) == []  # all fresh
        ids = list(s.scalars(select(Prediction.id).order_by(Prediction.id)))
        old = datetime.now(UTC) - timedelta(minutes=5)
        s.execute(update(Prediction).where(Prediction.id != ids[12]).values(ingested_at=old))
    with unit_of_work(sessions) as s:
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=13))
        assert [(w.first_id, w.last_id, w.closed_by) for w in closed] == [(ids[0], ids[9], "count")]
        # ids 10, 11 are settled and their span is over, but id 12 is not: they wait for it
        assert close_windows(s, cfg, now=T0 + timedelta(seconds=100)) == []
        s.execute(update(Prediction).values(ingested_at=old))
        closed = close_windows(s, cfg, now=T0 + timedelta(seconds=100))
        assert [(w.first_id, w.last_id) for w in closed] == [(ids[10], ids[19])]


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.floats(0, 40), min_size=0, max_size=40),
    elapsed=st.floats(0, 400),
)
def test_plan_window_properties(gaps: list[float], elapsed: float) -> None:
    ts, t = [], T0
    for gap in gaps:
        t += timedelta(seconds=gap)
        ts.append(t)
    now = (ts[-1] if ts else T0) + timedelta(seconds=elapsed)
    plan = plan_window(ts, CFG, now)
    if len(ts) >= CFG.max_count:
        assert plan is not None and plan.n == CFG.max_count and plan.closed_by == "count"
    elif plan is not None:
        assert plan.closed_by == "time"
        assert CFG.min_count <= plan.n <= len(ts)
        span_end = ts[0] + timedelta(seconds=CFG.max_seconds)
        assert now >= span_end or ts[-1] >= span_end
        # a window never drops a log inside its span unless it was filled up to min_count
        inside = sum(x < span_end for x in ts)
        assert plan.n == max(inside, CFG.min_count)
    else:
        span_end = ts[0] + timedelta(seconds=CFG.max_seconds) if ts else now
        assert not ts or len(ts) < CFG.min_count or (now < span_end and ts[-1] < span_end)


# ---------------------------------------------------------------- odd rows


def test_a_window_evaluates_the_rows_of_the_model_shape_and_counts_the_rest(
    db_url: str,
    sessions: sessionmaker[Session],
    make_log: Callable[..., PredictionLog],
    settings_for: Callable[..., Settings],
) -> None:
    """Rows stored before shapes were pinned (or written past ingest): 3 classes, an 8-d
    embedding, a NaN embedding among 10-class 16-d logs. The window is scored on the rest."""
    settings = settings_for(db_url, windows=WindowSettings(max_count=300, max_seconds=3600))
    with unit_of_work(sessions) as s:
        fit_profile_from_batch(
            s, settings, "digits", "v1", synthetic_batch(600, seed=1, dim=16), "ref", activate=True
        )
        logs = batch_logs(synthetic_batch(296, seed=3, dim=16), T0, "clean")
        odd = [
            make_log(timestamp=T0, n_classes=3),
            make_log(timestamp=T0, dim=8),
            make_log(timestamp=T0).model_copy(update={"embedding": [float("nan")] * 16}),
            make_log(timestamp=T0, n_classes=3),
        ]
        insert_predictions(s, logs[:100] + odd + logs[100:])
    with unit_of_work(sessions) as s:
        assert len(close_windows(s, settings, T0 + timedelta(seconds=3601), settle_seconds=0)) == 1
        (evaluation,) = evaluate_pending(s, settings)
    assert evaluation.window.state == "evaluated"
    assert evaluation.skipped == {"n_classes=3": 2, "embedding_dim=8": 1, "bad_embedding": 1}
    assert {r.n_cur for r in evaluation.results} == {296}


def test_the_pinned_shape_wins_over_the_window_majority(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    with unit_of_work(sessions) as s:
        pin_shapes(s, {"digits": (3, None)})
        insert_predictions(
            s, [make_log(timestamp=T0, n_classes=10) for _ in range(5)] + [make_log(n_classes=3)]
        )
        s.add(
            Window(
                model="digits",
                model_version="v1",
                arm="all",
                first_id=1,
                last_id=10**9,
                start_ts=T0,
                end_ts=T0,
                n=6,
                closed_by="count",
            )
        )
        s.flush()
        window = s.scalars(select(Window)).one()
        got = load_window_logs(s, window)
        assert len(got.batch) == 1 and got.batch.n_classes == 3
        assert got.skipped == {"n_classes=10": 5}


@given(st.lists(st.sampled_from([(10, 16), (10, None), (3, 16), (10, 8)]), min_size=1, max_size=40))
def test_screening_keeps_exactly_the_rows_of_one_shape(
    shapes: list[tuple[int, int | None]],
) -> None:
    rows = [
        SimpleNamespace(
            n_classes=n,
            probs=np.full(n, 1 / n, "<f4").tobytes(),
            embedding=None if d is None else np.zeros(d, "<f4").tobytes(),
            embedding_dtype=None if d is None else "float32",
        )
        for n, d in shapes
    ]
    keep, skipped = screen_rows(rows, None)
    assert len(keep) + sum(skipped.values()) == len(rows)
    assert len({r.n_classes for r in keep}) == 1
    assert len({len(r.embedding) for r in keep if r.embedding is not None}) <= 1
    assert keep  # the most common shape always has a row
