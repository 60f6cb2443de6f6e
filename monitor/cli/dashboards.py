"""``driftwatch dashboards push|export|rules``."""

from __future__ import annotations

from pathlib import Path

import click

from dashboards.export import export as do_export
from dashboards.push import push as do_push
from dashboards.rules import write_rules
from monitor.cli import settings_of


@click.group()
def dashboards() -> None:
    """Grafana dashboards as code, provisioning and Prometheus alerting rules."""


@dashboards.command()
@click.option("--force", is_flag=True, help="Overwrite dashboards changed in Grafana since read.")
@click.pass_context
def push(ctx: click.Context, force: bool) -> None:
    """Create or update the folder, datasources and dashboards in Grafana (idempotent)."""

    report = do_push(settings_of(ctx), force=force)
    for name, action in report.actions.items():
        click.echo(f"{action:9} {name}")


@dashboards.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.pass_context
def export(ctx: click.Context, out: Path) -> None:
    """Write Grafana file-provisioning YAML and dashboard JSON under OUT."""

    for path in do_export(settings_of(ctx), out):
        click.echo(str(path))


@dashboards.command()
@click.argument(
    "out", type=click.Path(dir_okay=False, path_type=Path), default=Path("driftwatch-rules.yaml")
)
@click.pass_context
def rules(ctx: click.Context, out: Path) -> None:
    """Write the Prometheus alerting rules file to OUT (check it with `promtool check rules`)."""

    click.echo(str(write_rules(settings_of(ctx), out)))
