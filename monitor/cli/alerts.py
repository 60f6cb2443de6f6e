"""``driftwatch alerts test | list | ack | silence``."""

from __future__ import annotations

import click
from sqlalchemy.orm import Session, sessionmaker

from monitor.alerts import actions
from monitor.alerts.outbox import send_test
from monitor.api.routes.alerts import alert_out
from monitor.cli import echo_json, json_option, settings_of
from monitor.store.alerts_repo import find_alerts
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
@json_option
@click.pass_context
def list_cmd(ctx: click.Context, show_all: bool, limit: int, as_json: bool) -> None:
    """List firing (or all) alerts, newest first."""

    with unit_of_work(_sessions(ctx)) as session:
        rows = find_alerts(session, None if show_all else "firing", limit=limit)
        if as_json:
            echo_json([alert_out(a) for a in rows])
            return
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

    with unit_of_work(_sessions(ctx)) as session:
        actions.acknowledge(session, alert_id, by, settings_of(ctx).alerts)
    click.echo(f"alert {alert_id} acknowledged by {by}")


@alerts.command("silence")
@click.argument("alert_id", type=int)
@click.option("--minutes", type=click.FloatRange(0, 7 * 24 * 60, min_open=True), required=True)
@click.option("--by", default="cli", help="Who silences.")
@click.pass_context
def silence_cmd(ctx: click.Context, alert_id: int, minutes: float, by: str) -> None:
    """Silence alert ALERT_ID's notifications for MINUTES (at most 7 days)."""

    with unit_of_work(_sessions(ctx)) as session:
        alert = actions.silence(session, alert_id, minutes, by)
        until = alert.silenced_until
    click.echo(f"alert {alert_id} silenced until {until:%Y-%m-%d %H:%M} UTC")


def _sessions(ctx: click.Context) -> sessionmaker[Session]:
    return session_factory(make_engine(settings_of(ctx).database))
