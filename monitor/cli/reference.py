"""``driftwatch reference``: fit, list, activate and show reference profiles."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from sqlalchemy.orm import Session, sessionmaker

from monitor.api.routes.profiles import profile_out
from monitor.cli import echo_json, json_option, settings_of
from monitor.evaluate import switch_profile
from monitor.profiles import (
    fit_profile_from_file,
    fit_profile_from_store,
    get_profile,
    list_profiles,
    profile_parts,
)
from monitor.settings import Settings
from monitor.store.db import make_engine, session_factory, unit_of_work
from monitor.store.tables import ReferenceProfile


def _parse_ts(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}") from exc
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


def _describe(row: ReferenceProfile) -> str:
    flag = "*" if row.active else " "
    return (
        f"{flag} {row.id:>5}  {row.model} {row.model_version}  {row.name!r}  n={row.n_ref}  "
        f"{row.created_at:%Y-%m-%d %H:%M}  {row.source.get('type', '?')}"
    )


def _sessions(settings: Settings) -> sessionmaker[Session]:
    return session_factory(make_engine(settings.database))


@click.group()
def reference() -> None:
    """Reference profiles (fit from stored logs or a file; one active per model version)."""


@reference.command("fit")
@click.option("--model", required=True)
@click.option("--version", "version", required=True)
@click.option("--name", default=None, help="Profile name (default: a timestamp).")
@click.option("--from", "start", callback=_parse_ts, help="Stored logs from this time (ISO 8601).")
@click.option("--to", "end", callback=_parse_ts, help="Stored logs before this time (ISO 8601).")
@click.option("--arm", default=None, help="Only logs of this arm (stable, canary, all).")
@click.option("--limit", type=int, default=None, help="At most the newest N stored logs.")
@click.option(
    "--file",
    "path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Fit from a Parquet, NPZ or JSONL file of prediction logs instead.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--activate", is_flag=True, help="Make it the active profile.")
@click.pass_context
def fit(
    ctx: click.Context,
    model: str,
    version: str,
    name: str | None,
    start: datetime | None,
    end: datetime | None,
    arm: str | None,
    limit: int | None,
    path: Path | None,
    seed: int,
    activate: bool,
) -> None:
    """Fit a reference profile for MODEL VERSION and store it."""

    settings = settings_of(ctx)
    name = name or f"{model}-{version}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    with unit_of_work(_sessions(settings)) as session:
        if path is not None:
            if start or end or arm or limit:
                raise click.UsageError("--file cannot be combined with --from/--to/--arm/--limit")
            row = fit_profile_from_file(
                session, settings, model, version, path, name, seed=seed, activate=activate
            )
        else:
            row = fit_profile_from_store(
                session,
                settings,
                model,
                version,
                start,
                end,
                name,
                arm=arm,
                limit=limit,
                seed=seed,
                activate=activate,
            )
        click.echo(
            f"fitted profile {row.id} on {row.n_ref} logs" + (" (active)" if activate else "")
        )


@reference.command("list")
@click.option("--model", default=None)
@click.option("--version", "version", default=None)
@json_option
@click.pass_context
def list_(ctx: click.Context, model: str | None, version: str | None, as_json: bool) -> None:
    """List profiles, newest first (* marks the active ones)."""

    with unit_of_work(_sessions(settings_of(ctx))) as session:
        rows = list_profiles(session, model, version)
        if as_json:
            echo_json([profile_out(row) for row in rows])
            return
        for row in rows:
            click.echo(_describe(row))
        if not rows:
            click.echo("no reference profiles")


@reference.command("activate")
@click.argument("profile_id", type=int)
@click.pass_context
def activate(ctx: click.Context, profile_id: int) -> None:
    """Make PROFILE_ID the active profile of its model version (waiting windows are queued)."""

    with unit_of_work(_sessions(settings_of(ctx))) as session:
        row, reopened = switch_profile(session, profile_id)
        click.echo(
            f"profile {row.id} active for {row.model} {row.model_version}"
            + (f"; {reopened} waiting windows queued" if reopened else "")
        )


@reference.command("show")
@click.argument("profile_id", type=int)
@click.option("--json", "as_json", is_flag=True, default=True, help="JSON (the only format).")
@click.pass_context
def show(ctx: click.Context, profile_id: int, as_json: bool) -> None:
    """Show a profile and its per-family parts as JSON."""

    with unit_of_work(_sessions(settings_of(ctx))) as session:
        row = get_profile(session, profile_id)
        doc = {
            "id": row.id,
            "model": row.model,
            "model_version": row.model_version,
            "name": row.name,
            "active": row.active,
            "n_ref": row.n_ref,
            "created_at": row.created_at.isoformat(),
            "source": row.source,
            "parts": [
                {
                    "family": p.family,
                    "kind": p.kind,
                    "schema_version": p.schema_version,
                    "bytes": len(p.payload),
                }
                for p in profile_parts(session, row.id)
            ],
        }
        click.echo(json.dumps(doc, indent=2))
