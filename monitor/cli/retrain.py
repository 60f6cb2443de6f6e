"""``driftwatch retrain run|status|list|versions|report|tick``."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from monitor.api.routes.retrain import job_out, version_out
from monitor.api.routes.rollouts import rollout_out
from monitor.cli import echo_json, json_option, settings_of
from monitor.store.db import make_engine, session_factory, unit_of_work
from retrain import jobs, registry, rollout
from retrain.deploy import target_from_settings
from retrain.gate import gate_report
from retrain.pipeline import run_job
from retrain.rollout import active
from retrain.rollout import tick as tick_rollout


def _sessions(ctx: click.Context):  # type: ignore[no-untyped-def]
    return session_factory(make_engine(settings_of(ctx).database))


@click.group()
def retrain() -> None:
    """Retraining jobs, the model registry and canary rollouts."""


@retrain.command("run")
@click.option("--job", "job_id", type=int, help="Run this job (default: the oldest queued).")
@click.option("--model", help="Queue a manual job for MODEL first.")
@click.option("--key", default=None, help="Idempotency key of the manual job (default: now).")
@click.option("--progress/--no-progress", default=True)
@click.pass_context
def run(
    ctx: click.Context, job_id: int | None, model: str | None, key: str | None, progress: bool
) -> None:
    """Run a retraining job: fine-tune, ONNX, INT8, gate, canary."""

    settings, sessions = settings_of(ctx), _sessions(ctx)
    if model is not None:
        with unit_of_work(sessions) as s:
            job, created = jobs.enqueue_job(
                s,
                model,
                key or datetime.now(UTC).isoformat(),
                source="manual",
                reason="started by hand",
            )
            job_id = job.id
        click.echo(f"job {job_id} {'queued' if created else 'exists'}")
    outcome = run_job(settings, sessions, job_id, progress=progress)
    if outcome is None:
        click.echo("no queued job")
        return
    click.echo(
        f"job {outcome.job_id}: {outcome.state}"
        + (f" ({outcome.error})" if outcome.error else f", candidate {outcome.version}")
    )
    if outcome.state == "failed":
        raise click.ClickException(f"job {outcome.job_id} failed")


@retrain.command("status")
@click.argument("job_id", type=int)
@json_option
@click.pass_context
def status(ctx: click.Context, job_id: int, as_json: bool) -> None:
    """A job's state, history and gate report."""

    with unit_of_work(_sessions(ctx)) as s:
        job = jobs.get_job(s, job_id)
        if as_json:
            echo_json(job_out(job))
            return
        click.echo(f"job {job.id} {job.model} [{job.source}] {job.state}: {job.reason}")
        for h in job.history:
            click.echo(f"  {h['ts']}  {h['state']:<9} {h['note']}")
        if job.candidate_version:
            click.echo(f"candidate {job.candidate_version}")
            click.echo(gate_report(s, job.model, job.candidate_version))


@retrain.command("list")
@click.option("--model", default=None)
@click.option("--limit", default=20, show_default=True)
@json_option
@click.pass_context
def list_(ctx: click.Context, model: str | None, limit: int, as_json: bool) -> None:
    """The newest jobs."""
    with unit_of_work(_sessions(ctx)) as s:
        if as_json:
            echo_json([job_out(job) for job in jobs.list_jobs(s, model, limit)])
            return
        for job in jobs.list_jobs(s, model, limit):
            click.echo(
                f"{job.id:>5}  {job.model:<16} {job.state:<10} {job.source:<8} "
                f"{job.candidate_version or '-':<16} {job.error or job.reason}"
            )


@retrain.command("versions")
@click.option("--model", default=None)
@json_option
@click.pass_context
def versions(ctx: click.Context, model: str | None, as_json: bool) -> None:
    """Registered model versions with their state and INT8 figures."""
    with unit_of_work(_sessions(ctx)) as s:
        if as_json:
            echo_json([version_out(mv) for mv in registry.list_versions(s, model)])
            return
        for mv in registry.list_versions(s, model):
            acc = mv.metrics.get("accuracy", {})
            click.echo(
                f"{mv.model:<16} {mv.version:<16} {mv.state:<12} "
                f"fp32 {acc.get('fp32', float('nan')):.3f} "
                f"int8 {acc.get('int8', float('nan')):.3f}  parent {mv.parent_version}"
            )


@retrain.command("report")
@click.argument("model")
@click.argument("version")
@click.pass_context
def report(ctx: click.Context, model: str, version: str) -> None:
    """The stored offline gate report of a candidate."""

    with unit_of_work(_sessions(ctx)) as s:
        click.echo(gate_report(s, model, version))


@retrain.command("tick")
@click.pass_context
def tick(ctx: click.Context) -> None:
    """Judge every running rollout once (the scheduler does this every interval)."""

    settings = settings_of(ctx)
    store = registry.ArtifactStore.from_settings(settings.retrain)
    target = target_from_settings(settings.retrain)
    with unit_of_work(_sessions(ctx)) as s:
        for ro in active(s):
            click.echo(
                f"rollout {ro.id} {ro.model} {ro.candidate_version}: "
                f"{tick_rollout(s, settings, store, target, ro)}"
            )


@retrain.command("rollouts")
@click.option("--model", default=None)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@json_option
@click.pass_context
def rollouts(ctx: click.Context, model: str | None, limit: int, as_json: bool) -> None:
    """Rollouts with every step's weight, outcome and reason."""
    with unit_of_work(_sessions(ctx)) as s:
        rows = rollout.list_rollouts(s, model, limit=limit)
        if as_json:
            echo_json([rollout_out(s, ro) for ro in rows])
            return
        for ro in rows:
            click.echo(
                f"rollout {ro.id} {ro.model} {ro.stable_version} -> {ro.candidate_version} "
                f"{ro.state} at {ro.plan[ro.step_index]}%: {ro.reason or ''}"
            )
            for st in rollout.steps(s, ro.id):
                click.echo(f"  {st.weight:>3}% {st.outcome:<8} {st.reason}")


@retrain.command("rollback")
@click.argument("rollout_id", type=int)
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.pass_context
def rollback(ctx: click.Context, rollout_id: int, reason: str) -> None:
    """Roll a running canary back by hand: publish the stable arm only (exit 3 if it ended)."""

    with unit_of_work(_sessions(ctx)) as s:
        ro = rollout.roll_back(s, settings_of(ctx), rollout_id, f"manual: {reason}")
        click.echo(f"rollout {rollout_id} rolled back; serving {ro.stable_version}")
