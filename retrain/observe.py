"""Prometheus figures of retraining, the registry and rollouts (names from metrics_spec)."""

from __future__ import annotations

from typing import Any

from monitor.metrics import metric


def job_state(model: str, state: str) -> None:
    metric("driftwatch_retrain_jobs_total").labels(model=model, state=state).inc()


def version_figures(model: str, version: str, figures: dict[str, Any]) -> None:
    """Accuracy, size and latency of a registered version (what ``build_artifacts`` measured)."""
    for fmt, acc in figures.get("accuracy", {}).items():
        if fmt in ("fp32", "int8"):
            metric("driftwatch_model_accuracy").labels(
                model=model, version=version, format=fmt, dataset="recent_holdout"
            ).set(acc)
    for fmt, size in figures.get("size_bytes", {}).items():
        metric("driftwatch_model_size_bytes").labels(model=model, version=version, format=fmt).set(
            size
        )
    for key, lat in figures.get("latency", {}).items():
        fmt, batch = key.split("_b")
        metric("driftwatch_model_latency_seconds").labels(
            model=model, version=version, format=fmt, batch=batch
        ).set(lat["p50_ms"] / 1000)


def rollout_event(model: str, event: str, version: str, weight: int, step: int) -> None:
    metric("driftwatch_rollout_events_total").labels(model=model, event=event).inc()
    metric("driftwatch_canary_weight").labels(model=model, version=version).set(weight)
    metric("driftwatch_canary_step").labels(model=model, version=version).set(step)


def gate_agreement(model: str, agreement: float) -> None:
    metric("driftwatch_canary_agreement").labels(model=model).set(agreement)


VERDICT_VALUE = {"advance": 1, "wait": 0, "rollback": -1}


def canary_verdict(model: str, stable: str, canary: str, verdict: str) -> None:
    metric("driftwatch_canary_verdict").labels(model=model, stable=stable, canary=canary).set(
        VERDICT_VALUE[verdict]
    )
