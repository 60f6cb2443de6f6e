"""The online canary controller: staged traffic weights, arm comparison, promote or roll back.

Each :func:`tick` gathers both arms' logs since the current step began
(:func:`retrain.evidence.gather_arms`) and asks :func:`retrain.verdict.decide`, the same
verdict the Argo Rollouts and Flagger doors serve: ``wait`` does nothing, ``rollback`` ends the
rollout with the reason recorded, ``advance`` moves to the next weight of ``rollout_steps`` or
promotes after the last one. The step's evidence is stored with the outcome.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from monitor.errors import Conflict, DriftwatchError, NotFound
from monitor.settings import Settings
from monitor.store import rollouts_repo
from monitor.store.retrain_tables import ModelVersion, Rollout, RolloutStep
from monitor.store.versions import promoted_version
from retrain import evidence, observe, registry, verdict
from retrain.deploy import ArmSpec, DeploymentSpec, DeploymentTarget, stamped, target_from_settings
from retrain.verdict import ArmFigures


def served_artifact(mv: ModelVersion) -> str:
    """The artifact ``mv`` serves: the format its build chose (INT8 only when it measured
    faster, :class:`retrain.quantize.FormatChoice`); versions built before that serve INT8
    when they have it."""
    chosen = (mv.metrics or {}).get("format", {}).get("chosen")
    if chosen in ("int8", "fp32") and f"onnx_{chosen}" in mv.artifacts:
        return f"onnx_{chosen}"
    return "onnx_int8" if "onnx_int8" in mv.artifacts else "onnx_fp32"


def arm_spec(store: registry.ArtifactStore, mv: ModelVersion) -> ArmSpec:
    """The deployable artifact of ``mv`` (:func:`served_artifact`), by URL."""
    name = served_artifact(mv)
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
class StepEvidence:
    """Both arms' figures over one step, and the detectors' stable-vs-canary results."""

    weight: int
    stable: ArmFigures
    canary: ArmFigures
    detectors: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(
    ev: StepEvidence, settings: Settings, last_step: bool, waited_s: float = 0.0
) -> tuple[str, str]:
    """``(outcome, reason)`` of :func:`retrain.verdict.decide`; ``promote`` for an advance at
    the last step."""
    v = verdict.decide(
        ev.stable, ev.canary, verdict.Thresholds.of(settings.retrain), ev.detectors, waited_s
    )
    if v.verdict == "advance":
        return ("promote" if last_step else "advance"), f"{v.reason} at {ev.weight}%"
    return v.verdict, f"{v.reason} at {ev.weight}%" if v.verdict == "rollback" else v.reason


def gather(session: Session, settings: Settings, rollout: Rollout, now: datetime) -> StepEvidence:
    """Load both arms' logs of the current step and compare them."""
    stable, canary, found = evidence.gather_arms(
        session,
        settings.detectors,
        rollout.model,
        evidence.Arm("stable", rollout.stable_version),
        evidence.Arm("canary", rollout.candidate_version),
        rollout.step_started_at,
        now,
    )
    return StepEvidence(rollout.plan[rollout.step_index], stable, canary, found)


def _waited(rollout: Rollout, now: datetime) -> float:
    started = rollout.step_started_at
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return (now - started).total_seconds()


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
    found = gather(session, settings, rollout, now)
    outcome, reason = judge(found, settings, last, _waited(rollout, now))
    if outcome == "wait":
        return outcome
    session.add(
        RolloutStep(
            rollout_id=rollout.id,
            step_index=rollout.step_index,
            weight=found.weight,
            outcome=outcome,
            reason=reason,
            stable_accuracy=found.stable.accuracy,
            canary_accuracy=found.canary.accuracy,
            evidence=found.to_dict(),
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
    return rollouts_repo.running_rollouts(session, model)


def steps(session: Session, rollout_id: int) -> list[RolloutStep]:
    return rollouts_repo.rollout_steps(session, rollout_id)


def list_rollouts(
    session: Session, model: str | None = None, state: str | None = None, limit: int = 50
) -> list[Rollout]:
    """Rollouts, newest first (API and CLI)."""
    return rollouts_repo.recent_rollouts(session, model, state, limit)


def roll_back(session: Session, settings: Settings, rollout_id: int, reason: str) -> Rollout:
    """Roll a running rollout back by hand; NotFound, or Conflict when it has already ended."""
    rollout = session.get(Rollout, rollout_id)
    if rollout is None:
        raise NotFound(f"rollout {rollout_id} does not exist")
    if rollout.state != "running":
        raise Conflict(f"rollout {rollout_id} is already {rollout.state}")
    store = registry.ArtifactStore.from_settings(settings.retrain)
    finish(session, store, target_from_settings(settings.retrain), rollout, False, reason)
    return rollout
