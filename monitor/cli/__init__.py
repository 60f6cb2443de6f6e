"""The ``driftwatch`` command. Sub-commands load lazily so ``driftwatch --help`` stays fast
and the core never imports Kafka or torch it does not need."""

from __future__ import annotations

import importlib
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

import click

from monitor.errors import DriftwatchError
from monitor.settings import Settings, load_settings

#: name -> "module:attribute" of a click command or group. One line per sub-command.
COMMANDS: dict[str, str] = {
    "db": "monitor.cli.db:db",
    "ingest": "monitor.cli.ingest:ingest",
    "reference": "monitor.cli.reference:reference",
    "report": "monitor.cli.report:report",
    "evaluate": "monitor.cli.service:evaluate",
    "api": "monitor.cli.service:api",
    "serve": "monitor.cli.service:serve",
    "alerts": "monitor.cli.alerts:alerts",
    "retrain": "monitor.cli.retrain:retrain",
    "dashboards": "monitor.cli.dashboards:dashboards",
    "labels": "monitor.cli.labels:labels",
    "demo": "monitor.demo.loop:demo",
}


class LazyGroup(click.Group):
    """A group whose sub-commands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                return None  # not built yet
            raise
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.option(
    "--config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="DRIFTWATCH_CONFIG",
    help="YAML settings file.",
)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, verbose: bool) -> None:
    """Driftwatch: drift monitoring, alerting and canary retraining for image classifiers."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ctx.obj = load_settings(config)


def settings_of(ctx: click.Context) -> Settings:
    """The settings built by the top-level group."""
    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


def stop_on_signals(what: str) -> threading.Event:
    """An event set by SIGTERM or SIGINT, for loops that finish ``what`` before exiting."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        click.echo(f"signal {signum}: {what}", err=True)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except DriftwatchError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
