"""``driftwatch alerts test | list | ack``."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlalchemy import select

from monitor.alerts.outbox import acknowledge, send_test
from monitor.cli import settings_of
from monitor.errors import NotFound
from monitor.store.alerting_tables import AlertRow
from monitor.store.db import make_engine, session_factory, unit_of_work


@click.group()
def alerts() -> None:
    """Alert channels and current alerts."""


@alerts.command("test")
@click.pass_context
def test_cmd(ctx: click.Context) -> None:
    """Send a test alert to every configured channel."""

    settings = settings_of(ctx)
    if not settings.alerts.channels:
        raise click.ClickException("no alert channels configured (alerts.channels)")
    results = send_test(settings)
    for name, outcome in results.items():
        click.echo(f"{name:<16} {outcome}")
    if any(v != "ok" for v in results.values()):
        raise click.ClickException("some channels failed")


@alerts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include resolved alerts.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50)
@click.pass_context
def list_cmd(ctx: click.Context, show_all: bool, limit: int) -> None:
    """List firing (or all) alerts, newest first."""

    factory = session_factory(make_engine(settings_of(ctx).database))
    with factory() as session:
        stmt = select(AlertRow).order_by(AlertRow.id.desc()).limit(limit)
        if not show_all:
            stmt = stmt.where(AlertRow.status == "firing")
        rows = list(session.scalars(stmt))
    if not rows:
        click.echo("no alerts")
    for a in rows:
        ack = f" acked by {a.acked_by}" if a.acked_at else ""
        click.echo(
            f"#{a.id:<5} {a.status:<8} {a.severity:<8} {a.model} {a.model_version} "
            f"{a.family:<10} opened {a.opened_at:%Y-%m-%d %H:%M}{ack}: {a.summary}"
        )


@alerts.command("ack")
@click.argument("alert_id", type=int)
@click.option("--by", default="cli", help="Who acknowledges.")
@click.pass_context
def ack_cmd(ctx: click.Context, alert_id: int, by: str) -> None:
    """Acknowledge alert ALERT_ID."""

    settings = settings_of(ctx)
    with unit_of_work(session_factory(make_engine(settings.database))) as session:
        alert = session.get(AlertRow, alert_id)
        if alert is None:
            raise NotFound(f"alert {alert_id} does not exist")
        acknowledge(session, alert, by, settings.alerts, datetime.now(UTC))
    click.echo(f"alert {alert_id} acknowledged by {by}")
