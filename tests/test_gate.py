"""The offline canary gate: its metrics against scikit-learn, its criteria, and a worse
candidate that a real job refuses to promote (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, f1_score, recall_score
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.retrain_stage import serve_labelled
from monitor.settings import RetrainSettings, Settings
from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import CanaryReport, Rollout
from monitor.store.versions import promoted_version
from retrain import jobs, registry
from retrain.deploy import FileTarget
from retrain.digits import train_holdout
from retrain.gate import (
    GateReport,
    ModelScores,
    accuracy,
    decide,
    expected_calibration_error,
    gate_report,
    macro_f1,
    per_class_recall,
)
from retrain.pipeline import register_baseline, run_job
from retrain.recipes import RecipeInput, RecipeOutput, digits_finetune, train_baseline

torch.set_num_threads(2)

labels = st.lists(st.integers(0, 4), min_size=1, max_size=60)


@settings(max_examples=60, deadline=None)
@given(labels, st.integers(0, 2**31 - 1))
def test_metrics_match_scikit_learn(y_list: list[int], seed: int) -> None:
    y = np.array(y_list)
    pred = np.random.default_rng(seed).integers(0, 5, len(y))
    assert accuracy(y, pred) == pytest.approx(accuracy_score(y, pred))
    assert macro_f1(y, pred, 5) == pytest.approx(
        f1_score(y, pred, average="macro", zero_division=0)
    )
    present = np.unique(y)
    np.testing.assert_allclose(
        per_class_recall(y, pred, 5)[present], recall_score(y, pred, labels=present, average=None)
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 200), st.integers(0, 2**31 - 1))
def test_ece_is_a_bounded_gap_and_zero_when_calibrated(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(4), n)
    y = rng.integers(0, 4, n)
    assert 0.0 <= expected_calibration_error(y, probs) <= 1.0
    one_hot = np.eye(4)[y]  # confident and always right: perfectly calibrated
    assert expected_calibration_error(y, one_hot) == 0.0


def _report(
    cand_acc: float,
    cur_acc: float,
    ref_cand: float,
    ref_cur: float,
    cand_recall: list[float],
    cur_recall: list[float],
) -> GateReport:
    def scores(acc: float, recall: list[float]) -> ModelScores:
        return ModelScores(accuracy=acc, macro_f1=acc, ece=0.05, per_class_recall=recall, n=100)

    return GateReport(
        recent={"candidate": scores(cand_acc, cand_recall), "current": scores(cur_acc, cur_recall)},
        reference={
            "candidate": scores(ref_cand, cand_recall),
            "current": scores(ref_cur, cur_recall),
        },
        agreement_recent=0.7,
        agreement_reference=0.95,
        latency_ms={"candidate": {"p50": 0.1, "p99": 0.2}, "current": {"p50": 0.1, "p99": 0.2}},
        size_bytes={"candidate": 1, "current": 1},
    )


def test_decide_lists_every_broken_criterion() -> None:
    rules = RetrainSettings(
        min_recent_gain=0.01, max_reference_drop=0.02, max_class_recall_drop=0.1
    )
    good = decide(_report(0.9, 0.6, 0.95, 0.96, [0.9, 0.9], [0.6, 0.6]), rules)
    assert good.passed and good.reasons == []
    bad = decide(_report(0.605, 0.6, 0.90, 0.96, [0.5, 0.9], [0.7, 0.6]), rules)
    assert not bad.passed
    assert bad.reasons == [
        "recent accuracy 60.50% does not beat current 60.00% by more than 1.00%",
        "reference accuracy drops 6.00% (allowed 2.00%)",
        "class 0 recall drops 0.70 -> 0.50 (allowed 0.10)",
    ]
    assert "refused: reference accuracy drops" in bad.summary()


def worse_recipe(inp: RecipeInput) -> RecipeOutput:
    """Fine-tunes, then loses class 3 entirely: a candidate worse than the current model."""
    out = digits_finetune(
        RecipeInput(inp.images, inp.labels, inp.base_weights, {"epochs": 2}, inp.seed, False)
    )
    with torch.no_grad():
        out.net.head.bias[3] -= 30.0
    return out


def test_a_worse_candidate_is_never_promoted(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> None:
    settings = settings_for(
        db_url,
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry", deployment_spec_path=tmp_path / "deploy.json"
        ),
    )
    _, hold = train_holdout(seed=0)
    register_baseline(
        settings, sessions, "digits", "v1", train_baseline(), hold.images, hold.labels
    )
    serve_labelled(settings, sessions, "digits", 400, shift="brightness", prefix="fresh")
    with unit_of_work(sessions) as s:
        job, _ = jobs.enqueue_job(
            s, "digits", "alert-9", params={"recipe": f"{__name__}:worse_recipe"}
        )
    outcome = run_job(settings, sessions, job.id, progress=False)
    assert outcome is not None and outcome.state == "failed" and outcome.gate_passed is False
    with unit_of_work(sessions) as s:
        failed = jobs.get_job(s, job.id)
        assert failed.error is not None
        assert failed.error.startswith("offline gate refused the candidate: ")
        assert "class 3 recall drops" in failed.error
        assert registry.get_version(s, "digits", "v1-r1").state == "failed"
        assert promoted_version(s, "digits").version == "v1"  # type: ignore[union-attr]
        assert s.scalar(select(Rollout)) is None
        stored = s.scalar(select(CanaryReport))
        assert stored is not None and not stored.passed and stored.reasons
        text = gate_report(s, "digits", "v1-r1")
        assert text.startswith("verdict: FAIL") and "refused: class 3 recall drops" in text
    spec = FileTarget(settings.retrain.deployment_spec_path).read()
    assert spec is not None and spec.canary is None and spec.stable.version == "v1"
