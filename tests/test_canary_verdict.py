"""The canary verdict, a pure function: each rule, and properties over random evidence."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from monitor.batch import LogBatch
from monitor.settings import RetrainSettings
from retrain.verdict import ArmFigures, Thresholds, decide

TH = Thresholds.of(RetrainSettings(step_min_logs=100, min_arm_labels=50), max_wait_s=600)


def arm(**kw: Any) -> ArmFigures:
    base: dict[str, Any] = {
        "n": 500,
        "n_labelled": 0,
        "accuracy": None,
        "mean_confidence": 0.9,
        "latency_p50_ms": 1.0,
        "latency_p99_ms": 2.0,
        "estimated_accuracy": 0.9,
        "estimated_accuracy_se": 0.01,
    }
    return ArmFigures(**{**base, **kw})


def test_estimated_accuracy_rolls_back_only_without_labels_to_overrule() -> None:
    worse = arm(estimated_accuracy=0.82)
    v = decide(arm(), worse, TH)
    assert v.verdict == "rollback" and "estimated accuracy 82.00%" in v.reason
    # Within the allowed drop, or an interval that reaches zero: no rollback.
    assert decide(arm(), arm(estimated_accuracy=0.88), TH).verdict == "advance"
    noisy = arm(estimated_accuracy=0.86, estimated_accuracy_se=0.05)
    assert decide(arm(), noisy, TH).verdict == "advance"
    # Labels on both arms overrule the estimate.
    lab = {"n_labelled": 200, "accuracy": 0.9}
    assert decide(arm(**lab), arm(**lab, estimated_accuracy=0.7), TH).verdict == "advance"


def test_wait_then_rollback_after_the_maximum() -> None:
    few = arm(n=20)
    assert decide(arm(), few, TH, waited_s=599).verdict == "wait"
    v = decide(arm(), few, TH, waited_s=601)
    assert v.verdict == "rollback" and "more than max_wait 600 s" in v.reason
    assert v.to_dict()["ready"] is True and decide(arm(), few, TH).ready is False


def test_figures_of_a_batch() -> None:
    probs = np.full((4, 3), 0.1)
    probs[np.arange(4), [0, 1, 1, 2]] = 0.8
    batch = LogBatch(
        probs=probs,
        predicted=np.array([0, 1, 1, 2]),
        labels=np.array([0, 1, 2, -1]),
        latency_ms=np.array([1.0, 2.0, np.nan, 4.0]),
    )
    f = ArmFigures.of(batch, drifted=["pixel"])
    assert f.n == 4 and f.n_labelled == 3 and f.accuracy == 2 / 3
    assert f.class_shares == [0.25, 0.5, 0.25] and f.latency_p50_ms == 2.0
    assert f.estimated_accuracy == 0.8 and f.reference_drift == ["pixel"]
    hotter = ArmFigures.of(batch, temperature=2.0)
    assert hotter.estimated_accuracy is not None and hotter.estimated_accuracy < 0.8


@given(
    n=st.integers(0, 1000),
    waited=st.floats(0, 10_000),
    acc=st.floats(0, 1),
    lat=st.floats(0.1, 10),
)
def test_never_advance_on_too_few_logs_and_wait_only_within_the_maximum(
    n: int, waited: float, acc: float, lat: float
) -> None:
    c = arm(n=n, n_labelled=n, accuracy=acc, latency_p50_ms=lat)
    v = decide(arm(n_labelled=500, accuracy=0.9), c, TH, waited_s=waited)
    if n < TH.min_logs:
        assert v.verdict == ("rollback" if waited > TH.max_wait_s else "wait")
    elif v.verdict == "advance":
        assert lat <= TH.max_latency_ratio * 1.0
        assert n < TH.min_labels or acc >= 0.9 - TH.max_accuracy_drop
