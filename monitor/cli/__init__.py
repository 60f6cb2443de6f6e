"""The ``driftwatch`` command. Sub-commands load lazily so ``driftwatch --help`` stays fast
and the core never imports Kafka or torch it does not need."""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import click
from pydantic import TypeAdapter
from sqlalchemy.exc import OperationalError

from monitor.errors import (
    BrokerUnavailable,
    Conflict,
    DriftwatchError,
    NotFound,
    StoreUnavailable,
)
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
            return _unavailable(cmd_name, exc.name or str(exc))  # an optional extra is missing
        command = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


def _unavailable(name: str, missing: str) -> click.Command:
    """A stand-in for a command whose optional dependency is not installed (``--help`` still
    lists every command; running this one says what to install)."""

    def refuse() -> None:
        raise click.ClickException(
            f"`driftwatch {name}` needs {missing}, which is not installed: "
            "pip install 'driftwatch[ml]' (torch first: pip install torch==2.13.0)"
        )

    return click.Command(name, callback=refuse, help=f"(unavailable here: needs {missing})")


#: Exit codes, documented in ``driftwatch --help``: the first class an error is an instance of.
EXIT_CODES: tuple[tuple[type[BaseException], int], ...] = (
    (Conflict, 3),
    (NotFound, 4),
    (StoreUnavailable, 5),
    (BrokerUnavailable, 5),
    (OperationalError, 5),
    (DriftwatchError, 1),
)
EPILOG = (
    "Exit codes: 0 ok, 1 error, 2 usage (bad option or argument), 3 conflict with the "
    "record's state (e.g. rolling back a rollout that has ended), 4 not found, "
    "5 unavailable (database or broker unreachable; retry). List and show commands take "
    "--json for machine-readable output."
)


def _version() -> str:
    try:
        return importlib.metadata.version("driftwatch")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def echo_json(value: Any) -> None:
    """Print ``value`` (pydantic models, lists of them, plain data) as indented JSON."""
    data = TypeAdapter(Any).dump_python(value, mode="json", by_alias=True)
    click.echo(json.dumps(data, indent=2))


#: The ``--json`` flag of list and show commands.
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@click.group(cls=LazyGroup, epilog=EPILOG)
@click.version_option(_version(), "--version", prog_name="driftwatch")
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


def main(argv: list[str] | None = None) -> None:
    """The ``driftwatch`` entry point: runs ``argv`` (default: sys.argv) and exits with the
    documented code."""
    try:
        cli.main(args=argv, standalone_mode=False)
        sys.exit(0)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(1)
    except (DriftwatchError, OperationalError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exit_code(exc))


def exit_code(exc: BaseException) -> int:
    """The documented exit code of ``exc`` (see :data:`EXIT_CODES`)."""
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), 1)
