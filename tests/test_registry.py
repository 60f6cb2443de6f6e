"""The registry: atomic, hash-checked artifacts; a crashed job leaves a failed state and nothing
half-written; a job runs end to end on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.retrain_stage import serve_labelled
from monitor.settings import RetrainSettings, Settings
from monitor.store.db import unit_of_work
from monitor.store.retrain_tables import CanaryReport, ModelVersion, Rollout
from monitor.store.versions import promoted_version
from retrain import jobs, registry
from retrain.deploy import FileTarget
from retrain.digits import train_holdout
from retrain.pipeline import register_baseline, run_job
from retrain.recipes import RecipeInput, RecipeOutput, digits_finetune, train_baseline

torch.set_num_threads(2)


def crashing_recipe(inp: RecipeInput) -> RecipeOutput:
    """Trains for real, then its input conversion dies in the middle of the job (at the gate)."""
    out = digits_finetune(
        RecipeInput(inp.images, inp.labels, inp.base_weights, {"epochs": 1}, inp.seed, False)
    )
    calls = {"n": 0}

    def to_input(images: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 2:
            raise RuntimeError("worker lost its disk mid-job")
        return out.to_input(images)

    return RecipeOutput(out.net, to_input, out.reference_holdout, out.params, out.history)


@pytest.fixture
def world(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> tuple[Settings, sessionmaker[Session]]:
    settings = settings_for(
        db_url,
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry",
            deployment_spec_path=tmp_path / "deploy.json",
            recipe_params={"epochs": 12},
        ),
    )
    _, hold = train_holdout(seed=0)
    register_baseline(
        settings, sessions, "digits", "v1", train_baseline(), hold.images, hold.labels
    )
    serve_labelled(settings, sessions, "digits", 500, shift="rotation", prefix="fresh")
    return settings, sessions


def test_job_retrains_quantizes_gates_and_starts_the_canary(world: tuple) -> None:
    settings, sessions = world
    with unit_of_work(sessions) as s:
        job, _ = jobs.enqueue_job(s, "digits", "alert-1")
    outcome = run_job(settings, sessions, job.id, progress=False)
    assert outcome is not None and outcome.state == "succeeded", outcome
    assert outcome.version == "v1-r1" and outcome.gate_passed
    acc = outcome.figures["accuracy"]
    assert acc["fp32"] > 0.8
    fmt = outcome.figures["format"]  # INT8 within 1 point, or FP32 ships and says why
    assert acc["int8"] >= acc["fp32"] - 0.01 or (
        fmt["chosen"] == "fp32" and "points below FP32" in fmt["reason"]
    )
    assert set(outcome.figures["latency"]) == {"fp32_b1", "fp32_b32", "int8_b1", "int8_b32"}
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    with unit_of_work(sessions) as s:
        mv = registry.get_version(s, "digits", "v1-r1")
        assert mv.state == "canary" and mv.parent_version == "v1" and mv.job_id == job.id
        assert mv.recipe == "retrain.recipes:digits_finetune" and mv.params["epochs"] == 12
        for name in ("torch", "onnx_fp32", "onnx_int8"):
            assert store.path(mv, name).is_file()  # present and hash-verified
        report = s.scalar(select(CanaryReport).where(CanaryReport.candidate_version == "v1-r1"))
        assert report is not None and report.passed
        rollout = s.scalar(select(Rollout))
        assert rollout is not None and rollout.plan == [5, 25, 50, 100]
        assert jobs.get_job(s, job.id).state == "succeeded"
    spec = FileTarget(settings.retrain.deployment_spec_path).read()
    assert spec is not None and spec.canary is not None
    assert (spec.stable.version, spec.canary.version, spec.canary_weight) == ("v1", "v1-r1", 5)


def test_crash_mid_job_leaves_failed_state_and_no_partial_version(world: tuple) -> None:
    settings, sessions = world
    with unit_of_work(sessions) as s:
        job, _ = jobs.enqueue_job(
            s, "digits", "alert-2", params={"recipe": f"{__name__}:crashing_recipe"}
        )
    outcome = run_job(settings, sessions, job.id, progress=False)
    assert outcome is not None and outcome.state == "failed"
    with unit_of_work(sessions) as s:
        failed = jobs.get_job(s, job.id)
        assert failed.state == "failed"
        assert failed.error == "RuntimeError: worker lost its disk mid-job"
        # The candidate was complete when the gate crashed: kept for the post-mortem, never served.
        versions = {mv.version: mv for mv in s.scalars(select(ModelVersion))}
        assert sorted(versions) == ["v1", "v1-r1"] and versions["v1-r1"].state == "failed"
        store = registry.ArtifactStore(settings.retrain.registry_dir)
        for name in ("torch", "onnx_fp32", "onnx_int8"):
            assert store.path(versions["v1-r1"], name).is_file()  # whole and hash-verified
        assert s.scalar(select(Rollout)) is None
    assert not any((settings.retrain.registry_dir / ".staging").iterdir())


def test_a_killed_writer_publishes_nothing_and_is_cleaned(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import os
        from retrain.registry import ArtifactStore
        with ArtifactStore({str(tmp_path)!r}).stage("digits", "v9") as st:
            st.write("torch", "model.pt", b"x" * 1000)
            os._exit(9)  # killed between two artifacts
    """)
    assert subprocess.run([sys.executable, "-c", script], check=False).returncode == 9
    store = registry.ArtifactStore(tmp_path)
    assert not store.version_dir("digits", "v9").exists()
    assert store.clean_staging() == 1 and not any(store.staging_root.iterdir())


def test_artifacts_are_hash_checked(tmp_path: Path, sessions: sessionmaker[Session]) -> None:
    store = registry.ArtifactStore(tmp_path)
    with store.stage("digits", "v2") as st:
        st.write("torch", "model.pt", b"weights")
    assert st.artifacts["torch"]["sha256"] == registry.sha256_bytes(b"weights")
    with unit_of_work(sessions) as s:
        mv = registry.register(s, "digits", "v2", st.artifacts)
        assert store.path(mv, "torch").read_bytes() == b"weights"
        (store.version_dir("digits", "v2") / "model.pt").write_bytes(b"tampered")
        with pytest.raises(registry.RegistryError, match="corrupt"):
            store.path(mv, "torch")
        with pytest.raises(registry.RegistryError, match="no artifact 'onnx_int8'"):
            store.path(mv, "onnx_int8")
        with pytest.raises(registry.RegistryError, match="cannot go from candidate to rolled_back"):
            registry.set_state(s, mv, "rolled_back")
    with (
        pytest.raises(registry.RegistryError, match="already has artifacts"),
        store.stage("digits", "v2") as st2,
    ):
        st2.write("torch", "model.pt", b"other")


def test_promotion_retires_the_previous_version_with_an_audit_trail(
    sessions: sessionmaker[Session],
) -> None:
    with unit_of_work(sessions) as s:
        v1 = registry.register(s, "m", "v1", {}, state="promoted")
        v2 = registry.register(s, "m", "v2", {}, parent_version="v1")
        registry.set_state(s, v2, "canary", "rollout 5%")
        registry.set_state(s, v2, "promoted", "all steps passed")
        assert promoted_version(s, "m") is v2 and v1.state == "retired"
        events = [(e.version, e.event) for e in registry.history(s, "m")]
        assert events == [
            ("v1", "registered"),
            ("v2", "registered"),
            ("v2", "state_canary"),
            ("v1", "state_retired"),
            ("v2", "state_promoted"),
        ]
