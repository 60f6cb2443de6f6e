"""The store at 10 million logs (PostgreSQL): the statements that close windows, load them
and cut retention use indexes, never a sequential scan of ``predictions``.

The rows are generated inside PostgreSQL (``generate_series``, indexes built after the load),
not through Kafka: the test is about plans, and a 10M-row ingest would take an hour here.
Building it takes minutes on this 2-core machine, so the database is kept between runs, named
after the migration head it was built at (``dw_scale_10m_<head>``) and marked complete only
after its last step; a store of another head, or an unfinished one, is dropped and rebuilt.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, delete, select, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Executable

from monitor.evaluate import PENDING
from monitor.store import migrate
from monitor.store.arms import NO_ARM
from monitor.store.db import session_factory
from monitor.store.logs import window_query
from monitor.store.streams import newer_logs_probe, pending_logs_query, streams_with_new_logs
from monitor.store.tables import Prediction, Window
from tests.conftest import _pg_admin, pg_database_url

ROWS = 10_000_000
MODELS = 100


@pytest.fixture(scope="module")
def big_store(pg_server_url: str, pg_template: str) -> Iterator[Engine]:
    """A migrated database holding ROWS logs of MODELS models, one window per model covering
    all but its last 1,000 logs, and statistics gathered."""
    head = ScriptDirectory.from_config(migrate.alembic_config("")).get_current_head()
    name = f"dw_scale_10m_{head}"
    admin = create_engine(pg_server_url)
    with admin.connect() as conn:
        cached = conn.scalars(
            text("SELECT datname FROM pg_database WHERE datname LIKE 'dw_scale_10m_%'")
        ).all()
    admin.dispose()
    if name in cached and _complete(pg_database_url(pg_server_url, name)):
        engine = create_engine(pg_database_url(pg_server_url, name))
        yield engine
        engine.dispose()
        return
    for stale in cached:
        _pg_admin(pg_server_url, f'DROP DATABASE IF EXISTS "{stale}" WITH (FORCE)')
    _pg_admin(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"')
    engine = create_engine(pg_database_url(pg_server_url, name))
    _build(engine)
    yield engine
    engine.dispose()


def _complete(url: str) -> bool:
    engine = create_engine(url)
    with engine.connect() as conn:
        done = conn.scalar(text("SELECT to_regclass('scale_store_complete') IS NOT NULL"))
    engine.dispose()
    return bool(done)


def _build(engine: Engine) -> None:
    table = Prediction.__table__
    started = time.perf_counter()
    with engine.begin() as conn:
        ddl = conn.execute(
            text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'predictions'::regclass AND contype = 'u'"
            )
        ).all()
        for con, _ in ddl:
            conn.execute(text(f'ALTER TABLE predictions DROP CONSTRAINT "{con}"'))
        for index in table.indexes:
            index.drop(conn)
        conn.execute(
            text(
                "INSERT INTO predictions (model, model_version, request_id, ts, ingested_at, "
                "predicted_class, n_classes, confidence, probs, arm) "
                f"SELECT 'model-' || (g % {MODELS}), 'v1', 'r' || g, "
                f"now() - interval '1 millisecond' * ({ROWS} - g), now(), g % 10, 10, 0.9, "
                f"'\\x00'::bytea, NULL FROM generate_series(1, {ROWS}) g"
            )
        )
        conn.execute(
            text(
                "INSERT INTO streams (model, model_version, arm, first_seen_at) "
                "SELECT DISTINCT model, model_version, 'all', now() FROM predictions"
            )
        )
        for index in table.indexes:
            index.create(conn)
        for con, definition in ddl:
            conn.execute(text(f'ALTER TABLE predictions ADD CONSTRAINT "{con}" {definition}'))
        conn.execute(
            text(
                "INSERT INTO windows (model, model_version, arm, first_id, last_id, start_ts, "
                "end_ts, n, closed_by, state, closed_at) "
                "SELECT model, model_version, 'all', min(id), max(id) - 1000 * 1, min(ts), "
                "max(ts), count(*), 'count', 'evaluated', now() FROM predictions "
                "GROUP BY model, model_version"
            )
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE predictions"))
        conn.execute(text("VACUUM ANALYZE windows"))
        conn.execute(text("CREATE TABLE scale_store_complete ()"))
    print(f"\n10M-row store built in {time.perf_counter() - started:.0f} s")


def plan(engine: Engine, stmt: Executable) -> dict[str, object]:
    """PostgreSQL's executed plan of ``stmt`` (EXPLAIN ANALYZE, JSON)."""
    compiled = stmt.compile(  # type: ignore[attr-defined]
        dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}
    )
    with engine.connect() as conn:
        raw = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled}")
        out: dict[str, object] = json.loads(json.dumps(raw.scalar()))[0]
        conn.rollback()
    return out


def scans(node: dict[str, object]) -> list[tuple[str, str]]:
    """(node type, relation) of every scan in a plan tree."""
    found = []
    if "Relation Name" in node:
        found.append((str(node["Node Type"]), str(node["Relation Name"])))
    for child in node.get("Plans", []):  # type: ignore[union-attr]
        found += scans(child)
    return found


def assert_indexed(result: dict[str, object]) -> None:
    tree = result["Plan"]
    assert isinstance(tree, dict)
    on_predictions = [kind for kind, rel in scans(tree) if rel == "predictions"]
    assert on_predictions and "Seq Scan" not in on_predictions, on_predictions
    print(f"  {on_predictions} in {result['Execution Time']:.1f} ms")


def a_window(engine: Engine) -> Window:
    with engine.connect() as conn:
        row = conn.execute(
            select(Prediction.id)
            .where(Prediction.model == "model-7")
            .order_by(Prediction.id.desc())
            .limit(1)
        ).scalar_one()
    return Window(
        model="model-7", model_version="v1", arm="all", first_id=row - 200_000, last_id=row
    )


def test_loading_a_window_reads_its_rows_by_index(big_store: Engine) -> None:
    assert_indexed(plan(big_store, window_query(a_window(big_store))))


def test_the_next_logs_of_a_stream_come_by_index(big_store: Engine) -> None:
    settled = datetime.now(UTC) - timedelta(seconds=5)
    stmt = pending_logs_query("model-7", "v1", None, 5000, settled)
    with big_store.connect() as conn:
        after = conn.scalar(select(Window.last_id).where(Window.model == "model-7"))
    assert_indexed(plan(big_store, stmt.params(after_id=after)))


def test_finding_streams_with_new_logs_probes_each_by_index(big_store: Engine) -> None:
    factory = session_factory(big_store)
    with factory() as session:
        found = streams_with_new_logs(session)
        after = session.scalar(select(Window.last_id).where(Window.model == "model-7"))
    assert len(found) == MODELS  # every stream has its last 1,000 ids unwindowed
    assert after is not None
    assert_indexed(plan(big_store, newer_logs_probe("model-7", "v1", NO_ARM, after)))
    # a stream with nothing new: the probe walks no further than the stream's tail
    last = plan(big_store, newer_logs_probe("model-7", "v1", NO_ARM, ROWS + 1))
    assert_indexed(last)


def test_retention_cuts_by_the_time_index(big_store: Engine) -> None:
    cut = datetime.now(UTC) - timedelta(days=30)  # nothing that old: the plan is what counts
    assert_indexed(plan(big_store, delete(Prediction).where(Prediction.ts < cut)))


def test_pending_windows_come_in_window_order(big_store: Engine) -> None:
    stmt = select(Window).where(Window.state == PENDING).order_by(Window.id).limit(50)
    result = plan(big_store, stmt)
    assert result["Execution Time"] is not None
