"""The offline canary gate: candidate vs current model on recent and reference holdouts.

Metrics are pure functions over arrays; :func:`decide` applies the configured promotion criteria
and lists every reason a candidate is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from monitor.settings import RetrainSettings
from monitor.store.retrain_queries import latest_gate_report


def accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Share of correct predictions.

    >>> accuracy(np.array([0, 1, 1]), np.array([0, 1, 0]))
    0.6666666666666666
    """
    return float((np.asarray(y) == np.asarray(pred)).mean()) if len(y) else float("nan")


def per_class_recall(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Recall of each class, NaN for classes absent from ``y``.

    >>> per_class_recall(np.array([0, 0, 1]), np.array([0, 1, 1]), 3).round(2).tolist()
    [0.5, 1.0, nan]
    """
    support = np.bincount(y, minlength=n_classes).astype(np.float64)
    hits = np.bincount(y[y == pred], minlength=n_classes).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, hits / support, np.nan)


def macro_f1(y: np.ndarray, pred: np.ndarray, n_classes: int) -> float:
    """F1 averaged over classes present in ``y`` or ``pred`` (as scikit-learn's ``macro``).

    >>> round(macro_f1(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 2), 4)
    0.7333
    """
    tp = np.bincount(y[y == pred], minlength=n_classes).astype(np.float64)
    n_pred = np.bincount(pred, minlength=n_classes).astype(np.float64)
    n_true = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = (n_pred + n_true) > 0
    denom = n_pred + n_true
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return float(f1[present].mean()) if present.any() else float("nan")


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, bins: int = 15) -> float:
    """ECE with equal-width confidence bins (Guo et al., 2017).

    >>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8]])
    >>> round(expected_calibration_error(np.array([0, 1, 1]), probs), 4)
    0.3
    """
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    idx = np.clip(np.ceil(conf * bins).astype(np.int64) - 1, 0, bins - 1)
    n = np.bincount(idx, minlength=bins)
    gap = np.abs(
        np.bincount(idx, weights=correct, minlength=bins)
        - np.bincount(idx, weights=conf, minlength=bins)
    )
    return float(gap.sum() / max(len(y), 1)) if n.sum() else float("nan")


@dataclass(frozen=True)
class ModelScores:
    """One model's figures on one holdout."""

    accuracy: float
    macro_f1: float
    ece: float
    per_class_recall: list[float]
    n: int

    @classmethod
    def of(cls, y: np.ndarray, probs: np.ndarray) -> ModelScores:
        pred = probs.argmax(axis=1)
        k = probs.shape[1]
        return cls(
            accuracy=accuracy(y, pred),
            macro_f1=macro_f1(y, pred, k),
            ece=expected_calibration_error(y, probs),
            per_class_recall=[float(r) for r in per_class_recall(y, pred, k)],
            n=len(y),
        )


@dataclass(frozen=True)
class GateReport:
    """Candidate vs current on the recent and reference holdouts, with the verdict."""

    recent: dict[str, ModelScores]  # "candidate" / "current"
    reference: dict[str, ModelScores]
    agreement_recent: float
    agreement_reference: float
    latency_ms: dict[str, dict[str, float]]  # arm -> {"p50", "p99"}
    size_bytes: dict[str, int]
    passed: bool = False
    reasons: list[str] = field(default_factory=list)
    formats: dict[str, Any] = field(default_factory=dict)  # the candidate's FormatChoice

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """A few human lines, as the CLI shows them."""
        c, o = self.recent["candidate"], self.recent["current"]
        rc, ro = self.reference["candidate"], self.reference["current"]
        lines = [
            f"verdict: {'PASS' if self.passed else 'FAIL'}",
            f"recent holdout    accuracy {o.accuracy:.2%} -> {c.accuracy:.2%}  macro-F1 "
            f"{o.macro_f1:.3f} -> {c.macro_f1:.3f}  ECE {o.ece:.3f} -> {c.ece:.3f}  (n={c.n})",
            f"reference holdout accuracy {ro.accuracy:.2%} -> {rc.accuracy:.2%}  macro-F1 "
            f"{ro.macro_f1:.3f} -> {rc.macro_f1:.3f}  (n={rc.n})",
            f"agreement recent {self.agreement_recent:.2%}, "
            f"reference {self.agreement_reference:.2%}",
            "latency p50/p99 ms "
            + ", ".join(
                f"{arm} {v['p50']:.2f}/{v['p99']:.2f}" for arm, v in self.latency_ms.items()
            ),
            "size " + ", ".join(f"{arm} {b / 1024:.0f} KiB" for arm, b in self.size_bytes.items()),
        ]
        if self.formats:
            lines.append(f"format: {self.formats['reason']}")
        lines += [f"  refused: {r}" for r in self.reasons]
        return "\n".join(lines)


def decide(report: GateReport, criteria: RetrainSettings) -> GateReport:
    """Apply the promotion criteria; returns the report with ``passed`` and ``reasons`` set.

    A candidate passes when it beats the current model on the recent holdout by at least
    ``min_recent_gain`` accuracy, loses at most ``max_reference_drop`` accuracy on the reference
    holdout, and no class's recall on the recent holdout drops by more than
    ``max_class_recall_drop``.
    """
    reasons: list[str] = []
    c, o = report.recent["candidate"], report.recent["current"]
    gain = c.accuracy - o.accuracy
    if not gain > criteria.min_recent_gain:
        reasons.append(
            f"recent accuracy {c.accuracy:.2%} does not beat current {o.accuracy:.2%} "
            f"by more than {criteria.min_recent_gain:.2%}"
        )
    drop = report.reference["current"].accuracy - report.reference["candidate"].accuracy
    if drop > criteria.max_reference_drop:
        reasons.append(
            f"reference accuracy drops {drop:.2%} (allowed {criteria.max_reference_drop:.2%})"
        )
    for k, (rc, ro) in enumerate(zip(c.per_class_recall, o.per_class_recall, strict=True)):
        if np.isfinite(rc) and np.isfinite(ro) and ro - rc > criteria.max_class_recall_drop:
            reasons.append(
                f"class {k} recall drops {ro:.2f} -> {rc:.2f} "
                f"(allowed {criteria.max_class_recall_drop:.2f})"
            )
    values = asdict(report)
    values.update(passed=not reasons, reasons=reasons)
    values["recent"] = report.recent
    values["reference"] = report.reference
    return GateReport(**values)


def latency_quantiles(sess: Any, x: np.ndarray, repeats: int = 50) -> dict[str, float]:
    """p50/p99 milliseconds of single-image inference through an ONNX Runtime session."""
    import time

    from retrain.export import INPUT, OUTPUTS

    times = []
    for i in range(repeats):
        one = np.ascontiguousarray(x[i % len(x)][None], dtype=np.float32)
        t0 = time.perf_counter()
        sess.run(list(OUTPUTS), {INPUT: one})
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50": float(np.percentile(times, 50)), "p99": float(np.percentile(times, 99))}


def evaluate(
    candidate: Any,
    current: Any,
    recent: tuple[np.ndarray, np.ndarray],
    reference: tuple[np.ndarray, np.ndarray],
    sizes: dict[str, int],
    criteria: RetrainSettings,
    formats: dict[str, Any] | None = None,
) -> GateReport:
    """Run both ONNX Runtime sessions on both holdouts and decide."""
    from scipy.special import softmax

    from retrain.export import run

    scores: dict[str, dict[str, ModelScores]] = {"recent": {}, "reference": {}}
    agreement: dict[str, float] = {}
    for name, (x, y) in (("recent", recent), ("reference", reference)):
        preds = {}
        for arm, sess in (("candidate", candidate), ("current", current)):
            probs = softmax(run(sess, x)[0].astype(np.float64), axis=1)
            scores[name][arm] = ModelScores.of(y, probs)
            preds[arm] = probs.argmax(axis=1)
        agreement[name] = accuracy(preds["candidate"], preds["current"])
    latency = {
        arm: latency_quantiles(sess, recent[0])
        for arm, sess in (("candidate", candidate), ("current", current))
    }
    report = GateReport(
        recent=scores["recent"],
        reference=scores["reference"],
        agreement_recent=agreement["recent"],
        agreement_reference=agreement["reference"],
        latency_ms=latency,
        size_bytes=sizes,
        formats=dict(formats or {}),
    )
    return decide(report, criteria)


def gate_report(session: Session, model: str, version: str) -> str:
    """The stored offline gate report of ``version``, as text."""
    row = latest_gate_report(session, model, version)
    if row is None:
        return f"no gate report for {model} {version}"
    data = dict(row.report)
    for part in ("recent", "reference"):
        data[part] = {k: ModelScores(**v) for k, v in data[part].items()}
    return GateReport(**data).summary()
