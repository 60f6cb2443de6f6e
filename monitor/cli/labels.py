"""``driftwatch labels``: the label queue. ``export`` writes the logs most worth labelling."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import click

from monitor.cli import settings_of
from monitor.impact.label_queue import build_label_queue, write_queue
from monitor.store.db import make_engine, session_factory, unit_of_work


@click.group()
def labels() -> None:
    """Labelling: export the logs a label would help most."""


@labels.command("export")
@click.argument("model")
@click.argument("version")
@click.option("-n", "n", type=int, default=200, show_default=True, help="How many logs.")
@click.option(
    "--unusual-share",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="Share of the most unusual images; the rest are the least confident predictions.",
)
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="File to write (default: label-queue-<model>-<version>.<format>).",
)
@click.pass_context
def export(
    ctx: click.Context,
    model: str,
    version: str,
    n: int,
    unusual_share: float,
    fmt: Literal["jsonl", "csv"],
    out: Path | None,
) -> None:
    """Export (and queue) the unlabelled logs of MODEL VERSION most worth labelling: the least
    confident after calibration and the most unusual, with request ids and thumbnails."""

    settings = settings_of(ctx)
    out = out or Path(f"label-queue-{model}-{version}.{fmt}")
    engine = make_engine(settings.database)
    try:
        with unit_of_work(session_factory(engine)) as session:
            items = build_label_queue(session, model, version, n, unusual_share=unusual_share)
    finally:
        engine.dispose()
    write_queue(items, out, fmt)
    reasons = {r: sum(1 for it in items if it.reason == r) for r in ("uncertain", "unusual")}
    click.echo(
        f"wrote {out}: {len(items)} logs of {model} {version} to label "
        f"({reasons['uncertain']} least confident, {reasons['unusual']} most unusual; "
        f"{sum(1 for it in items if it.thumbnail)} with thumbnails)"
    )
