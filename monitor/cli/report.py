"""``driftwatch report``: human-readable reports. ``evidently`` writes Evidently's data-drift HTML
view of a window, ``status`` a model's status page, ``outliers`` a window's worst images."""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.cli import settings_of
from monitor.errors import NotFound
from monitor.profiles import active_profile, get_profile, reference_batch
from monitor.reports.evidently_report import write_report
from monitor.reports.status_page import status_html
from monitor.reports.worst_images import estimate_line, gather_worst, page_html
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.logs import load_window
from monitor.store.tables import Window


@click.group()
def report() -> None:
    """Reports for people: Evidently HTML views of windows and more."""


@report.command("evidently")
@click.option("--window", "window_id", type=int, required=True, help="Window id to report on.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write (default: window-<id>.html).",
)
@click.option(
    "--reference-window",
    type=int,
    default=None,
    help="Compare with this window instead of the active profile's reference logs.",
)
@click.option(
    "--profile",
    "profile_id",
    type=int,
    default=None,
    help="Compare with this profile's reference logs (default: the active profile).",
)
@click.option("--max-reference", type=int, default=5000, show_default=True)
@click.pass_context
def evidently(
    ctx: click.Context,
    window_id: int,
    out: Path | None,
    reference_window: int | None,
    profile_id: int | None,
    max_reference: int,
) -> None:
    """Write an Evidently data-drift HTML report of WINDOW against its reference."""

    settings = settings_of(ctx)
    out = out or Path(f"window-{window_id}.html")
    with unit_of_work(session_factory(make_engine(settings.database))) as session:
        window = session.get(Window, window_id)
        if window is None:
            raise NotFound(f"window {window_id} does not exist")
        cur = load_window(session, window)
        if reference_window is not None:
            other = session.get(Window, reference_window)
            if other is None:
                raise NotFound(f"window {reference_window} does not exist")
            ref, what = load_window(session, other), f"window {reference_window}"
        else:
            profile = (
                get_profile(session, profile_id)
                if profile_id is not None
                else active_profile(session, window.model, window.model_version)
            )
            if profile is None:
                raise NotFound(
                    f"no active profile for {window.model} {window.model_version}; "
                    "pass --profile or --reference-window"
                )
            ref, what = reference_batch(session, profile, max_reference), f"profile {profile.id}"
    summary = write_report(ref, cur, out)
    share = summary.get("drifted_share", float("nan"))
    click.echo(
        f"wrote {out}: window {window_id} (n={len(cur)}) vs {what} (n={len(ref)}); "
        f"Evidently calls {share:.0%} of columns drifted"
    )


@report.command("status")
@click.argument("model")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write (default: status-<model>.html).",
)
@click.pass_context
def status(ctx: click.Context, model: str, out: Path | None) -> None:
    """Write MODEL's status page (drift over time, distributions, canary arms) as one
    self-contained HTML file with inline SVG plots."""

    settings = settings_of(ctx)
    out = out or Path(f"status-{model}.html")
    engine = make_engine(settings.database)
    try:
        with unit_of_work(session_factory(engine)) as session:
            page = status_html(session, settings, model)
    finally:
        engine.dispose()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    click.echo(f"wrote {out}")


@report.command("outliers")
@click.option("--window", "window_id", type=int, required=True, help="Window id.")
@click.option("-n", "n", type=int, default=None, help="How many images (default: settings).")
@click.option(
    "--html",
    "html_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the worst-images grid as a self-contained HTML page.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (thumbnails as data URIs).")
@click.pass_context
def outliers(
    ctx: click.Context, window_id: int, n: int | None, html_out: Path | None, as_json: bool
) -> None:
    """The most unusual images of WINDOW: outlier score, predicted class, confidence."""

    settings = settings_of(ctx)
    engine = make_engine(settings.database)
    try:
        with unit_of_work(session_factory(engine)) as session:
            data = gather_worst(session, settings, window_id, n)
    finally:
        engine.dispose()
    if html_out is not None:
        html_out.parent.mkdir(parents=True, exist_ok=True)
        html_out.write_text(page_html(data), encoding="utf-8")
    if as_json:
        click.echo(json.dumps(data.to_dict(), indent=2))
    else:
        click.echo(
            f"window {data.window_id} ({data.model} {data.version}/{data.arm}, {data.n} logs): "
            f"{estimate_line(data.estimate)}"
        )
        click.echo(
            f"{'rank':>4} {'request':<24} {'score':>7} {'pred':>4} {'conf':>6} {'cal':>6} thumb"
        )
        for i, t in enumerate(data.worst, 1):
            score = "-" if t.outlier_score is None else f"{t.outlier_score:.2f}"
            cal = "-" if t.calibrated_confidence is None else f"{t.calibrated_confidence:.0%}"
            click.echo(
                f"{i:>4} {t.request_id[:24]:<24} {score:>7} {t.predicted_class:>4} "
                f"{t.confidence:>6.0%} {cal:>6} {'yes' if t.thumbnail else 'no'}"
            )
    if html_out is not None:
        click.echo(f"wrote {html_out}", err=as_json)
