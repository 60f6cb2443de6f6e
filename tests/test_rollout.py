"""The online canary: staged weights, arm comparison on live logs, automatic rollback and
promotion (SQLite and PostgreSQL), the reference model server's split, and the demo stage."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pytest
import torch
from sqlalchemy.orm import Session, sessionmaker

from monitor.demo.retrain_stage import close_the_loop
from monitor.schemas import PredictionLog
from monitor.settings import RetrainSettings, Settings
from monitor.store.db import unit_of_work
from monitor.store.ingest_repo import insert_predictions
from monitor.store.retrain_tables import Rollout
from monitor.store.versions import promoted_version
from retrain import registry, rollout
from retrain.deploy import FileTarget
from retrain.digits import train_holdout
from retrain.pipeline import publish_version, register_baseline
from retrain.recipes import digits_input, train_baseline
from retrain.server import ModelServer, route
from retrain.storage import StorageError

torch.set_num_threads(2)


@pytest.fixture
def canary(
    db_url: str,
    sessions: sessionmaker[Session],
    settings_for: Callable[..., Settings],
    tmp_path: Path,
) -> tuple[Settings, sessionmaker[Session], int]:
    """v1 promoted, v2 registered and rolled out at the first step (5%)."""
    settings = settings_for(
        db_url,
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry",
            deployment_spec_path=tmp_path / "deploy.json",
            step_min_logs=60,
            min_arm_labels=50,
        ),
    )
    _, hold = train_holdout(seed=0)
    net = train_baseline()
    register_baseline(settings, sessions, "digits", "v1", net, hold.images, hold.labels)
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    x = digits_input(hold.images[:300])
    with unit_of_work(sessions) as s:
        v2 = publish_version(
            s, store, "digits", "v2", net, x, x, hold.labels[:300], settings, parent_version="v1"
        )
        ro = rollout.start(
            s, settings, store, FileTarget(settings.retrain.deployment_spec_path), v2
        )
        rollout_id = ro.id
    return settings, sessions, rollout_id


def _logs(
    make_log: Callable[..., PredictionLog],
    version: str,
    arm: str,
    n: int,
    acc: float,
    conf: float = 0.9,
    latency: float = 2.0,
) -> list[PredictionLog]:
    rng = np.random.default_rng(len(version) + n)
    out = []
    for i in range(n):
        label = int(rng.integers(0, 10))
        pred = label if i < round(acc * n) else (label + 1) % 10
        probs = np.full(10, (1 - conf) / 9)
        probs[pred] = conf
        out.append(
            make_log(
                model_version=version,
                arm=arm,
                predicted_class=pred,
                label=label,
                probabilities=probs.tolist(),
                latency_ms=latency,
            )
        )
    return out


def _tick(settings: Settings, sessions: sessionmaker[Session], rollout_id: int) -> str:
    store = registry.ArtifactStore(settings.retrain.registry_dir)
    target = FileTarget(settings.retrain.deployment_spec_path)
    with unit_of_work(sessions) as s:
        ro = s.get(Rollout, rollout_id)
        assert ro is not None
        return rollout.tick(s, settings, store, target, ro, datetime.now(UTC))


def _emit(sessions: sessionmaker[Session], logs: list[PredictionLog]) -> None:
    with unit_of_work(sessions) as s:
        insert_predictions(s, logs)


def test_online_regression_at_25_percent_rolls_back(
    canary: tuple, make_log: Callable[..., PredictionLog]
) -> None:
    settings, sessions, rollout_id = canary
    spec_file = FileTarget(settings.retrain.deployment_spec_path)
    assert _tick(settings, sessions, rollout_id) == "wait"  # no canary traffic yet
    _emit(
        sessions,
        _logs(make_log, "v1", "stable", 300, acc=0.9)
        + _logs(make_log, "v2", "canary", 80, acc=0.92),
    )
    assert _tick(settings, sessions, rollout_id) == "advance"
    assert spec_file.read().canary_weight == 25  # type: ignore[union-attr]
    # At 25% the canary regresses on live, labelled traffic.
    _emit(
        sessions,
        _logs(make_log, "v1", "stable", 200, acc=0.9)
        + _logs(make_log, "v2", "canary", 70, acc=0.6),
    )
    assert _tick(settings, sessions, rollout_id) == "rollback"
    with unit_of_work(sessions) as s:
        ro = s.get(Rollout, rollout_id)
        assert ro is not None and ro.state == "rolled_back"
        assert ro.reason is not None and ro.reason.startswith(
            "canary accuracy 60.00% is below stable 90.00% by more than 3.00%"
        )
        assert ro.reason.endswith("at 25%")
        steps = rollout.steps(s, rollout_id)
        assert [(st.weight, st.outcome) for st in steps] == [(5, "advance"), (25, "rollback")]
        assert steps[1].canary_accuracy == pytest.approx(0.6)
        assert steps[1].evidence["canary"]["n_labelled"] == 70
        assert registry.get_version(s, "digits", "v2").state == "rolled_back"
        assert promoted_version(s, "digits").version == "v1"  # type: ignore[union-attr]
    spec = spec_file.read()
    assert spec is not None and spec.canary is None and spec.stable.version == "v1"
    assert _tick(settings, sessions, rollout_id) == "rolled_back"  # finished rollouts stay put


def test_all_steps_healthy_promotes(canary: tuple, make_log: Callable[..., PredictionLog]) -> None:
    settings, sessions, rollout_id = canary
    outcomes = []
    for _ in settings.retrain.rollout_steps:
        _emit(
            sessions,
            _logs(make_log, "v1", "stable", 100, acc=0.8)
            + _logs(make_log, "v2", "canary", 80, acc=0.9),
        )
        outcomes.append(_tick(settings, sessions, rollout_id))
    assert outcomes == ["advance", "advance", "advance", "promote"]
    with unit_of_work(sessions) as s:
        assert promoted_version(s, "digits").version == "v2"  # type: ignore[union-attr]
        assert registry.get_version(s, "digits", "v1").state == "retired"
    spec = FileTarget(settings.retrain.deployment_spec_path).read()
    assert spec is not None and spec.stable.version == "v2" and spec.canary is None


def _evidence(
    stable: dict[str, Any], canary: dict[str, Any], detectors: list[dict[str, Any]] | None = None
) -> rollout.StepEvidence:
    base = {
        "n": 300,
        "n_labelled": 0,
        "accuracy": None,
        "mean_confidence": 0.9,
        "latency_p50_ms": 1.0,
        "latency_p99_ms": 2.0,
    }
    return rollout.StepEvidence(
        25,
        rollout.ArmFigures(**{**base, **stable}),
        rollout.ArmFigures(**{**base, **canary}),
        detectors or [],
    )


def test_judge_rolls_back_on_latency_and_unconfident_canary() -> None:
    settings = Settings(environment="test")
    out, why = rollout.judge(_evidence({}, {"latency_p50_ms": 2.5}), settings, False)
    assert out == "rollback" and "median latency 2.5 ms is over 2x stable 1.0 ms" in why
    # One slow outlier (p99) on a shared host is not a regression.
    assert rollout.judge(_evidence({}, {"latency_p99_ms": 50.0}), settings, False)[0] == "advance"
    drifted = [{"family": "confidence", "method": "confidence.ks", "drifted": True}]
    out, why = rollout.judge(_evidence({}, {"mean_confidence": 0.6}, drifted), settings, False)
    assert out == "rollback" and "less confident" in why
    # A more confident canary that predicts differently is what a fix looks like: advance.
    out, _ = rollout.judge(_evidence({}, {"mean_confidence": 0.97}, drifted), settings, False)
    assert out == "advance"
    assert rollout.judge(_evidence({}, {"n": 10}), settings, False)[0] == "wait"


def test_server_splits_traffic_by_weight_and_checks_hashes(canary: tuple) -> None:
    settings, _, _ = canary
    assert sum(route(f"r{i}", 25) == "canary" for i in range(4000)) == pytest.approx(1000, rel=0.1)
    server = ModelServer(settings.retrain.deployment_spec_path, digits_input)
    _, hold = train_holdout(seed=0)
    logs = server.predict(hold.images[:400], [f"r{i}" for i in range(400)])
    arms = {lg.arm: lg.model_version for lg in logs}
    assert arms == {"stable": "v1", "canary": "v2"}
    assert 5 <= sum(lg.arm == "canary" for lg in logs) <= 45  # ~5% of 400
    assert all(lg.thumbnail and lg.embedding_vector().shape == (64,) for lg in logs[:5])  # type: ignore[union-attr]
    spec = FileTarget(settings.retrain.deployment_spec_path).read()
    assert spec is not None
    assert spec.stable.url.startswith("file://")
    Path(urlsplit(spec.stable.url).path).write_bytes(b"not the model")
    with pytest.raises(StorageError, match=r"sha256 .* != expected"):
        ModelServer(settings.retrain.deployment_spec_path, digits_input).reload()


def test_close_the_loop_promotes_a_better_model(
    sqlite_url: str, settings_for: Callable[..., Settings], tmp_path: Path
) -> None:
    from monitor.store.db import make_engine, session_factory

    settings = settings_for(
        sqlite_url,
        retrain=RetrainSettings(
            registry_dir=tmp_path / "registry",
            deployment_spec_path=tmp_path / "deploy.json",
            step_min_logs=80,
        ),
    )
    engine = make_engine(settings.database)
    lines: list[str] = []
    out = close_the_loop(
        settings, session_factory(engine), baseline=train_baseline(), log=lines.append
    )
    engine.dispose()
    assert out["state"] == "promoted" and out["version"] == "v1-r1"
    assert [s["weight"] for s in out["steps"]] == [5, 25, 50, 100]
    assert out["accuracy_after"] >= out["accuracy_before"] + 0.15
    assert any(line.startswith("gate: verdict: PASS") for line in lines)


def test_manual_rollback_from_the_cli_publishes_stable_and_counts(canary: tuple) -> None:
    from click.testing import CliRunner
    from prometheus_client import REGISTRY

    from monitor.cli.retrain import retrain

    settings, _, rollout_id = canary
    sample = {"model": "digits", "event": "rolled_back"}
    before = REGISTRY.get_sample_value("driftwatch_rollout_events_total", sample) or 0.0
    runner = CliRunner()
    out = runner.invoke(
        retrain, ["rollback", str(rollout_id), "--reason", "pager says so"], obj=settings
    )
    assert out.exit_code == 0, out.output
    assert "serving v1" in out.output
    assert REGISTRY.get_sample_value("driftwatch_rollout_events_total", sample) == before + 1
    spec = FileTarget(settings.retrain.deployment_spec_path).read()
    assert spec is not None and spec.canary is None and spec.stable.version == "v1"
    listing = runner.invoke(retrain, ["rollouts"], obj=settings)
    assert "rolled_back at 5%: manual: pager says so" in listing.output
    again = runner.invoke(retrain, ["rollback", str(rollout_id), "--reason", "again"], obj=settings)
    assert again.exit_code != 0 and "already rolled_back" in str(again.exception)
    versions = runner.invoke(retrain, ["versions"], obj=settings)
    assert "v2" in versions.output and "rolled_back" in versions.output


def test_worker_tick_judges_running_rollouts(
    canary: tuple, make_log: Callable[..., PredictionLog]
) -> None:
    from retrain.worker import run_once

    settings, sessions, rollout_id = canary
    first = run_once(settings, sessions)
    assert first["job"] is None and first["rollouts"] == {rollout_id: "wait"}
    _emit(
        sessions,
        _logs(make_log, "v1", "stable", 100, acc=0.9)
        + _logs(make_log, "v2", "canary", 80, acc=0.9),
    )
    assert run_once(settings, sessions)["rollouts"] == {rollout_id: "advance"}
