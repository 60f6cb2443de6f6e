"""``monitor.store.ingest_repo`` on SQLite and PostgreSQL: idempotent writes, the label join in
both directions, retention."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from monitor.schemas import LabelEvent, PredictionLog, encode_array
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import delete_older_than, write_batch
from monitor.store.tables import Label, Prediction


def _label(request_id: str, label: int, ts: datetime | None = None) -> LabelEvent:
    return LabelEvent(
        model="digits", request_id=request_id, label=label, timestamp=ts or datetime.now(UTC)
    )


def test_replayed_batches_store_each_log_once(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    logs = [make_log(arm="canary") for _ in range(5)] + [make_log(model_version="v2")]
    with unit_of_work(sessions) as session:
        counts = write_batch(session, logs + logs[:2])  # repeated inside the batch, too
    assert (counts.stored, counts.duplicates) == (6, 2)
    assert counts.by_series == {("digits", "v1", "canary"): 5, ("digits", "v2", "all"): 1}
    with unit_of_work(sessions) as session:
        again = write_batch(session, [*logs[3:], make_log()])
    assert (again.stored, again.duplicates) == (1, 3)
    assert sum(again.by_series.values()) == 1
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 7


def test_arrays_round_trip(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    emb = np.random.default_rng(0).normal(size=64).astype(np.float32)
    exact = make_log(embedding=encode_array(emb, "float32"))
    half = make_log(embedding=encode_array(emb, "float16"))
    plain = make_log(embedding=emb.tolist(), pixel_stats=None, latency_ms=2.5)
    with unit_of_work(sessions) as session:
        write_batch(session, [exact, half, plain])
    with sessions() as session:
        rows = {r.request_id: r for r in session.scalars(select(Prediction))}
    assert np.array_equal(np.frombuffer(rows[exact.request_id].embedding or b"", "<f4"), emb)
    got16 = np.frombuffer(rows[half.request_id].embedding or b"", "<f2")
    assert np.array_equal(got16, emb.astype(np.float16))
    row = rows[plain.request_id]
    assert (row.embedding_dtype, row.pixel_stats, row.latency_ms) == ("float32", None, 2.5)
    assert np.array_equal(np.frombuffer(row.embedding or b"", "<f4"), emb)
    first = rows[exact.request_id]
    assert first.pixel_stats == exact.pixel_stats and first.ts == exact.timestamp
    assert np.array_equal(np.frombuffer(first.probs, "<f4"), np.float32(exact.probabilities))
    assert first.confidence == max(np.float32(exact.probabilities))


def test_labels_join_before_and_after_their_prediction(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    before, after, same, never = (make_log() for _ in range(4))
    with unit_of_work(sessions) as session:
        write_batch(session, [], [_label(before.request_id, 1), _label("nobody", 2)])
    with unit_of_work(sessions) as session:
        counts = write_batch(session, [before, after, never], [])
    assert counts.stored == 3
    with unit_of_work(sessions) as session:
        counts = write_batch(
            session,
            [same],
            [_label(after.request_id, 4), _label(same.request_id, 5), _label(after.request_id, 6)],
        )  # latest wins
    assert (counts.labels, counts.labels_joined) == (2, 1)
    with sessions() as session:
        got = {r.request_id: r.label for r in session.scalars(select(Prediction))}
        stored_labels = session.scalar(select(func.count()).select_from(Label))
    assert got == {
        before.request_id: 1,
        after.request_id: 6,
        same.request_id: 5,
        never.request_id: None,
    }
    assert stored_labels == 4


def test_retention_deletes_only_old_rows(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    now = datetime.now(UTC)
    old, new = make_log(timestamp=now - timedelta(days=40)), make_log(timestamp=now)
    with unit_of_work(sessions) as session:
        write_batch(
            session, [old, new], [_label("x", 1, now - timedelta(days=41)), _label("y", 1, now)]
        )
    with unit_of_work(sessions) as session:
        assert delete_older_than(session, now - timedelta(days=30)) == (1, 1)
    with sessions() as session:
        assert list(session.scalars(select(Prediction.request_id))) == [new.request_id]
        assert list(session.scalars(select(Label.request_id))) == ["y"]


def test_a_model_shape_is_pinned_at_first_sight_and_odd_logs_are_refused(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    with unit_of_work(sessions) as session:  # first sight: 10 classes, no embedding yet
        first = write_batch(session, [make_log(embedding=None), make_log(n_classes=3)])
    assert first.stored == 1 and first.refused == ((1, "shape_mismatch", first.refused[0][2]),)
    assert "logs 10 classes (pinned), this log has 3" in first.refused[0][2]
    with unit_of_work(sessions) as session:  # the first embedding pins the dimension
        second = write_batch(session, [make_log(dim=16), make_log(dim=8), make_log(embedding=None)])
    assert second.stored == 2 and [(i, r) for i, r, _ in second.refused] == [(1, "shape_mismatch")]
    with unit_of_work(sessions) as session:  # another model pins its own shape
        other = write_batch(session, [make_log(model="other", n_classes=3, dim=8)])
    assert other.stored == 1 and other.refused == ()
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 4


def test_conflicting_duplicates_are_refused_and_exact_ones_are_not(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    log = make_log(request_id="same")
    other = make_log(request_id="same")  # other random probabilities and embedding
    with unit_of_work(sessions) as session:
        inside = write_batch(session, [log, log, other])
    assert (inside.stored, inside.duplicates) == (1, 1)
    assert [(i, r) for i, r, _ in inside.refused] == [(2, "conflicting_duplicate")]
    with unit_of_work(sessions) as session:
        replay = write_batch(session, [other, log, make_log()])
    assert (replay.stored, replay.duplicates) == (1, 1)
    assert [(i, r) for i, r, _ in replay.refused] == [(0, "conflicting_duplicate")]
    assert "'same' of model 'digits' was logged before" in replay.refused[0][2]
    with sessions() as session:
        stored = session.scalars(select(Prediction).where(Prediction.request_id == "same")).one()
        assert stored.probs == np.asarray(log.probabilities, "<f4").tobytes()
