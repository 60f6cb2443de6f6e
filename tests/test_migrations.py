"""Migrations go up, down and up again on SQLite and PostgreSQL, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from monitor.store import migrate
from monitor.store.metadata import metadata

FOREIGN_TABLES = {"apscheduler_jobs", "alembic_version"}


def _diff(url: str) -> list[object]:
    engine = create_engine(url)
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn,
            opts={
                "compare_type": True,
                "include_object": lambda obj, name, type_, reflected, other: (
                    not (type_ == "table" and name in FOREIGN_TABLES)
                ),
            },
        )
        diff = compare_metadata(ctx, metadata)
    engine.dispose()
    return list(diff)


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    names = set(inspect(engine).get_table_names()) - FOREIGN_TABLES
    engine.dispose()
    return names


def test_upgrade_downgrade_upgrade_matches_models(db_url: str) -> None:
    # db_url is already at head (cloned from a migrated template).
    assert _tables(db_url) == set(metadata.tables)
    assert _diff(db_url) == []
    migrate.downgrade(db_url, "base")
    assert _tables(db_url) == set()
    migrate.upgrade(db_url, "head")
    assert _tables(db_url) == set(metadata.tables)
    assert _diff(db_url) == []
