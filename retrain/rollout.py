"""The online canary controller: staged traffic weights, arm comparison, promote or roll back.

Each :func:`tick` looks at the logs of both arms since the current step began and does one of:

1. ``wait``: the canary arm has fewer than ``step_min_logs`` logs yet.
2. ``rollback`` on a regression, with the reason recorded, when any of these holds:
   - both arms have ``min_arm_labels`` labels and canary accuracy is more than
     ``max_online_accuracy_drop`` below stable's;
   - canary median latency exceeds ``max_latency_ratio`` times stable's (the median, as the
     p99 of a few hundred requests on a shared host is one scheduling hiccup; p99 is recorded);
   - without enough labels, the confidence detector finds the arms differ and the canary is
     the less confident one (the early sign of a worse model).
3. ``advance`` to the next weight of ``rollout_steps``, or ``promote`` after the last one.

Class-distribution differences between the arms are recorded as evidence but are not by
themselves a regression: a canary that fixes a drift is expected to predict differently.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.errors import Conflict, DriftwatchError, NotFound
from monitor.evaluate import compare_arms
from monitor.settings import Settings
from monitor.store.logs import load_range
from monitor.store.retrain_tables import ModelVersion, Rollout, RolloutStep
from monitor.store.versions import promoted_version
from retrain import observe, registry
from retrain.deploy import ArmSpec, DeploymentSpec, DeploymentTarget, stamped, target_from_settings


def arm_spec(store: registry.ArtifactStore, mv: ModelVersion) -> ArmSpec:
    """The deployable artifact of ``mv``: INT8 ONNX when it has one, else FP32."""
    name = "onnx_int8" if "onnx_int8" in mv.artifacts else "onnx_fp32"
    return ArmSpec(version=mv.version, url=store.url(mv, name), sha256=mv.artifacts[name]["sha256"])


def publish_stable(
    store: registry.ArtifactStore,
    target: DeploymentTarget,
    mv: ModelVersion,
    rollout_id: int | None = None,
) -> DeploymentSpec:
    """Serve only ``mv``."""
    spec = stamped(
        DeploymentSpec(model=mv.model, stable=arm_spec(store, mv), rollout_id=rollout_id)
    )
    target.publish(spec)
    return spec


def start(
    session: Session,
    settings: Settings,
    store: registry.ArtifactStore,
    target: DeploymentTarget,
    candidate: ModelVersion,
) -> Rollout:
    """Make ``candidate`` the canary beside the current version at the first weight."""
    stable = promoted_version(session, candidate.model)
    if stable is None:
        raise NotFound(f"model {candidate.model} has no promoted version to canary against")
    plan = list(settings.retrain.rollout_steps)
    if not plan or plan[-1] != 100 or any(b <= a for a, b in itertools.pairwise(plan)):
        raise DriftwatchError(f"rollout_steps must increase and end at 100, got {plan}")
    registry.set_state(session, candidate, "canary", f"rollout at {plan[0]}%")
    now = datetime.now(UTC)
    rollout = Rollout(
        model=candidate.model,
        stable_version=stable.version,
        candidate_version=candidate.version,
        plan=plan,
        step_index=0,
        state="running",
        started_at=now,
        step_started_at=now,
    )
    session.add(rollout)
    session.flush()
    _publish(store, target, rollout, stable, candidate)
    observe.rollout_event(candidate.model, "started", candidate.version, plan[0], 0)
    registry.audit(
        session,
        candidate.model,
        candidate.version,
        "rollout_started",
        rollout_id=rollout.id,
        weight=plan[0],
        stable=stable.version,
    )
    return rollout


def _publish(
    store: registry.ArtifactStore,
    target: DeploymentTarget,
    rollout: Rollout,
    stable: ModelVersion,
    candidate: ModelVersion,
) -> None:
    target.publish(
        stamped(
            DeploymentSpec(
                model=rollout.model,
                stable=arm_spec(store, stable),
                canary=arm_spec(store, candidate),
                canary_weight=rollout.plan[rollout.step_index],
                rollout_id=rollout.id,
            )
        )
    )


@dataclass(frozen=True)
class ArmFigures:
    n: int
    n_labelled: int
    accuracy: float | None
    mean_confidence: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None

    @classmethod
    def of(cls, batch: LogBatch | None) -> ArmFigures:
        if batch is None or len(batch) == 0:
            return cls(0, 0, None, None, None, None)
        labels = batch.labels if batch.labels is not None else np.full(len(batch), -1)
        known = labels >= 0
        lat = (
            batch.latency_ms[np.isfinite(batch.latency_ms)]
            if batch.latency_ms is not None
            else np.zeros(0)
        )
        return cls(
            n=len(batch),
            n_labelled=int(known.sum()),
            accuracy=float((batch.predicted[known] == labels[known]).mean())
            if known.any()
            else None,
            mean_confidence=float(batch.confidence.mean()),
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
            latency_p99_ms=float(np.percentile(lat, 99)) if lat.size else None,
        )


@dataclass(frozen=True)
class StepEvidence:
    """Both arms' figures over one step, and the detectors' stable-vs-canary results."""

    weight: int
    stable: ArmFigures
    canary: ArmFigures
    detectors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(ev: StepEvidence, settings: Settings, last_step: bool) -> tuple[str, str]:
    """``(outcome, reason)`` for one step's evidence (the rules in the module docstring)."""
    cfg = settings.retrain
    s, c = ev.stable, ev.canary
    if c.n < cfg.step_min_logs:
        return "wait", f"canary has {c.n} of {cfg.step_min_logs} logs"
    labelled = min(s.n_labelled, c.n_labelled) >= cfg.min_arm_labels
    if (
        labelled
        and s.accuracy is not None
        and c.accuracy is not None
        and c.accuracy < s.accuracy - cfg.max_online_accuracy_drop
    ):
        return "rollback", (
            f"canary accuracy {c.accuracy:.2%} is below stable {s.accuracy:.2%} "
            f"by more than {cfg.max_online_accuracy_drop:.2%} at {ev.weight}% "
            f"(n={c.n_labelled}/{s.n_labelled} labelled)"
        )
    if (
        s.latency_p50_ms
        and c.latency_p50_ms
        and c.latency_p50_ms > cfg.max_latency_ratio * s.latency_p50_ms
    ):
        return "rollback", (
            f"canary median latency {c.latency_p50_ms:.1f} ms is over "
            f"{cfg.max_latency_ratio:g}x stable {s.latency_p50_ms:.1f} ms"
        )
    conf = [d for d in ev.detectors if d.get("family") == "confidence" and d.get("drifted")]
    if not labelled and conf and (c.mean_confidence or 0) < (s.mean_confidence or 0):
        return "rollback", (
            f"canary is less confident than stable ({c.mean_confidence:.3f} < "
            f"{s.mean_confidence:.3f}; {conf[0].get('method')} drifted) and "
            f"labels are too few to overrule"
        )
    acc = (
        ""
        if c.accuracy is None or s.accuracy is None
        else f": accuracy canary {c.accuracy:.2%} vs stable {s.accuracy:.2%}"
    )
    return ("promote" if last_step else "advance"), f"no regression at {ev.weight}%{acc}"


def _arm_batch(
    session: Session, model: str, version: str, arm: str, since: datetime, until: datetime
) -> LogBatch | None:

    try:
        return load_range(session, model, version, since, until, arm=arm)
    except DriftwatchError:
        return None


def gather(session: Session, settings: Settings, rollout: Rollout, now: datetime) -> StepEvidence:
    """Load both arms' logs of the current step and compare them."""
    since = rollout.step_started_at
    stable = _arm_batch(session, rollout.model, rollout.stable_version, "stable", since, now)
    canary = _arm_batch(session, rollout.model, rollout.candidate_version, "canary", since, now)
    found: list[dict[str, Any]] = []
    if stable is not None and canary is not None and min(len(stable), len(canary)) >= 20:
        try:
            results = compare_arms(stable, canary, settings.detectors, rollout.model)
        except (ImportError, DriftwatchError) as exc:
            found.append({"family": "error", "error": str(exc)})
        else:
            found = [
                {
                    "family": r.family,
                    "method": r.method,
                    "statistic": r.statistic,
                    "p_value": r.p_value,
                    "effect_size": r.effect_size,
                    "drifted": r.drifted,
                }
                for r in results
                if r.family in ("confidence", "classes")
            ]
    return StepEvidence(
        weight=rollout.plan[rollout.step_index],
        stable=ArmFigures.of(stable),
        canary=ArmFigures.of(canary),
        detectors=found,
    )


def tick(
    session: Session,
    settings: Settings,
    store: registry.ArtifactStore,
    target: DeploymentTarget,
    rollout: Rollout,
    now: datetime | None = None,
) -> str:
    """Judge the current step of a running rollout and act; returns the outcome."""
    if rollout.state != "running":
        return rollout.state
    now = now or datetime.now(UTC)
    last = rollout.step_index == len(rollout.plan) - 1
    evidence = gather(session, settings, rollout, now)
    outcome, reason = judge(evidence, settings, last)
    if outcome == "wait":
        return outcome
    session.add(
        RolloutStep(
            rollout_id=rollout.id,
            step_index=rollout.step_index,
            weight=evidence.weight,
            outcome=outcome,
            reason=reason,
            stable_accuracy=evidence.stable.accuracy,
            canary_accuracy=evidence.canary.accuracy,
            evidence=evidence.to_dict(),
            ts=now,
        )
    )
    candidate = registry.get_version(session, rollout.model, rollout.candidate_version)
    stable = registry.get_version(session, rollout.model, rollout.stable_version)
    if outcome == "advance":
        rollout.step_index += 1
        rollout.step_started_at = now
        _publish(store, target, rollout, stable, candidate)
        weight = rollout.plan[rollout.step_index]
        observe.rollout_event(rollout.model, "step", candidate.version, weight, rollout.step_index)
        registry.audit(
            session,
            rollout.model,
            candidate.version,
            "rollout_advanced",
            rollout_id=rollout.id,
            weight=weight,
            reason=reason,
        )
    else:
        finish(session, store, target, rollout, outcome == "promote", reason, now)
    session.flush()
    return outcome


def finish(
    session: Session,
    store: registry.ArtifactStore,
    target: DeploymentTarget,
    rollout: Rollout,
    promote: bool,
    reason: str,
    now: datetime | None = None,
) -> None:
    """End ``rollout``: promote the candidate, or roll back to the stable version; publish."""
    if rollout.state != "running":
        raise DriftwatchError(f"rollout {rollout.id} is already {rollout.state}")
    candidate = registry.get_version(session, rollout.model, rollout.candidate_version)
    stable = registry.get_version(session, rollout.model, rollout.stable_version)
    rollout.state = "promoted" if promote else "rolled_back"
    rollout.reason = reason
    rollout.finished_at = now or datetime.now(UTC)
    registry.set_state(session, candidate, rollout.state, reason)
    publish_stable(store, target, candidate if promote else stable, rollout.id)
    observe.rollout_event(
        rollout.model, rollout.state, candidate.version, 100 if promote else 0, rollout.step_index
    )
    session.flush()


def active(session: Session, model: str | None = None) -> list[Rollout]:
    query = select(Rollout).where(Rollout.state == "running").order_by(Rollout.id)
    if model is not None:
        query = query.where(Rollout.model == model)
    return list(session.scalars(query))


def steps(session: Session, rollout_id: int) -> list[RolloutStep]:
    return list(
        session.scalars(
            select(RolloutStep)
            .where(RolloutStep.rollout_id == rollout_id)
            .order_by(RolloutStep.step_index)
        )
    )


def list_rollouts(
    session: Session, model: str | None = None, state: str | None = None, limit: int = 50
) -> list[Rollout]:
    """Rollouts, newest first (API and CLI)."""
    query = select(Rollout).order_by(Rollout.id.desc()).limit(limit)
    if model is not None:
        query = query.where(Rollout.model == model)
    if state is not None:
        query = query.where(Rollout.state == state)
    return list(session.scalars(query))


def roll_back(session: Session, settings: Settings, rollout_id: int, reason: str) -> Rollout:
    """Roll a running rollout back by hand; NotFound, or Conflict when it has already ended."""
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFound(f"rollout {rollout_id} does not exist")
    if rollout.state != "running":
        raise Conflict(f"rollout {rollout_id} is already {rollout.state}")
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    finish(session, store, target_from_settings(settings.retrain), rollout, False, reason)
    return rollout
