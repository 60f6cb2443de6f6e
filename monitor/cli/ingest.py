"""``driftwatch ingest``: run one ingest worker until SIGTERM or SIGINT."""

from __future__ import annotations

import click

from ingest.worker import IngestWorker
from monitor.cli import settings_of, stop_on_signals


@click.command()
@click.option(
    "--metrics-port", type=int, default=None, help="Serve Prometheus metrics on this port."
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
    max_messages: int | None,
    idle_timeout: float | None,
) -> None:
    """Consume prediction logs and labels from Kafka into the store."""

    settings = settings_of(ctx)
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port)
    stop = stop_on_signals("finishing the current batch")
    stats = IngestWorker(settings).run(stop, max_messages=max_messages, idle_timeout=idle_timeout)
    click.echo(
        f"consumed={stats.consumed} stored={stats.stored} duplicates={stats.duplicates} "
        f"labels={stats.labels} dead_lettered={stats.dead_lettered} "
        f"store_retries={stats.store_retries}"
    )
