"""``driftwatch serve | api | evaluate``: one process for small installs, or pieces for scale.

- ``evaluate``: the scheduler alone (one or more replicas; the advisory lock lets one act).
- ``api``: the HTTP API alone (any number of replicas).
- ``serve``: API + scheduler (+ an ingest worker with ``--ingest``) in one process.
"""

from __future__ import annotations

import logging
import threading

import click

from ingest.worker import IngestWorker
from monitor.cli import settings_of, stop_on_signals
from monitor.scheduler import Evaluator, build_scheduler
from monitor.settings import Settings
from monitor.store.db import make_engine

log = logging.getLogger(__name__)


def _stop_on_signals() -> threading.Event:
    return stop_on_signals("shutting down")


def _start_scheduler(settings: Settings) -> object:

    scheduler = build_scheduler(Evaluator(make_engine(settings.database), settings))
    scheduler.start()
    return scheduler


@click.command()
@click.option("--once", is_flag=True, help="Run one tick and exit (cron style).")
@click.option(
    "--metrics-port",
    type=int,
    default=None,
    help="Serve this process's Prometheus metrics (deliveries, tick times) here.",
)
@click.pass_context
def evaluate(ctx: click.Context, once: bool, metrics_port: int | None) -> None:
    """Evaluate closed windows on a schedule, decide and send alerts."""
    settings = settings_of(ctx)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    if once:
        report = Evaluator(make_engine(settings.database), settings).tick()
        click.echo(
            f"closed={report.windows_closed} evaluated={report.windows_evaluated} "
            f"transitions={len(report.decisions)} deliveries={dict(report.deliveries)}"
        )
        return
    stop = _stop_on_signals()
    scheduler = _start_scheduler(settings)
    click.echo(f"evaluating every {settings.scheduler.interval_seconds:g}s; Ctrl-C to stop")
    stop.wait()
    scheduler.shutdown()  # type: ignore[attr-defined]


def _run_api(settings: Settings) -> None:
    import uvicorn

    from monitor.api.app import create_app

    uvicorn.run(
        create_app(settings),
        host=settings.api.host,
        port=settings.api.port,
        log_level=settings.log_level.lower(),
    )


@click.command()
@click.pass_context
def api(ctx: click.Context) -> None:
    """Serve the HTTP API (and /metrics)."""
    _run_api(settings_of(ctx))


@click.command()
@click.option(
    "--ingest/--no-ingest",
    "with_ingest",
    default=False,
    help="Also run an ingest worker in this process.",
)
@click.pass_context
def serve(ctx: click.Context, with_ingest: bool) -> None:
    """API + scheduler (+ ingest worker) in one process."""
    settings = settings_of(ctx)
    scheduler = _start_scheduler(settings)
    worker = None
    if with_ingest:
        worker = IngestWorker(settings)
        threading.Thread(target=worker.run, name="ingest", daemon=True).start()
    try:
        _run_api(settings)  # blocks until SIGINT/SIGTERM (uvicorn handles them)
    finally:
        if worker is not None:
            worker.stop()
        scheduler.shutdown()  # type: ignore[attr-defined]
