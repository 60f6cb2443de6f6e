"""``driftwatch db``: schema migrations."""

from __future__ import annotations

import click

from monitor.cli import settings_of
from monitor.store import migrate


@click.group()
def db() -> None:
    """Database schema management (Alembic)."""


@db.command()
@click.argument("revision", default="head")
@click.pass_context
def upgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database up to REVISION (default: head)."""
    migrate.upgrade(settings_of(ctx).database.url, revision)
    click.echo(f"database at {revision}")


@db.command()
@click.argument("revision")
@click.pass_context
def downgrade(ctx: click.Context, revision: str) -> None:
    """Migrate the database down to REVISION."""
    migrate.downgrade(settings_of(ctx).database.url, revision)
    click.echo(f"database at {revision}")
