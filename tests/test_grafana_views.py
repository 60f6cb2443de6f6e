"""The read-only contract Grafana reads (migration 0006): the grafana_* views on SQLite and
PostgreSQL, and on PostgreSQL a role that reads them and cannot read or write the tables."""

from __future__ import annotations

import importlib
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import ProgrammingError

from monitor.store.alerting_tables import AlertRow
from monitor.store.grafana_views import READONLY_ROLE, VIEWS
from tests.conftest import _pg_admin

MIGRATION = importlib.import_module("monitor.store.migrations.versions.0006_grafana_views")


def test_the_migration_creates_the_documented_views() -> None:
    assert MIGRATION.VIEWS == VIEWS
    assert MIGRATION.ROLE == READONLY_ROLE


def add_alert(engine: sa.Engine) -> None:
    now = datetime.now(UTC)
    with sa.orm.Session(engine) as session, session.begin():
        session.add(
            AlertRow(
                model="digits", model_version="v1", family="embedding", severity="critical",
                status="firing", dedup_key="k", opened_at=now, summary="drift", evidence={},
            )
        )  # fmt: skip


def test_views_read_the_tables(db_url: str) -> None:
    engine = sa.create_engine(db_url)
    assert VIEWS.keys() <= set(sa.inspect(engine).get_view_names())
    add_alert(engine)
    with engine.connect() as conn:
        for name in VIEWS:
            conn.execute(sa.text(f"SELECT * FROM {name}")).all()
        row = conn.execute(sa.text("SELECT model, status, severity FROM grafana_alerts")).one()
    engine.dispose()
    assert tuple(row) == ("digits", "firing", "critical")


def test_the_readonly_role_reads_views_and_nothing_else(pg_url: str, pg_server_url: str) -> None:
    engine = sa.create_engine(pg_url)
    add_alert(engine)
    engine.dispose()
    user = f"dw_grafana_{uuid.uuid4().hex[:8]}"
    _pg_admin(pg_server_url, f"CREATE ROLE {user} LOGIN IN ROLE {READONLY_ROLE}")
    reader = sa.create_engine(pg_url.replace("://postgres@", f"://{user}@"))
    try:
        with reader.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM grafana_alerts")).scalar() == 1
        for statement in (
            "SELECT count(*) FROM alerts",
            "SELECT count(*) FROM predictions",
            "DELETE FROM grafana_alerts",
            "CREATE TABLE grafana_own (x int)",
        ):
            with reader.connect() as conn, pytest.raises(ProgrammingError, match="denied"):
                conn.execute(sa.text(statement))
    finally:
        reader.dispose()
        _pg_admin(pg_server_url, f"DROP ROLE {user}")
