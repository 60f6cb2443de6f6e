"""``driftwatch serve | api | evaluate``: one process for small installs, or pieces for scale.

- ``evaluate``: the scheduler alone (one or more replicas; the advisory lock lets one act).
- ``api``: the HTTP API alone (any number of replicas).
- ``serve``: API + scheduler (+ an ingest worker with ``--ingest``) in one process.
"""

from __future__ import annotations

import logging
import sys
import threading
import time

import click

from ingest.liveness import LagMonitor, Supervisor
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


#: Exit status of ``serve --ingest`` when its ingest worker died (EX_SOFTWARE).
EXIT_INGEST_DIED = 70


def _serve_with_ingest(settings: Settings, exit_delay: float) -> str | None:
    """Serve the API with a supervised ingest worker and a lag monitor; returns why the worker
    died (after readiness reported it for ``exit_delay`` seconds), or None on a clean stop."""
    import uvicorn

    from monitor.api.app import create_app

    worker = IngestWorker(settings)
    lag = LagMonitor(settings.kafka).start()
    server: uvicorn.Server | None = None

    def died(why: str) -> None:
        log.error("%s; readiness fails now, exiting in %gs", why, exit_delay)
        time.sleep(exit_delay)
        if server is not None:
            server.should_exit = True

    supervisor = Supervisor(
        worker.run,
        worker.heartbeat,
        stale_seconds=settings.kafka.stale_poll_seconds,
        on_death=died,
    )
    app = create_app(settings)
    app.state.ready_checks["ingest"] = supervisor.problem  # /readyz answers 503 once it died
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=settings.api.host,
            port=settings.api.port,
            log_level=settings.log_level.lower(),
        )
    )
    supervisor.start()
    try:
        server.run()  # blocks until SIGINT/SIGTERM or the worker's death
    finally:
        supervisor.stopping = supervisor.failure is None
        worker.stop()
        supervisor.join(timeout=30)
        lag.stop()
    return supervisor.failure


@click.command()
@click.option(
    "--ingest/--no-ingest",
    "with_ingest",
    default=False,
    help="Also run a supervised ingest worker in this process.",
)
@click.option(
    "--exit-delay",
    type=float,
    default=5.0,
    show_default=True,
    help="With --ingest: seconds /readyz reports a dead worker before the process exits.",
)
@click.pass_context
def serve(ctx: click.Context, with_ingest: bool, exit_delay: float) -> None:
    """API + scheduler (+ ingest worker) in one process.

    With --ingest, the process exits with status 70 when the ingest worker dies, after
    /readyz has answered 503 naming the cause for --exit-delay seconds.
    """
    settings = settings_of(ctx)
    scheduler = _start_scheduler(settings)
    failure = None
    try:
        if with_ingest:
            failure = _serve_with_ingest(settings, exit_delay)
        else:
            _run_api(settings)  # blocks until SIGINT/SIGTERM (uvicorn handles them)
    finally:
        scheduler.shutdown()  # type: ignore[attr-defined]
    if failure is not None:
        click.echo(f"error: {failure}; exit status {EXIT_INGEST_DIED}", err=True)
        sys.exit(EXIT_INGEST_DIED)  # not ctx.exit: main() runs click with standalone_mode off
