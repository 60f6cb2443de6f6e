"""``driftwatch ingest``: run ingest workers until SIGTERM or SIGINT."""

from __future__ import annotations

import click

from ingest.liveness import LagMonitor
from ingest.processes import IngestPool
from ingest.worker import IngestWorker
from monitor.cli import settings_of, stop_on_signals


@click.command()
@click.option(
    "--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port."
)
@click.option(
    "--processes",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes in one consumer group, supervised (metrics on port + i).",
)
@click.option("--max-messages", type=int, default=None, help="Stop after this many records.")
@click.option(
    "--idle-timeout",
    type=float,
    default=None,
    help="Stop after this many seconds without a record.",
)
@click.pass_context
def ingest(
    ctx: click.Context,
    metrics_port: int | None,
    processes: int,
    max_messages: int | None,
    idle_timeout: float | None,
) -> None:
    """Consume prediction logs and labels from Kafka into the store.

    With ``--processes N`` the workers are restarted when they die and the command exits 1 when
    they crash-loop; ``--max-messages`` and ``--idle-timeout`` apply to a single worker only.
    """

    settings = settings_of(ctx)
    if processes > 1:
        if max_messages is not None or idle_timeout is not None:
            raise click.UsageError("--max-messages/--idle-timeout need --processes 1")
        pool = IngestPool(settings, processes, metrics_port=metrics_port)
        pool.start()
        ctx.exit(pool.supervise(stop_on_signals("stopping the workers")))
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    stop = stop_on_signals("finishing the current batch")
    # the true lag (high watermark - committed), refreshed apart from the worker's own loop
    lag = LagMonitor(settings.kafka).start() if metrics_port is not None else None
    try:
        worker = IngestWorker(settings)
        stats = worker.run(stop, max_messages=max_messages, idle_timeout=idle_timeout)
    finally:
        if lag is not None:
            lag.stop()
    click.echo(
        f"consumed={stats.consumed} stored={stats.stored} duplicates={stats.duplicates} "
        f"labels={stats.labels} dead_lettered={stats.dead_lettered} "
        f"store_retries={stats.store_retries}"
    )
