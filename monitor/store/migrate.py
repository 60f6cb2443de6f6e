"""Run Alembic migrations from code (CLI ``driftwatch db upgrade``, tests, local runs)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command

SCRIPTS = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for the packaged scripts (``monitor/store/migrations``) and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPTS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
