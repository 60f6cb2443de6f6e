"""Both arms' evidence from the store: the logs of one period, scored against each other and
against the same reference profile, ready for :func:`retrain.verdict.decide`.

The reference is the active profile of ``reference_version`` (the promoted version), so both
arms' drift is measured from one baseline, and its impact profile's temperature calibrates
both arms' confidences for the estimated accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from monitor.batch import LogBatch
from monitor.detectors.registry import score_all
from monitor.errors import DriftwatchError
from monitor.evaluate import compare_arms
from monitor.impact.stage import load_impact
from monitor.profiles import active_profile, load_profiles
from monitor.settings import DetectorSettings
from monitor.store.logs import load_range
from retrain.verdict import ArmFigures

MIN_COMPARE = 20  # logs per arm before the arm-vs-arm detectors run


@dataclass(frozen=True)
class Arm:
    """One arm as logged: its ``arm`` label and, when known, its model version."""

    arm: str
    version: str | None = None


def _batch(
    session: Session, model: str, arm: Arm, since: datetime | None, until: datetime
) -> LogBatch | None:
    try:
        return load_range(session, model, arm.version, since, until, arm=arm.arm)
    except DriftwatchError:
        return None


def _compare(
    stable: LogBatch | None, canary: LogBatch | None, detectors: DetectorSettings, model: str
) -> list[dict[str, Any]]:
    if stable is None or canary is None or min(len(stable), len(canary)) < MIN_COMPARE:
        return []
    try:
        results = compare_arms(stable, canary, detectors, model)
    except (ImportError, DriftwatchError) as exc:
        return [{"family": "error", "error": str(exc)}]
    return [
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


def _reference(session: Session, model: str, version: str | None) -> tuple[dict[Any, Any], float]:
    """The reference's fitted family profiles and calibration temperature (1 without)."""
    profile = None if version is None else active_profile(session, model, version)
    if profile is None:
        return {}, 1.0
    impact = load_impact(session, profile.id)
    return load_profiles(session, profile.id), (impact.temperature if impact else 1.0)


def _drifted(
    profiles: dict[Any, Any], batch: LogBatch | None, detectors: DetectorSettings, model: str
) -> list[str]:
    if not profiles or batch is None or len(batch) < MIN_COMPARE:
        return []
    try:
        return [r.family for r in score_all(profiles, batch, detectors, model) if r.drifted]
    except (ImportError, DriftwatchError):
        return []


def gather_arms(
    session: Session,
    detectors: DetectorSettings,
    model: str,
    stable: Arm,
    canary: Arm,
    since: datetime | None,
    until: datetime | None = None,
    reference_version: str | None = None,
) -> tuple[ArmFigures, ArmFigures, list[dict[str, Any]]]:
    """``(stable figures, canary figures, arm-vs-arm detector results)`` for ``since..until``."""
    until = until or datetime.now(UTC)
    s = _batch(session, model, stable, since, until)
    c = _batch(session, model, canary, since, until)
    profiles, temperature = _reference(session, model, reference_version or stable.version)
    return (
        ArmFigures.of(s, temperature, _drifted(profiles, s, detectors, model)),
        ArmFigures.of(c, temperature, _drifted(profiles, c, detectors, model)),
        _compare(s, c, detectors, model),
    )
