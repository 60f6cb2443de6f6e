"""Per-record isolation of the store write (step 1 of the checkpoint) on real SQLite and
PostgreSQL: rows that validation would refuse are written directly, to see what the store does
with them (validation is the first line of defence, isolation the second)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import create_engine, select, text

from ingest.checkpoint import Checkpoint, IngestStats
from ingest.isolation import bisect_write, is_outage
from ingest.validate import Row
from monitor.errors import StoreUnavailable
from monitor.schemas import LabelEvent, PredictionLog
from monitor.settings import DatabaseSettings, IngestSettings, Settings
from monitor.store.db import make_engine, session_factory
from monitor.store.ingest_repo import prediction_row
from monitor.store.tables import Label, Prediction


def _checkpoint(settings: Settings, engine: Any = None) -> Checkpoint:
    engine = engine or make_engine(settings.database)
    return Checkpoint(
        settings, engine, session_factory(engine), ThreadPoolExecutor(1), IngestStats()
    )


def _row(make_log: Callable[..., PredictionLog], offset: int, **raw: Any) -> Row:
    row = prediction_row(make_log(request_id=f"r{offset}"))
    row.update(raw)
    return Row(("predictions", 0, offset, None, b"{}"), prediction=row)


def _stored(url: str) -> set[str]:
    engine = make_engine(DatabaseSettings(url=url))
    with engine.connect() as conn:
        ids = {r for (r,) in conn.execute(select(Prediction.request_id))}
    engine.dispose()
    return ids


def test_bad_rows_are_cut_out_and_the_rest_lands(
    db_url: str, make_log: Callable[..., PredictionLog], settings_for: Callable[..., Settings]
) -> None:
    dialect = db_url.split(":")[0].split("+")[0]
    year_1 = datetime(1, 1, 1, 3, tzinfo=timezone(timedelta(hours=5)))
    bad = {
        10: {"request_id": "nul\x00id"},  # PostgreSQL refuses NUL in text; SQLite stores it
        20: {"request_id": "lone\ud800"},  # cannot be encoded as UTF-8 by either driver
        30: {"predicted_class": 2**63},  # beyond BIGINT / SQLite INTEGER
        40: {"ts": year_1},  # SQLite: overflow converting to UTC; PostgreSQL: a BC date
    }
    rows = [_row(make_log, i, **bad.get(i, {})) for i in range(50)]
    written = _checkpoint(settings_for(db_url)).write(rows)

    refused = {r.offset: r for r in written.refused}
    # PostgreSQL takes year 1 as a BC date: only validation keeps it out
    expected = {10, 20, 30} if dialect == "postgresql" else {20, 30, 40}
    assert set(refused) == expected
    assert all(r.reason == "store_refused" and r.error for r in refused.values())
    assert written.counts.stored == 50 - len(expected)
    good = {f"r{i}" for i in range(50) if i not in bad}
    assert good <= _stored(db_url)
    assert "r30" not in _stored(db_url) and "r20" not in _stored(db_url)


def test_a_locked_sqlite_is_an_outage_never_a_dead_letter(
    sqlite_url: str, make_log: Callable[..., PredictionLog], settings_for: Callable[..., Settings]
) -> None:
    engine = create_engine(sqlite_url, connect_args={"timeout": 0.1})
    checkpoint = _checkpoint(settings_for(sqlite_url), engine)
    rows = [_row(make_log, i) for i in range(5)]
    locker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        assert not checkpoint.store_answers()
        for isolate in (False, True):  # even when isolating, a locked store refuses nothing
            with pytest.raises(StoreUnavailable, match="database is locked"):
                checkpoint.write(rows, isolate=isolate)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert checkpoint.store_answers()
    assert checkpoint.write(rows).counts.stored == 5
    engine.dispose()


def test_an_outage_lookalike_error_of_one_row_is_isolated_after_max_attempts(
    pg_url: str, make_log: Callable[..., PredictionLog], settings_for: Callable[..., Settings]
) -> None:
    """A trigger raises SQLSTATE 08006 (connection failure) for one request id: every write
    of its batch looks like an outage, but the store answers the probe, so in isolation the
    row is refused and the others land."""
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE FUNCTION evil() RETURNS trigger AS $$ BEGIN "
                "IF NEW.request_id = 'r3' THEN RAISE EXCEPTION 'lookalike' USING ERRCODE = '08006';"
                " END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                "CREATE TRIGGER evil BEFORE INSERT ON predictions FOR EACH ROW EXECUTE FUNCTION evil()"
            )
        )
    checkpoint = _checkpoint(settings_for(pg_url, ingest=IngestSettings(max_attempts=2)), engine)
    rows = [_row(make_log, i) for i in range(8)]
    with pytest.raises(StoreUnavailable, match="lookalike"):
        checkpoint.write(rows)  # as an outage: retried by the worker
    written = checkpoint.write(rows, isolate=True)
    assert [r.offset for r in written.refused] == [3] and written.counts.stored == 7
    assert _stored(pg_url) == {f"r{i}" for i in range(8) if i != 3}
    engine.dispose()


def test_outages_and_data_errors_are_told_apart() -> None:
    from sqlalchemy import exc

    assert is_outage(exc.OperationalError("x", {}, Exception("server closed the connection")))
    assert is_outage(exc.TimeoutError("QueuePool limit reached"))
    assert not is_outage(exc.DataError("x", {}, Exception("NUL")))
    assert not is_outage(exc.IntegrityError("x", {}, Exception("duplicate key")))
    assert not is_outage(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates"))

    calls: list[int] = []

    def write(items: Any) -> int:
        calls.append(len(items))
        if any(i % 16 == 0 for i in items):
            raise ValueError("bad")
        return len(items)

    done, failed = bisect_write(write, list(range(1, 64)))
    assert sorted(item for item, _ in failed) == [16, 32, 48]
    assert sum(done) == 60 and len(calls) < 63  # fewer writes than row by row

    def down(items: Any) -> int:
        raise exc.OperationalError("x", {}, Exception("connection refused"))

    with pytest.raises(exc.OperationalError):
        bisect_write(down, [1, 2, 3])


def test_labels_and_predictions_split_across_halves_still_join(
    db_url: str, make_log: Callable[..., PredictionLog], settings_for: Callable[..., Settings]
) -> None:
    rows = [_row(make_log, i) for i in range(6)]
    rows.insert(0, _row(make_log, 99, predicted_class=2**63))  # forces a bisection
    label = LabelEvent(model="digits", request_id="r5", label=4, timestamp=datetime.now(UTC))
    rows.insert(1, Row(("labels", 0, 0, None, b"{}"), label=label))
    written = _checkpoint(settings_for(db_url)).write(rows)
    assert [r.offset for r in written.refused] == [99]
    engine = make_engine(DatabaseSettings(url=db_url))
    with engine.connect() as conn:
        assert (
            conn.execute(select(Prediction.label).where(Prediction.request_id == "r5")).scalar_one()
            == 4
        )
        assert conn.execute(select(Label.label)).scalar_one() == 4
    engine.dispose()
