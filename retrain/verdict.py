"""The canary verdict: one pure decision over both arms' evidence, for every door.

Driftwatch's own controller (:mod:`retrain.rollout`), the Argo Rollouts ``web`` provider, the
Prometheus gauge and Flagger's webhooks all ask :func:`decide`, so a canary is judged the same
way whoever moves the traffic. The rules, first match wins:

1. ``wait`` while the canary has fewer than ``min_logs`` logs; a wait that
   has lasted more than ``max_wait_s`` becomes ``rollback`` (a canary that never gets traffic,
   or never logs, must not be promoted by a caller that counts inconclusive answers).
2. ``rollback`` when both arms have ``min_labels`` labels and canary accuracy is more than
   ``max_accuracy_drop`` below stable's.
3. ``rollback`` when canary median latency exceeds ``max_latency_ratio`` times stable's.
4. Without enough labels, ``rollback`` when the calibrated estimated accuracy (CBPE, both arms
   scored with the stable version's temperature) of the canary is more than
   ``max_estimated_drop`` below stable's and the whole 95% interval of the drop is above zero.
5. Without enough labels, ``rollback`` when the confidence detector finds the arms differ and
   the canary is the less confident one.
6. Otherwise ``advance``.

Class shares and each arm's drift against the same reference profile are evidence, shown with
the verdict, not rules: a canary that fixes a drift is expected to predict differently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from monitor.batch import LogBatch
from monitor.impact.estimate import Interval, accuracy_drop, estimate_accuracy
from monitor.impact.temperature import apply_temperature
from monitor.settings import RetrainSettings

Outcome = Literal["advance", "wait", "rollback"]


@dataclass(frozen=True)
class ArmFigures:
    """What one arm's logs say: counts, accuracy (realized and estimated), latency, classes."""

    n: int
    n_labelled: int
    accuracy: float | None
    mean_confidence: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None
    estimated_accuracy: float | None = None
    estimated_accuracy_se: float | None = None
    class_shares: list[float] = field(default_factory=list)
    reference_drift: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls, batch: LogBatch | None, temperature: float = 1.0, drifted: list[str] | None = None
    ) -> ArmFigures:
        """The figures of ``batch``; confidences are calibrated with ``temperature``."""
        if batch is None or len(batch) == 0:
            return cls(0, 0, None, None, None, None)
        labels = batch.labels if batch.labels is not None else np.full(len(batch), -1)
        known = labels >= 0
        lat = batch.latency_ms if batch.latency_ms is not None else np.zeros(0)
        lat = lat[np.isfinite(lat)]
        est = estimate_accuracy(apply_temperature(batch.probs, temperature).max(axis=1))
        shares = np.bincount(batch.predicted, minlength=batch.probs.shape[1]) / len(batch)
        return cls(
            n=len(batch),
            n_labelled=int(known.sum()),
            accuracy=float((batch.predicted[known] == labels[known]).mean())
            if known.any()
            else None,
            mean_confidence=float(batch.confidence.mean()),
            latency_p50_ms=float(np.percentile(lat, 50)) if lat.size else None,
            latency_p99_ms=float(np.percentile(lat, 99)) if lat.size else None,
            estimated_accuracy=est.value,
            estimated_accuracy_se=est.se,
            class_shares=[round(float(s), 4) for s in shares],
            reference_drift=list(drifted or []),
        )

    def estimate(self) -> Interval | None:
        if self.estimated_accuracy is None or self.estimated_accuracy_se is None:
            return None
        v, se = self.estimated_accuracy, self.estimated_accuracy_se
        return Interval(v, v - 1.96 * se, v + 1.96 * se, se, self.n)


@dataclass(frozen=True)
class Thresholds:
    min_logs: int
    min_labels: int
    max_accuracy_drop: float
    max_estimated_drop: float
    max_latency_ratio: float
    max_wait_s: float

    @classmethod
    def of(cls, cfg: RetrainSettings, max_wait_s: float | None = None) -> Thresholds:
        return cls(
            min_logs=cfg.step_min_logs,
            min_labels=cfg.min_arm_labels,
            max_accuracy_drop=cfg.max_online_accuracy_drop,
            max_estimated_drop=cfg.max_estimated_accuracy_drop,
            max_latency_ratio=cfg.max_latency_ratio,
            max_wait_s=cfg.max_wait_seconds if max_wait_s is None else max_wait_s,
        )


@dataclass(frozen=True)
class Verdict:
    """The decision, why, and the evidence it rests on (the JSON every door serves)."""

    verdict: Outcome
    reason: str
    stable: ArmFigures
    canary: ArmFigures
    thresholds: Thresholds
    waited_s: float
    detectors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        """True when the evidence sufficed for a decision (anything but ``wait``)."""
        return self.verdict != "wait"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "ready": self.ready, **asdict(self)}


def _wait_or_expire(c: ArmFigures, th: Thresholds, waited_s: float) -> str | None:
    if c.n >= th.min_logs:
        return None
    short = f"canary has {c.n} of {th.min_logs} logs"
    if waited_s > th.max_wait_s:
        return f"rollback:{short} after {waited_s:.0f} s, more than max_wait {th.max_wait_s:.0f} s"
    return f"wait:{short}"


def _labelled(s: ArmFigures, c: ArmFigures, th: Thresholds) -> str | None:
    if min(s.n_labelled, c.n_labelled) < th.min_labels or s.accuracy is None:
        return None
    if c.accuracy is None or c.accuracy >= s.accuracy - th.max_accuracy_drop:
        return None
    return (
        f"canary accuracy {c.accuracy:.2%} is below stable {s.accuracy:.2%} "
        f"by more than {th.max_accuracy_drop:.2%} (n={c.n_labelled}/{s.n_labelled} labelled)"
    )


def _latency(s: ArmFigures, c: ArmFigures, th: Thresholds) -> str | None:
    if not (s.latency_p50_ms and c.latency_p50_ms):
        return None
    if c.latency_p50_ms <= th.max_latency_ratio * s.latency_p50_ms:
        return None
    return (
        f"canary median latency {c.latency_p50_ms:.1f} ms is over "
        f"{th.max_latency_ratio:g}x stable {s.latency_p50_ms:.1f} ms"
    )


def _estimated(s: ArmFigures, c: ArmFigures, th: Thresholds) -> str | None:
    se, ce = s.estimate(), c.estimate()
    if se is None or ce is None:
        return None
    drop = accuracy_drop(se, ce)
    if drop.value <= th.max_estimated_drop or drop.low <= 0:
        return None
    return (
        f"canary estimated accuracy {ce.value:.2%} is below stable {se.value:.2%} by "
        f"{drop.value:.2%} (95% interval {drop.low:.2%}..{drop.high:.2%}), more than "
        f"{th.max_estimated_drop:.2%}; labels are too few to overrule"
    )


def _less_confident(s: ArmFigures, c: ArmFigures, detectors: list[dict[str, Any]]) -> str | None:
    conf = [d for d in detectors if d.get("family") == "confidence" and d.get("drifted")]
    if not conf or (c.mean_confidence or 0) >= (s.mean_confidence or 0):
        return None
    return (
        f"canary is less confident than stable ({c.mean_confidence:.3f} < "
        f"{s.mean_confidence:.3f}; {conf[0].get('method')} drifted) and "
        f"labels are too few to overrule"
    )


def decide(
    stable: ArmFigures,
    canary: ArmFigures,
    thresholds: Thresholds,
    detectors: list[dict[str, Any]] | None = None,
    waited_s: float = 0.0,
) -> Verdict:
    """The verdict over both arms' evidence (the rules in the module docstring)."""
    dets = list(detectors or [])

    def out(outcome: Outcome, reason: str) -> Verdict:
        return Verdict(outcome, reason, stable, canary, thresholds, waited_s, dets)

    waiting = _wait_or_expire(canary, thresholds, waited_s)
    if waiting is not None:
        kind, _, why = waiting.partition(":")
        return out("rollback" if kind == "rollback" else "wait", why)
    labelled = min(stable.n_labelled, canary.n_labelled) >= thresholds.min_labels
    checks = [_labelled(stable, canary, thresholds), _latency(stable, canary, thresholds)]
    if not labelled:
        checks += [_estimated(stable, canary, thresholds), _less_confident(stable, canary, dets)]
    for found in checks:
        if found is not None:
            return out("rollback", found)
    acc = (
        ""
        if canary.accuracy is None or stable.accuracy is None
        else f": accuracy canary {canary.accuracy:.2%} vs stable {stable.accuracy:.2%}"
    )
    return out("advance", f"no regression{acc}")
