"""Reading prediction logs back as LogBatch arrays: from the store (SQLite and PostgreSQL) and
from Parquet, NPZ and JSONL reference files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.errors import DriftwatchError
from monitor.imagestats import STAT_NAMES
from monitor.schemas import PredictionLog, encode_array
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.logs import ReferenceFileError, load_range, load_window, read_reference_file
from monitor.store.tables import Prediction, Window

T0 = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _logs(make_log: Callable[..., PredictionLog]) -> list[PredictionLog]:
    rng = np.random.default_rng(1)
    emb32 = rng.normal(size=8).astype(np.float32)
    emb16 = rng.normal(size=8).astype(np.float16)
    return [
        make_log(
            timestamp=T0,
            embedding=encode_array(emb32, "float32"),
            pixel_stats={"brightness": 0.25, "sharpness": 3.5},
            label=4,
            latency_ms=2.5,
        ),
        make_log(
            timestamp=T0 + timedelta(seconds=1),
            embedding=encode_array(emb16, "float16"),
            pixel_stats=None,
        ),
        make_log(timestamp=T0 + timedelta(seconds=2), embedding=emb32.tolist(), arm="canary"),
        make_log(timestamp=T0 + timedelta(seconds=3), embedding=None),
    ]


def test_store_rows_decode_to_exact_arrays(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    logs = _logs(make_log)
    with unit_of_work(sessions) as s:
        insert_predictions(s, logs)
    with unit_of_work(sessions) as s:
        batch = load_range(s, "digits", "v1")
    assert len(batch) == 4
    np.testing.assert_array_equal(batch.probs, np.stack([g.probability_vector() for g in logs]))
    assert batch.predicted.tolist() == [g.predicted_class for g in logs]
    assert batch.labels is not None and batch.labels.tolist() == [4, -1, -1, -1]
    assert batch.latency_ms is not None
    assert batch.latency_ms[0] == 2.5 and np.isnan(batch.latency_ms[1:]).all()
    emb = batch.embeddings
    assert emb is not None and emb.dtype == np.float32 and emb.shape == (4, 8)
    np.testing.assert_array_equal(emb[0], logs[0].embedding_vector())
    np.testing.assert_array_equal(emb[1], logs[1].embedding_vector())  # float16 decoded
    np.testing.assert_array_equal(emb[2], logs[2].embedding_vector())
    assert np.isnan(emb[3]).all()
    assert batch.pixel is not None and batch.pixel.shape == (4, len(STAT_NAMES))
    assert batch.pixel[0, STAT_NAMES.index("brightness")] == 0.25
    assert batch.pixel[0, STAT_NAMES.index("sharpness")] == 3.5
    assert np.isnan(batch.pixel[0, STAT_NAMES.index("contrast")])
    assert np.isnan(batch.pixel[1]).all()


def test_range_and_arm_filters(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    logs = _logs(make_log)
    with unit_of_work(sessions) as s:
        insert_predictions(s, logs)
    with unit_of_work(sessions) as s:
        start, end = T0 + timedelta(seconds=1), T0 + timedelta(seconds=3)
        assert len(load_range(s, "digits", "v1", start, end)) == 2
        assert len(load_range(s, "digits", "v1", arm="canary")) == 1
        assert len(load_range(s, "digits", "v1", arm="all")) == 3
        assert len(load_range(s, "digits", "v1", limit=2)) == 2
        with pytest.raises(DriftwatchError, match="no logs"):
            load_range(s, "digits", "v2")


def test_load_window_reads_only_its_ids_and_arm(
    sessions: sessionmaker[Session], make_log: Callable[..., PredictionLog]
) -> None:
    logs = _logs(make_log)
    with unit_of_work(sessions) as s:
        insert_predictions(s, logs)
        ids = list(s.scalars(select(Prediction.id).order_by(Prediction.id)))
        window = Window(
            model="digits",
            model_version="v1",
            arm="all",
            first_id=ids[0],
            last_id=ids[2],
            start_ts=T0,
            end_ts=T0,
            n=2,
            closed_by="count",
        )
        s.add(window)
        s.flush()
        batch = load_window(s, window)
    assert len(batch) == 2  # ids[2] is the canary arm's
    assert batch.meta["window_id"] == str(window.id)
    np.testing.assert_array_equal(batch.probs[1], logs[1].probability_vector())


def test_jsonl_npz_parquet_readers_agree(
    tmp_path: Path, make_log: Callable[..., PredictionLog]
) -> None:
    import pandas as pd

    logs = [make_log(label=i % 3, pixel_stats={"brightness": i / 10}) for i in range(6)]
    jsonl = tmp_path / "ref.jsonl"
    jsonl.write_text("\n".join(g.model_dump_json() for g in logs) + "\n\n")
    from_jsonl = read_reference_file(jsonl)

    npz = tmp_path / "ref.npz"
    np.savez(
        npz,
        probs=from_jsonl.probs,
        embeddings=from_jsonl.embeddings,
        brightness=np.arange(6) / 10,
        labels=from_jsonl.labels,
    )
    from_npz = read_reference_file(npz)

    pq = tmp_path / "ref.parquet"
    pd.DataFrame(
        {
            "probabilities": [g.probability_vector().tolist() for g in logs],
            "predicted_class": [g.predicted_class for g in logs],
            "embedding": [g.embedding_vector().tolist() for g in logs],  # type: ignore[union-attr]
            "pixel_stats": [g.pixel_stats for g in logs],
            "label": [g.label for g in logs],
        }
    ).to_parquet(pq)
    from_parquet = read_reference_file(pq)

    for batch in (from_jsonl, from_npz, from_parquet):
        assert len(batch) == 6
        np.testing.assert_allclose(batch.probs, from_jsonl.probs)
        assert batch.predicted.tolist() == [g.predicted_class for g in logs]
        assert batch.embeddings is not None
        np.testing.assert_allclose(batch.embeddings, from_jsonl.embeddings)  # type: ignore[arg-type]
        assert batch.pixel is not None
        np.testing.assert_allclose(batch.pixel[:, 0], np.arange(6) / 10)
        assert batch.labels is not None and batch.labels.tolist() == [0, 1, 2, 0, 1, 2]


def test_reader_errors_name_the_problem(
    tmp_path: Path, make_log: Callable[..., PredictionLog]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(make_log().model_dump_json() + "\n" + '{"model": "x"}\n')
    with pytest.raises(ReferenceFileError, match=r"bad.jsonl:2: schema"):
        read_reference_file(bad)
    with pytest.raises(ReferenceFileError, match="not found"):
        read_reference_file(tmp_path / "missing.npz")
    csv = tmp_path / "ref.csv"
    csv.write_text("a,b\n")
    with pytest.raises(ReferenceFileError, match="unknown reference format"):
        read_reference_file(csv)
    npz = tmp_path / "noprobs.npz"
    np.savez(npz, embeddings=np.zeros((3, 4)))
    with pytest.raises(ReferenceFileError, match="'probs'"):
        read_reference_file(npz)
